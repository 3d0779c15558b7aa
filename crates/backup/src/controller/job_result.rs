//! Where a run's Job is, read from the Job's conditions and its Pods' termination messages
//! (the runner writes its result JSON to `/dev/termination-log`).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use kube::Api;
use kube::api::ListParams;

use super::job;
use crate::api::run::ErrorKind;

/// How one Job stands.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    /// There is no such Job (not created yet, or deleted).
    Missing,
    /// It runs; `pods` Pods were started so far.
    Running {
        /// Pods started (each one attempt).
        pods: i32,
    },
    /// It completed; the last Pod's result JSON, if it left one.
    Succeeded {
        /// Pods started.
        pods: i32,
        /// The runner's result JSON.
        result: Option<serde_json::Value>,
    },
    /// It failed.
    Failed {
        /// Pods started.
        pods: i32,
        /// Why, by kind.
        kind: ErrorKind,
        /// What went wrong (the runner's message, free of secrets).
        message: String,
    },
}

/// Reads Job `name` and, once it finished, its newest Pod's termination message.
pub async fn job_state(
    jobs: &Api<Job>,
    pods: &Api<Pod>,
    name: &str,
) -> Result<JobState, kube::Error> {
    let Some(found) = jobs.get_opt(name).await? else {
        return Ok(JobState::Missing);
    };
    let status = found.status.unwrap_or_default();
    let started =
        status.succeeded.unwrap_or(0) + status.failed.unwrap_or(0) + status.active.unwrap_or(0);
    let condition = |type_: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|condition| condition.type_ == type_ && condition.status == "True")
            .cloned()
    };
    if condition("Complete").is_some() {
        let result = newest_termination(pods, name, true)
            .await?
            .and_then(|terminated| terminated.message)
            .and_then(|message| serde_json::from_str(&message).ok());
        return Ok(JobState::Succeeded {
            pods: started,
            result,
        });
    }
    if let Some(failed) = condition("Failed") {
        let (kind, message) = match newest_termination(pods, name, false).await? {
            Some(terminated) => failure(&terminated),
            None if failed.reason.as_deref() == Some("DeadlineExceeded") => (
                ErrorKind::Cancelled,
                "the run exceeded executor.activeDeadlineSeconds".to_owned(),
            ),
            None => (
                ErrorKind::Internal,
                format!(
                    "the Job failed ({}) and its Pod left no result",
                    failed.reason.unwrap_or_default()
                ),
            ),
        };
        return Ok(JobState::Failed {
            pods: started,
            kind,
            message,
        });
    }
    Ok(JobState::Running { pods: started })
}

/// The runner container's newest termination among Job `job`'s Pods, successful ones
/// (`succeeded`) or failed ones.
async fn newest_termination(
    pods: &Api<Pod>,
    job: &str,
    succeeded: bool,
) -> Result<Option<ContainerStateTerminated>, kube::Error> {
    let list = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await?;
    Ok(list
        .items
        .iter()
        .filter_map(|pod| {
            pod.status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .iter()
                .find(|container| container.name == job::CONTAINER)?
                .state
                .as_ref()?
                .terminated
                .clone()
        })
        .filter(|terminated| (terminated.exit_code == 0) == succeeded)
        .max_by_key(|terminated| terminated.finished_at.as_ref().map(|time| time.0)))
}

/// The kind and message of a failed runner: its result JSON's `error` (`kind`, `message`,
/// `exitCode`), else its exit code and the message's last KiB (a crash's log tail).
pub fn failure(terminated: &ContainerStateTerminated) -> (ErrorKind, String) {
    let message = terminated.message.clone().unwrap_or_default();
    let parsed: Option<serde_json::Value> = serde_json::from_str(&message).ok();
    let error = parsed.as_ref().and_then(|json| json.get("error"));
    let differences = parsed
        .as_ref()
        .and_then(|json| json.pointer("/verification/differences"))
        .and_then(serde_json::Value::as_array)
        .filter(|differences| !differences.is_empty())
        .map(|differences| {
            let listed: Vec<&str> = differences.iter().filter_map(|d| d.as_str()).collect();
            format!(
                "restored counts differ from the dump's: {}",
                listed.join("; ")
            )
        });
    let text = error
        .and_then(|error| error.get("message"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .or(differences)
        .unwrap_or_else(|| {
            let tail: Vec<char> = message.chars().rev().take(1024).collect();
            let tail: String = tail.into_iter().rev().collect();
            format!("exit code {}: {}", terminated.exit_code, tail.trim())
        });
    let code = error
        .and_then(|error| error.get("exitCode"))
        .and_then(serde_json::Value::as_i64)
        .and_then(|code| i32::try_from(code).ok())
        .unwrap_or(terminated.exit_code);
    (ErrorKind::from_exit_code(code), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminated(exit_code: i32, message: &str) -> ContainerStateTerminated {
        ContainerStateTerminated {
            exit_code,
            message: Some(message.to_owned()),
            ..ContainerStateTerminated::default()
        }
    }

    #[test]
    fn the_runner_json_names_kind_and_message() {
        let json = r#"{"error":{"kind":"database","message":"connection refused","exitCode":4}}"#;
        assert_eq!(
            failure(&terminated(4, json)),
            (ErrorKind::DatabaseFailed, "connection refused".to_owned())
        );
    }

    #[test]
    fn a_count_mismatch_lists_the_differences() {
        let json = r#"{"name":"b","verification":{"objectsCompared":2,"differences":["public.items: 2000 at dump time, 1999 restored"]}}"#;
        let (kind, message) = failure(&terminated(9, json));
        assert_eq!(kind, ErrorKind::VerificationFailed);
        assert!(
            message.contains("public.items: 2000 at dump time"),
            "{message}"
        );
    }

    #[test]
    fn a_crash_without_json_reports_the_exit_code_and_the_tail() {
        let (kind, message) = failure(&terminated(137, "…\nKilled"));
        assert_eq!(kind, ErrorKind::Internal);
        assert!(message.starts_with("exit code 137"), "{message}");
        assert!(message.ends_with("Killed"), "{message}");
        let long = "é".repeat(5000);
        let (_, message) = failure(&terminated(1, &long));
        assert!(message.chars().count() < 1100, "the tail is bounded");
    }
}
