//! `cargo xtask demo`: start a local control plane and show how to use it.
//!
//! The control plane is the very one the tests use (testkit's start logic: etcd,
//! kube-apiserver, kube-controller-manager from `cargo xtask tools`), kept running until Ctrl-C.

use std::time::Instant;

use anyhow::Context;
use clap::Args;
use vertice_testkit::control_plane::ControlPlane;

use crate::workspace_root;

/// Arguments of `cargo xtask demo`.
#[derive(Args)]
pub struct DemoArgs {}

/// Runs the demo: tools, control plane, instructions, then waits for Ctrl-C.
pub fn run(_args: DemoArgs) -> anyhow::Result<()> {
    crate::tools::run(crate::tools::ToolsArgs {})?;

    println!("==> starting the local control plane");
    let started = Instant::now();
    let control_plane = ControlPlane::start_blocking()?;
    let demo_dir = workspace_root().join(".demo");
    std::fs::create_dir_all(&demo_dir)
        .with_context(|| format!("creating {}", demo_dir.display()))?;
    let kubeconfig = demo_dir.join("kubeconfig");
    // A copy, because the control plane's own folder is removed when it stops; the copy is
    // self-contained (certificates inline).
    std::fs::copy(control_plane.admin_kubeconfig(), &kubeconfig)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    let kubectl = vertice_testkit::tools::tool_binary("kubectl")?;

    println!(
        "<== control plane ready in {:.1?}: kube-apiserver {} at {}",
        started.elapsed(),
        control_plane.server_version(),
        control_plane.url()
    );
    println!();
    println!("Use it from another terminal (you are cluster-admin):");
    println!("    export KUBECONFIG={}", kubeconfig.display());
    println!("    {} get ns", kubectl.display());
    println!();
    println!("There are no nodes: pods are accepted but never run.");
    println!("Press Ctrl-C to stop the control plane.");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(tokio::signal::ctrl_c())
        .context("waiting for Ctrl-C")?;

    println!("stopping the control plane");
    control_plane.stop();
    // Its certificates belong to a CA that no longer exists.
    let _ = std::fs::remove_file(&kubeconfig);
    drop(control_plane);
    println!("stopped");
    Ok(())
}
