//! `cargo xtask demo`: start a local control plane and show how to use it.

use clap::Args;

/// Arguments of `cargo xtask demo`.
#[derive(Args)]
pub struct DemoArgs {}

/// Runs the demo.
pub fn run(_args: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet implemented")
}
