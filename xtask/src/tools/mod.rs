//! `cargo xtask tools`: installs or builds every binary the tests need, into the tools cache
//! (`.tools/`, or `$VERTICE_TOOLS_DIR`), and rebuilds a tool only when its pin changes.
//! Binaries end up as `<tools dir>/bin/<name>`, which is where testkit looks for them.

pub mod apt;
pub mod go;
pub mod pins;
pub mod services;

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

/// Arguments of `cargo xtask tools`.
#[derive(Args)]
pub struct ToolsArgs {}

/// Installs or builds every test tool, printing what each step did and how long it took.
pub fn run(_args: ToolsArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // The same function testkit uses to find the binaries, so the two never disagree.
    let tools_dir = vertice_testkit::tools::tools_dir();
    std::fs::create_dir_all(&tools_dir)
        .with_context(|| format!("creating the tools folder {}", tools_dir.display()))?;
    println!("tools folder: {}", tools_dir.display());

    step("debian packages", || {
        Ok(match apt::ensure(pins::DEBIAN_PACKAGES)? {
            apt::Outcome::AllInstalled => {
                format!("all {} installed", pins::DEBIAN_PACKAGES.len())
            }
            apt::Outcome::Installed(packages) => format!("installed {}", packages.join(" ")),
        })
    })?;
    let go_version = go::go_version()?;
    println!("using {go_version}");
    step(&format!("etcd {}", pins::ETCD), || {
        Ok(describe(go::ensure_etcd(&tools_dir)?))
    })?;
    step(
        &format!(
            "kube-apiserver, kube-controller-manager, kubectl {}",
            pins::KUBERNETES
        ),
        || Ok(describe(go::ensure_kubernetes(&tools_dir)?)),
    )?;
    step(&format!("helm {}", pins::HELM), || {
        Ok(describe(go::ensure_helm(&tools_dir)?))
    })?;
    step("service emulators", || {
        services::ensure_all(&tools_dir)?;
        Ok("done".to_owned())
    })?;
    println!(
        "tools ready in {:.1?}; binaries in {}",
        started.elapsed(),
        Path::new(&tools_dir).join("bin").display()
    );
    Ok(())
}

fn describe(outcome: go::Outcome) -> String {
    match outcome {
        go::Outcome::Cached => "cached".to_owned(),
        go::Outcome::Built => "built".to_owned(),
    }
}

/// Runs one step and prints its result and duration.
fn step(name: &str, body: impl FnOnce() -> anyhow::Result<String>) -> anyhow::Result<()> {
    println!("==> {name}");
    let started = Instant::now();
    let result = body().with_context(|| format!("tools step `{name}` failed"));
    match &result {
        Ok(what) => println!("<== {name}: {what} ({:.1?})", started.elapsed()),
        Err(_) => println!("<== {name}: FAILED ({:.1?})", started.elapsed()),
    }
    result.map(|_| ())
}
