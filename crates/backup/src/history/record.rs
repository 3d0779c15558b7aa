//! The rows of the history database, built from a finished run's object (pure: no I/O).
//!
//! Every column comes from the run's metadata and status as the API server holds them, so a
//! row can be checked against `kubectl get -o yaml` field by field: project from the label
//! `vertice.dev/project` (default the namespace), environment from `vertice.dev/environment`
//! (empty when absent), reason and message from the `Ready` condition.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::run::{ErrorKind, RunPhase, RunTimes};
use crate::api::{BackupRequest, RestoreRequest};
use crate::controller::labels;

/// What every run row has.
#[derive(Clone, Debug, PartialEq)]
pub struct RunCommon {
    /// The run object's UID: the primary key, so rewriting a run updates its row.
    pub uid: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Label `vertice.dev/project`, default the namespace.
    pub project: String,
    /// Label `vertice.dev/environment`, or empty.
    pub environment: String,
    /// `Succeeded` or `Failed`.
    pub phase: String,
    /// The `Ready` condition's reason.
    pub reason: Option<String>,
    /// The `Ready` condition's message.
    pub message: Option<String>,
    /// Why it failed, by kind (`StorageFailed`, …).
    pub error_kind: Option<String>,
    /// What went wrong (already free of secrets in the status).
    pub error_message: Option<String>,
    /// Attempts started.
    pub attempts: Option<i32>,
    /// When it started executing.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished: also what the archival lag is measured from.
    pub completed_at: Option<DateTime<Utc>>,
    /// Seconds from start to completion.
    pub duration_seconds: Option<f64>,
}

/// A finished backup run (`vertice_history.backup_runs`).
#[derive(Clone, Debug, PartialEq)]
pub struct BackupRun {
    /// Identity, outcome and times.
    pub common: RunCommon,
    /// `spec.backupRef.name`: the VerticeBackup it ran for (none for an inline run).
    pub policy: Option<String>,
    /// The backup's name in the store.
    pub backup_name: Option<String>,
    /// Where it is stored (no credentials).
    pub location: Option<String>,
    /// Dump bytes before compression and encryption.
    pub raw_bytes: Option<i64>,
    /// Bytes stored.
    pub stored_bytes: Option<i64>,
}

/// A finished restore run (`vertice_history.restore_runs`).
#[derive(Clone, Debug, PartialEq)]
pub struct RestoreRun {
    /// Identity, outcome and times.
    pub common: RunCommon,
    /// The backup restored.
    pub backup_name: Option<String>,
    /// Where it went, e.g. `postgres://db:5432/app_restored`.
    pub target: Option<String>,
    /// Dump bytes restored.
    pub raw_bytes: Option<i64>,
    /// `Passed`, `Failed` or `Skipped`.
    pub verification: Option<String>,
}

/// One row to write.
#[derive(Clone, Debug, PartialEq)]
pub enum RunRecord {
    /// A BackupRequest's.
    Backup(BackupRun),
    /// A RestoreRequest's.
    Restore(RestoreRun),
}

impl RunRecord {
    /// The fields every row has.
    pub fn common(&self) -> &RunCommon {
        match self {
            Self::Backup(run) => &run.common,
            Self::Restore(run) => &run.common,
        }
    }
}

/// The row of `request`, or `None` while it is not finished (or has no UID).
pub fn backup_run(request: &BackupRequest) -> Option<BackupRun> {
    let status = request.status.as_ref()?;
    let result = status.result.clone().unwrap_or_default();
    let common = common(
        request,
        status.phase,
        &status.conditions,
        &status.times,
        status.attempts,
        result.error_kind,
        result.error_message,
    )?;
    Some(BackupRun {
        common,
        policy: request.spec.backup_ref.as_ref().map(|r| r.name.clone()),
        backup_name: result.backup_name,
        location: result.location,
        raw_bytes: result.raw_size,
        stored_bytes: result.stored_size,
    })
}

/// The row of `restore`, or `None` while it is not finished (or has no UID).
pub fn restore_run(restore: &RestoreRequest) -> Option<RestoreRun> {
    let status = restore.status.as_ref()?;
    let result = status.result.clone().unwrap_or_default();
    let common = common(
        restore,
        status.phase,
        &status.conditions,
        &status.times,
        status.attempts,
        result.error_kind,
        result.error_message,
    )?;
    Some(RestoreRun {
        common,
        backup_name: result.backup_name,
        target: result.target,
        raw_bytes: result.raw_size,
        verification: status
            .verification
            .as_ref()
            .and_then(|verification| serde_name(&verification.result)),
    })
}

