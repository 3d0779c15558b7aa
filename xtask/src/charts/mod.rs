//! `cargo xtask charts [--check]`: every operator's Helm chart (`charts/<name>/`) carries copies
//! of its CRDs (from `crds/`) and of its alert rules (from `alerts/<name>.rules.yaml`, rendered
//! into the optional PrometheusRule), and its `version`/`appVersion` follow the workspace
//! version. This command writes those; `--check` fails when any drifted.
//!
//! An operator gets a chart by adding one [`ChartEntry`] to [`CHARTS`]: the sync, the
//! `cargo xtask test` step (lint, render, server-side apply, image check) and the end-to-end
//! RBAC tests' rendering all read this table.

mod image;
mod render;
mod sync;
mod values_doc;
mod verify;

use std::path::PathBuf;

use clap::{Args, Parser};

use crate::workspace_root;

pub use verify::test;

/// Arguments of `cargo xtask charts`.
#[derive(Args)]
pub struct ChartsArgs {
    /// Fail when a chart is stale instead of writing it.
    #[arg(long)]
    pub check: bool,
    /// Run the charts' tests (the `charts` step of `cargo xtask test`) instead.
    #[arg(long, conflicts_with = "check")]
    pub test: bool,
}

/// One operator's chart and what it is made from.
pub struct ChartEntry {
    /// The chart's folder under `charts/`, also the stem of `alerts/<name>.rules.yaml`.
    pub name: &'static str,
    /// The API group whose CRDs (`crds/*.<group>.yaml`) the chart carries.
    pub crd_group: &'static str,
    /// The operator's Dockerfile, relative to the workspace root.
    pub dockerfile: &'static str,
    /// The binary the image runs (its `[[bin]]` name).
    pub binary: &'static str,
    /// Source folders whose external tools (`find_tool("…")`, `tool_command("…")`) the image
    /// must carry, relative to the workspace root.
    pub tool_sources: &'static [&'static str],
    /// The flag that names the image of the operator's own Jobs, which must default to the
    /// operator's image; `None` when the operator starts no Jobs.
    pub runner_image_flag: Option<&'static str>,
    /// Parses the operator's arguments (after the subcommand) with the operator's own flag
    /// definitions, so a flag the chart passes that the binary does not know fails the test.
    pub parse_flags: fn(&[String]) -> Result<(), String>,
}

/// Every chart. A new operator adds its entry here.
pub const CHARTS: &[ChartEntry] = &[ChartEntry {
    name: "backup",
    crd_group: "backup.vertice.dev",
    dockerfile: "crates/backup/Dockerfile",
    binary: "vertice-backup",
    tool_sources: &["crates/backup/src/source"],
    runner_image_flag: Some("--runner-image"),
    parse_flags: parse_backup_flags,
}];

/// `vertice-backup run`'s flags.
#[derive(Parser)]
struct BackupRunFlags {
    #[command(flatten)]
    args: vertice_backup::controller::OperatorArgs,
}

fn parse_backup_flags(args: &[String]) -> Result<(), String> {
    let argv = std::iter::once("vertice-backup-run".to_owned()).chain(args.iter().cloned());
    BackupRunFlags::try_parse_from(argv)
        .map(|_| ())
        .map_err(|error| error.to_string())
}

impl ChartEntry {
    /// `charts/<name>`.
    pub fn dir(&self) -> PathBuf {
        workspace_root().join("charts").join(self.name)
    }

    /// `alerts/<name>.rules.yaml`.
    pub fn alerts_file(&self) -> PathBuf {
        workspace_root()
            .join("alerts")
            .join(format!("{}.rules.yaml", self.name))
    }
}

/// Writes or checks every chart's synced files.
pub fn run(args: ChartsArgs) -> anyhow::Result<()> {
    if args.test {
        return test();
    }
    for chart in CHARTS {
        sync::sync(chart, args.check)?;
    }
    Ok(())
}
