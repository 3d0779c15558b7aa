//! `cargo xtask bench …`: benchmarks that print ratios against a baseline measured in the same run.

use clap::Args;

/// Arguments of `cargo xtask bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Which benchmark to run.
    pub which: String,
}

/// Runs the chosen benchmark.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("unknown benchmark {:?}", args.which)
}
