//! The demo runs with `TMPDIR` in a fresh folder under `/var/tmp`, not `/tmp`.
//!
//! Why: the kubelet stand-in keeps each Pod's files (Secret volumes, the termination-log file)
//! under the temp dir, and bind-mounts them into the Pod's mount namespace after the Pod's own
//! volumes, parents first. The operator's runner Jobs mount an emptyDir at `/tmp` (their root
//! filesystem is read-only), which would hide everything below `/tmp` before the later binds
//! run. A process cannot change its own environment without `unsafe`, so the demo starts itself
//! again as a child with `TMPDIR` set, and waits for it.

use std::process::ExitStatus;

use anyhow::Context;

/// Set in the child, so it does not start itself again.
const MARKER: &str = "VERTICE_DEMO_PRIVATE_TMPDIR";

/// The parent of the private temp dir: never mounted over by a Pod, unlike `/tmp`.
const PARENT: &str = "/var/tmp";

/// `None` when this process already runs with the private temp dir (go on); otherwise runs this
/// same command again with `TMPDIR` a fresh folder under `/var/tmp` (removed afterwards) and
/// returns how it ended. Ctrl-C reaches
/// both processes (same process group); this one ignores it and waits for the child's clean
/// stop.
///
/// Errors: the folder cannot be created or the child cannot be started.
pub fn rerun_with_private_tmpdir() -> anyhow::Result<Option<ExitStatus>> {
    if std::env::var_os(MARKER).is_some() {
        return Ok(None);
    }
    let tmp = tempfile::Builder::new()
        .prefix("vertice-demo-")
        .tempdir_in(PARENT)
        .with_context(|| format!("creating a folder in {PARENT}"))?;
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(async {
        let mut child = tokio::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("TMPDIR", tmp.path())
            .env(MARKER, "1")
            .spawn()
            .context("starting the demo with a private TMPDIR")?;
        loop {
            tokio::select! {
                status = child.wait() => return anyhow::Ok(status?),
                // Registering the handler is what keeps Ctrl-C from killing this process.
                _ = tokio::signal::ctrl_c() => {}
            }
        }
    })?;
    drop(tmp);
    Ok(Some(status))
}
