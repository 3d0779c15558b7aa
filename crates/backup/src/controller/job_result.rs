//! Where a run's Job is, read from the Job's conditions and its Pods' termination messages
//! (the runner writes its result JSON to `/dev/termination-log`).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use kube::Api;
use kube::api::ListParams;

use super::{job, outcome};
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
            Some(terminated) => {
                let failure = outcome::failure_from_termination(
                    terminated.exit_code,
                    terminated.message.as_deref().unwrap_or_default(),
                );
                (failure.kind, failure.message)
            }
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
pub(super) async fn newest_termination(
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
