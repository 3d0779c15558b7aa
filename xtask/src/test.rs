//! `cargo xtask test`: THE test command.

use clap::Args;

/// Arguments of `cargo xtask test`.
#[derive(Args)]
pub struct TestArgs {}

/// Runs every check and test.
pub fn run(_args: TestArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet implemented")
}
