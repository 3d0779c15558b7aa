//! `cargo xtask test`: THE test command, the one the README names and `.ci/run` calls.
//! It installs what the tests need, then runs every check in order and stops at the first
//! failure, printing how long each step took.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

use crate::workspace_root;

/// Arguments of `cargo xtask test`.
#[derive(Args)]
pub struct TestArgs {
    /// Skip `cargo xtask tools` (when you know the tools are installed).
    #[arg(long)]
    pub no_tools: bool,
    /// Extra arguments passed to `cargo test` (after `--workspace`), e.g. `-p vertice-core`.
    #[arg(last = true)]
    pub cargo_test_args: Vec<String>,
}

/// Runs every check and test.
pub fn run(args: TestArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if !args.no_tools {
        // As a child process, so the step runs exactly what a user's `cargo xtask tools` runs.
        step("tools", || {
            let xtask = std::env::current_exe().context("locating the xtask binary")?;
            let status = Command::new(xtask).arg("tools").status()?;
            if !status.success() {
                bail!("`cargo xtask tools` exited with {status}");
            }
            Ok(())
        })?;
    }
    step("rustfmt", || cargo(&["fmt", "--all", "--", "--check"]))?;
    step("clippy", || {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    step("crds --check", || {
        crate::crds::run(crate::crds::CrdsArgs { check: true })
    })?;
    step(
        "alerts: --check, promtool check/test rules",
        crate::alerts::test,
    )?;
    step(
        "dashboards --check, docs --check",
        crate::dashboards::test_step,
    )?;
    step("charts", crate::charts::test)?;
    step("cargo test", || {
        let mut test_args = vec!["test", "--workspace", "--no-fail-fast"];
        test_args.extend(args.cargo_test_args.iter().map(String::as_str));
        cargo(&test_args)
    })?;
    println!("xtask test: all steps passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Runs one named step and reports its duration.
fn step(name: &str, body: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    println!("==> {name}");
    let started = Instant::now();
    let result = body().with_context(|| format!("step `{name}` failed"));
    println!(
        "<== {name}: {} in {:.1?}",
        if result.is_ok() { "ok" } else { "FAILED" },
        started.elapsed()
    );
    result
}

/// Runs cargo with `args` in the workspace root, inheriting the terminal.
fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo {} exited with {status}", args.join(" "));
    }
    Ok(())
}
