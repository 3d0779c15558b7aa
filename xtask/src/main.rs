//! `cargo xtask …`: the project's automation. Each subcommand lives in its own module.

mod alert_docs;
mod alerts;
mod bench;
mod charts;
mod crds;
mod dashboards;
mod demo;
mod docs;
mod generated;
mod test;
mod tools;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Vértice operators project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install or build every binary the tests need (cached; rebuilt only when a pin changes).
    Tools(tools::ToolsArgs),
    /// Regenerate crds/*.yaml from the Rust types (`--check` fails when they are stale).
    Crds(crds::CrdsArgs),
    /// Sync every chart's CRDs, alert rules and version (`--check` fails when they are stale).
    Charts(charts::ChartsArgs),
    /// THE test command: tools, fmt, clippy, crds --check, every unit and integration test.
    Test(test::TestArgs),
    /// Regenerate dashboards/*.json from their Rust descriptions (`--check`: fail when stale).
    Dashboards(dashboards::DashboardsArgs),
    /// Regenerate docs/reference/ from the CRD schemas (`--check`: fail when stale).
    Docs(docs::DocsArgs),
    /// Run the backup operator on a local cluster with examples/backup/ applied (`--once`: wait
    /// until its runs succeed, print a summary, exit).
    Demo(demo::DemoArgs),
    /// Benchmarks that print ratios against a baseline measured in the same run.
    Bench(bench::BenchArgs),
    /// Regenerate alerts/<operator>.rules{,.test}.yaml from alerts/src and alerts/shared
    /// (`--check` fails when stale).
    Alerts(alerts::AlertsArgs),
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> std::path::PathBuf {
    let manifest_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| manifest_dir.to_path_buf())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Tools(args) => tools::run(args),
        Command::Crds(args) => crds::run(args),
        Command::Charts(args) => charts::run(args),
        Command::Test(args) => test::run(args),
        Command::Dashboards(args) => dashboards::run(args),
        Command::Docs(args) => docs::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Alerts(args) => alerts::run(args),
    }
}
