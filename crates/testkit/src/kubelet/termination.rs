//! How a run ended, in the words of the Pod status: exit code, reason (`Completed`, `Error`,
//! `StartError`) and the termination message (kubelet `getTerminationMessage` rules).

use std::path::Path;

use k8s_openapi::api::core::v1::Container;

use super::container::{Exit, Launch, SETUP_FAILURE_CODE, SETUP_FAILURE_MARKER};
use super::status::{Terminated, now};
use crate::process::read_log_tail;

/// The kubelet's cap on a termination message read from the file
/// (`MaxContainerTerminationMessageLength`).
const MAX_MESSAGE_BYTES: usize = 4096;
/// `FallbackToLogsOnError` takes at most this many of the last log lines and bytes
/// (`MaxContainerTerminationMessageLogLines`/`…LogLength`).
const FALLBACK_LOG_LINES: usize = 80;
const FALLBACK_LOG_BYTES: usize = 2048;
/// What containerd reports for a container that could not start.
const START_ERROR_CODE: i32 = 128;

/// The `terminated` state of a run that could not even be spawned.
pub(crate) fn start_error(
    launch: &Launch,
    error: &std::io::Error,
    started_at: String,
) -> Terminated {
    Terminated {
        exit_code: START_ERROR_CODE,
        signal: None,
        reason: "StartError",
        message: format!("starting {}: {error}", launch.program.display()),
        started_at,
        finished_at: now(),
        container_id: String::new(),
    }
}

/// The `terminated` state of a run: exit code, reason and termination message. A failure of
/// the mount script (before the program ran) is a `StartError` with its message.
pub(crate) fn describe_exit(
    container: &Container,
    exit: Exit,
    launch: &Launch,
    started_at: String,
    container_id: String,
) -> Terminated {
    let finished_at = now();
    if exit.exit_code == SETUP_FAILURE_CODE {
        let tail = read_log_tail(&launch.log_path, 5);
        if let Some(line) = tail
            .lines()
            .rev()
            .find(|line| line.starts_with(SETUP_FAILURE_MARKER))
        {
            return Terminated {
                exit_code: START_ERROR_CODE,
                signal: None,
                reason: "StartError",
                message: line.to_owned(),
                started_at,
                finished_at,
                container_id,
            };
        }
    }
    let policy = container.termination_message_policy.as_deref();
    let message = termination_message(
        &launch.termination_file,
        &launch.log_path,
        policy == Some("FallbackToLogsOnError"),
        exit.exit_code,
    );
    Terminated {
        exit_code: exit.exit_code,
        signal: exit.signal,
        reason: if exit.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        },
        message,
        started_at,
        finished_at,
        container_id,
    }
}

/// The file's message; with `fallback_to_logs`, a failed run with an empty file reports its
/// log's tail instead.
fn termination_message(file: &Path, log: &Path, fallback_to_logs: bool, exit_code: i32) -> String {
    let message = read_termination_message(file);
    if fallback_to_logs && message.is_empty() && exit_code != 0 {
        return log_tail_message(log);
    }
    message
}

/// At most [`MAX_MESSAGE_BYTES`] of the file, as text.
fn read_termination_message(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let cut = &bytes[..bytes.len().min(MAX_MESSAGE_BYTES)];
    String::from_utf8_lossy(cut).into_owned()
}

/// The last [`FALLBACK_LOG_LINES`] lines of the log, cut to its last [`FALLBACK_LOG_BYTES`].
fn log_tail_message(log: &Path) -> String {
    let tail = read_log_tail(log, FALLBACK_LOG_LINES);
    let bytes = tail.as_bytes();
    let cut = &bytes[bytes.len().saturating_sub(FALLBACK_LOG_BYTES)..];
    String::from_utf8_lossy(cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_the_kubelet_rules() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("termination-log");
        let log = dir.path().join("log");
        let many_lines: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&log, &many_lines).unwrap();
        let cases: [(&str, bool, i32, String); 6] = [
            ("from file", false, 1, "from file".to_owned()),
            ("from file", true, 1, "from file".to_owned()),
            ("", false, 1, String::new()),
            // Fallback only for failures.
            ("", true, 0, String::new()),
            // The last 80 lines of the log.
            (
                "",
                true,
                1,
                (21..=100)
                    .map(|i| format!("line {i}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            (
                "",
                true,
                2,
                (21..=100)
                    .map(|i| format!("line {i}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ];
        for (contents, fallback, code, expected) in cases {
            std::fs::write(&file, contents).unwrap();
            assert_eq!(
                termination_message(&file, &log, fallback, code),
                expected,
                "{contents:?} fallback={fallback} code={code}"
            );
        }
        // Long files are cut at 4096 bytes, long logs keep their last 2048 bytes.
        std::fs::write(&file, "m".repeat(5000)).unwrap();
        assert_eq!(termination_message(&file, &log, false, 1).len(), 4096);
        std::fs::write(&file, "").unwrap();
        std::fs::write(&log, format!("{}\nend", "l".repeat(3000))).unwrap();
        let tail = termination_message(&file, &log, true, 1);
        assert_eq!(tail.len(), 2048);
        assert!(tail.ends_with("\nend"));
        // A missing file is an empty message.
        assert_eq!(
            termination_message(&dir.path().join("none"), &log, false, 1),
            ""
        );
    }
}
