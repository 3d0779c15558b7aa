//! The `vertice-backup` binary the demo runs: the operator process and, through the kubelet
//! stand-in, every runner Job's container.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::workspace_root;

/// Builds `vertice-backup` (the debug profile the tests use, or `release`) and returns the path
/// of the executable cargo reports, so a custom `CARGO_TARGET_DIR` or build dir is followed.
///
/// Errors: cargo could not be started, the build failed, or cargo named no executable.
pub fn build_backup_binary(release: bool) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "--package",
        "vertice-backup",
        "--bin",
        "vertice-backup",
        "--message-format=json-render-diagnostics",
    ]);
    if release {
        command.arg("--release");
    }
    let output = command
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!(
            "`cargo build -p vertice-backup` exited with {}",
            output.status
        );
    }
    executable_from_messages(&String::from_utf8_lossy(&output.stdout))
        .context("cargo build did not name the vertice-backup executable")
}

/// The `executable` of the `vertice-backup` bin target in cargo's JSON messages (one a line).
fn executable_from_messages(messages: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "vertice-backup")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bin_artifact_is_found_among_other_messages() {
        let messages = concat!(
            "{\"reason\":\"compiler-artifact\",\"target\":{\"name\":\"vertice-backup\"},\"executable\":null}\n",
            "not json\n",
            "{\"reason\":\"compiler-artifact\",\"target\":{\"name\":\"vertice-core\"},\"executable\":\"/t/other\"}\n",
            "{\"reason\":\"compiler-artifact\",\"target\":{\"name\":\"vertice-backup\"},\"executable\":\"/t/debug/vertice-backup\"}\n",
            "{\"reason\":\"build-finished\",\"success\":true}\n",
        );
        assert_eq!(
            executable_from_messages(messages),
            Some(PathBuf::from("/t/debug/vertice-backup"))
        );
        assert_eq!(
            executable_from_messages("{\"reason\":\"build-finished\"}"),
            None
        );
    }
}