#[allow(clippy::too_many_arguments)] // the status parts both kinds share
fn common<K: kube::Resource>(
    object: &K,
    phase: RunPhase,
    conditions: &[Condition],
    times: &RunTimes,
    attempts: Option<i32>,
    error_kind: Option<ErrorKind>,
    error_message: Option<String>,
) -> Option<RunCommon> {
    if !phase.is_finished() {
        return None;
    }
    let meta = object.meta();
    let namespace = meta.namespace.clone().unwrap_or_default();
    let label = |key: &str| {
        meta.labels
            .as_ref()
            .and_then(|labels| labels.get(key))
            .cloned()
    };
    let ready = conditions
        .iter()
        .find(|condition| condition.type_ == "Ready");
    Some(RunCommon {
        uid: meta.uid.clone()?,
        name: meta.name.clone().unwrap_or_default(),
        project: label(labels::PROJECT).unwrap_or_else(|| namespace.clone()),
        environment: label(labels::ENVIRONMENT).unwrap_or_default(),
        namespace,
        phase: serde_name(&phase)?,
        reason: ready.map(|condition| condition.reason.clone()),
        message: ready.map(|condition| condition.message.clone()),
        error_kind: error_kind.as_ref().and_then(serde_name),
        error_message,
        attempts,
        started_at: times.start_time.as_ref().and_then(timestamp),
        completed_at: times.completion_time.as_ref().and_then(timestamp),
        duration_seconds: times.duration_seconds,
    })
}

/// The name a unit enum variant has in the API (its serde name).
fn serde_name<T: serde::Serialize>(value: &T) -> Option<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => Some(name),
        _ => None,
    }
}

/// A Kubernetes time as a chrono time, in whole seconds as the API server stores it (so a row
/// written from a status just computed equals one written from the stored status).
pub fn timestamp(time: &Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.0.as_second(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::BackupRequestStatus;
    use crate::api::backup_request::BackupResult;
    use kube::api::ObjectMeta;

    fn request(labels: &[(&str, &str)], phase: RunPhase) -> BackupRequest {
        let mut request: BackupRequest = serde_json::from_value(serde_json::json!({
            "apiVersion": "backup.vertice.dev/v1alpha1",
            "kind": "BackupRequest",
            "metadata": {"name": "nightly-1", "namespace": "shop", "uid": "u-1"},
            "spec": {"backupRef": {"name": "nightly"}},
        }))
        .unwrap();
        request.metadata = ObjectMeta {
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..request.metadata
        };
        request.status = Some(BackupRequestStatus {
            phase,
            result: Some(BackupResult {
                backup_name: Some("b1".into()),
                stored_size: Some(42),
                error_kind: Some(ErrorKind::StorageFailed),
                ..BackupResult::default()
            }),
            ..BackupRequestStatus::default()
        });
        request
    }

    #[test]
    fn only_finished_runs_have_rows() {
        for phase in [RunPhase::Pending, RunPhase::Queued, RunPhase::Running] {
            assert_eq!(backup_run(&request(&[], phase)), None, "{phase:?}");
        }
        for (phase, name) in [
            (RunPhase::Succeeded, "Succeeded"),
            (RunPhase::Failed, "Failed"),
        ] {
            let run = backup_run(&request(&[], phase)).unwrap();
            assert_eq!(run.common.phase, name);
            assert_eq!(run.common.uid, "u-1");
            assert_eq!(run.policy.as_deref(), Some("nightly"));
            assert_eq!(run.stored_bytes, Some(42));
            assert_eq!(run.common.error_kind.as_deref(), Some("StorageFailed"));
        }
    }

    #[test]
    fn project_defaults_to_the_namespace_and_environment_to_empty() {
        let plain = backup_run(&request(&[], RunPhase::Succeeded)).unwrap();
        assert_eq!(
            (
                plain.common.project.as_str(),
                plain.common.environment.as_str()
            ),
            ("shop", "")
        );
        let labelled = backup_run(&request(
            &[
                ("vertice.dev/project", "web"),
                (labels::ENVIRONMENT, "prod"),
            ],
            RunPhase::Failed,
        ))
        .unwrap();
        assert_eq!(
            (
                labelled.common.project.as_str(),
                labelled.common.environment.as_str()
            ),
            ("web", "prod")
        );
    }
}
