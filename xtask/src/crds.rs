//! `cargo xtask crds [--check]`.

use clap::Args;

/// Arguments of `cargo xtask crds`.
#[derive(Args)]
pub struct CrdsArgs {
    /// Fail when crds/ is stale instead of writing it.
    #[arg(long)]
    pub check: bool,
}

/// Regenerates or checks crds/.
pub fn run(_args: CrdsArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet implemented")
}
