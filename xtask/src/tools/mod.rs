//! `cargo xtask tools`: installs or builds every binary the tests need, into the tools cache
//! (`.tools/`, or `$VERTICE_TOOLS_DIR`), and rebuilds a tool only when its pin changes.
//! Binaries end up as `<tools dir>/bin/<name>`, which is where testkit looks for them.

pub mod pins;

use clap::Args;

/// Arguments of `cargo xtask tools`.
#[derive(Args)]
pub struct ToolsArgs {}

/// Installs or builds every test tool.
pub fn run(_args: ToolsArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet implemented")
}
