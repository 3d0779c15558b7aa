//! How a run ended: the store's word (the manifest: sizes, location, whose run made it), the
//! runner's word when it failed (the Pod's termination message: exit code and error JSON),
//! and the storage probe of the breaker.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::{Api, ResourceExt};
use vertice_core::Context;

use super::backup_request::RunError;
use super::in_process::RunFailure;
use super::job_result;
use super::labels;
use super::resolve::{self, RunSettings};
use super::secret_files;
use crate::api::BackupRequest;
use crate::api::backup_request::BackupResult;
use crate::api::run::ErrorKind;
use crate::error::BackupError;

/// How long a storage probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a run ended, before it is written.
#[derive(Clone, Debug)]
pub(super) struct Finish {
    pub(super) success: bool,
    pub(super) reason: String,
    pub(super) kind: Option<ErrorKind>,
    pub(super) message: String,
    pub(super) result: BackupResult,
    /// Seconds the run's managed-database snapshot took (from the manifest), for the metric.
    pub(super) snapshot_seconds: Option<f64>,
}

impl Finish {
    pub(super) fn failed(kind: ErrorKind, reason: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            success: false,
            reason: reason.to_owned(),
            kind: Some(kind),
            message: message.clone(),
            result: BackupResult {
                error_kind: Some(kind),
                error_message: Some(message),
                ..BackupResult::default()
            },
            snapshot_seconds: None,
        }
    }

    pub(super) fn from_failure(failure: RunFailure) -> Self {
        let reason = format!("{:?}", failure.kind);
        Self::failed(failure.kind, &reason, failure.message)
    }
}

/// The run's result from the store: a manifest with this run's UID is a success, whatever
/// the executor said (`failure`); without one, `failure` (or, for a run that claimed
/// success, an internal error).
pub(super) async fn read_result(
    request: &BackupRequest,
    settings: &RunSettings,
    ctx: &Context,
    failure: Option<RunFailure>,
) -> Result<Finish, RunError> {
    let secrets: Api<Secret> = ctx.api(&request.namespace().unwrap_or_default());
    let name = &settings.backup_name;
    let Some((store, _files)) = secret_files::open_store(&secrets, &settings.storage).await? else {
        // A PersistentVolumeClaim the operator cannot read: the runner's word is all there is.
        return Ok(match failure {
            Some(failure) => Finish::from_failure(failure),
            None => success(settings, None),
        });
    };
    let manifest = match store.read_manifest(name).await {
        Ok(manifest) => Some(manifest),
        Err(BackupError::NotFound(_)) => None,
        Err(error) if failure.is_some() => {
            tracing::warn!("cannot read the manifest of a failed run: {error}");
            None
        }
        Err(error) => return Err(RunError::Store(error)),
    };
    let ours = manifest
        .as_ref()
        .is_some_and(|manifest| manifest.labels.get(labels::REQUEST_UID) == request.uid().as_ref());
    Ok(match (manifest, ours, failure) {
        (Some(manifest), true, _) => success(settings, Some(&manifest)),
        (Some(_), false, _) => Finish::failed(
            ErrorKind::AlreadyExists,
            "AlreadyExists",
            format!("a backup named {name:?} made by another run already exists in the store"),
        ),
        (None, _, Some(failure)) => Finish::from_failure(failure),
        (None, _, None) => Finish::failed(
            ErrorKind::Internal,
            "Internal",
            format!("the run reported success but the store has no manifest for {name:?}"),
        ),
    })
}

/// A successful result; sizes and location from `manifest` (the store's word).
pub(super) fn success(
    settings: &RunSettings,
    manifest: Option<&crate::manifest::Manifest>,
) -> Finish {
    let name = manifest.map_or_else(|| settings.backup_name.clone(), |m| m.name.clone());
    let location = resolve::location(&settings.storage, &name);
    let snapshot = manifest.and_then(|m| m.snapshot.as_ref());
    Finish {
        success: true,
        reason: "Succeeded".into(),
        kind: None,
        message: format!("backup {name} is stored at {location}"),
        result: BackupResult {
            backup_name: Some(name),
            location: Some(location),
            raw_size: manifest.and_then(|m| i64::try_from(m.raw_size).ok()),
            stored_size: manifest.and_then(|m| i64::try_from(m.stored_size).ok()),
            snapshot_arn: snapshot.map(|record| record.arn.clone()),
            error_kind: None,
            error_message: None,
            ..object_counts(manifest)
        },
        snapshot_seconds: snapshot.map(|record| record.duration_seconds),
    }
}

/// The object-copy counts of a result, from the manifest's `bucketCopy` record (none for a
/// run without an object part).
fn object_counts(manifest: Option<&crate::manifest::Manifest>) -> BackupResult {
    let Some(record) = manifest.and_then(|m| m.bucket_copy.as_ref()) else {
        return BackupResult::default();
    };
    let count = |value: u64| Some(i64::try_from(value).unwrap_or(i64::MAX));
    BackupResult {
        object_count: count(record.object_count),
        object_bytes: count(record.total_bytes),
        objects_copied: count(record.copied),
        objects_skipped: count(record.skipped),
        ..BackupResult::default()
    }
}

/// Why the newest failed Pod of Job `job` failed: its exit code and the runner's result JSON
/// (`{"error": {"kind", "message", "exitCode"}}`) from the termination message.
///
/// A failure to list the pods (e.g. refused: the operator's RBAC lacks `list pods`) is logged,
/// not hidden: the run still ends, with a less precise cause.
pub(super) async fn termination(pods: &Api<Pod>, job: &str) -> Option<RunFailure> {
    let terminated = match job_result::newest_termination(pods, job, false).await {
        Ok(terminated) => terminated?,
        Err(error) => {
            tracing::warn!(
                job,
                error = &error as &dyn std::error::Error,
                "reading the failed Job's pods for its cause failed"
            );
            return None;
        }
    };
    Some(failure_from_termination(
        terminated.exit_code,
        &terminated.message.unwrap_or_default(),
    ))
}

/// The failure a runner's termination message describes: the result JSON's kind and message
/// (`{"error": {"kind", "message", "exitCode"}}`), else the exit code and the message's last
/// 1024 characters (with `FallbackToLogsOnError`, the log's tail).
pub(super) fn failure_from_termination(exit_code: i32, message: &str) -> RunFailure {
    let parsed: Option<serde_json::Value> = serde_json::from_str(message).ok();
    let error = parsed.as_ref().and_then(|json| json.get("error"));
    let text = error
        .and_then(|error| error.get("message"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .or_else(|| parsed.as_ref().and_then(check_failure))
        .unwrap_or_else(|| {
            let tail: Vec<char> = message.chars().collect();
            let tail: String = tail[tail.len().saturating_sub(1024)..].iter().collect();
            match tail.trim() {
                "" => format!("exit code {exit_code} (no result message)"),
                tail => format!("exit code {exit_code}: {tail}"),
            }
        });
    let code = error
        .and_then(|error| error.get("exitCode"))
        .and_then(serde_json::Value::as_i64)
        .and_then(|code| i32::try_from(code).ok())
        .unwrap_or(exit_code);
    RunFailure {
        kind: ErrorKind::from_exit_code(code),
        message: text,
    }
}

/// What a restore's count check (`verification.differences`) or a drill (`differences`,
/// `isolated`) found wrong, from a result that exited 9 without an error object.
fn check_failure(result: &serde_json::Value) -> Option<String> {
    let listed = |pointer: &str| -> Vec<String> {
        result
            .pointer(pointer)
            .and_then(serde_json::Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut differences = listed("/verification/differences");
    differences.extend(listed("/differences"));
    if !differences.is_empty() {
        return Some(format!(
            "restored counts differ from the dump's: {}",
            differences.join("; ")
        ));
    }
    (result.get("isolated") == Some(&serde_json::Value::Bool(false))).then(|| {
        "the restored copy reaches outside itself (see the drill's isolation report)".into()
    })
}

/// A cheap request to the store (a list of its prefix): `Err` with the store's message when it
/// does not answer.
pub(super) async fn probe(secrets: &Api<Secret>, settings: &RunSettings) -> Result<(), String> {
    let opened = secret_files::open_store(secrets, &settings.storage)
        .await
        .map_err(|error| error.to_string())?;
    let Some((store, _files)) = opened else {
        return Ok(());
    };
    // The object-store client retries an unreachable server for minutes; a probe must not hold
    // a reconcile that long.
    match tokio::time::timeout(PROBE_TIMEOUT, store.list_backup_names()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runners_result_json_gives_kind_and_message() {
        let json = r#"{"error":{"kind":"database","message":"cannot connect to the Postgres server: refused","exitCode":4}}"#;
        let failure = failure_from_termination(4, json);
        assert_eq!(failure.kind, ErrorKind::DatabaseFailed);
        assert_eq!(
            failure.message,
            "cannot connect to the Postgres server: refused"
        );
        // The JSON's exit code wins over the container's (a wrapper may exit differently).
        let store = r#"{"error":{"kind":"store","message":"object store: 503","exitCode":5}}"#;
        assert_eq!(
            failure_from_termination(1, store).kind,
            ErrorKind::StorageFailed
        );
    }

    #[test]
    fn a_failed_count_check_lists_the_differences() {
        let restore = r#"{"name":"b","verification":{"objectsCompared":2,"differences":["public.items: 2000 at dump time, 1999 restored"]}}"#;
        let failure = failure_from_termination(9, restore);
        assert_eq!(failure.kind, ErrorKind::VerificationFailed);
        assert!(
            failure.message.contains("public.items: 2000 at dump time"),
            "{}",
            failure.message
        );
        let drill = r#"{"differences":[],"isolated":false}"#;
        let failure = failure_from_termination(9, drill);
        assert!(
            failure.message.contains("reaches outside itself"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn without_json_the_exit_code_and_the_logs_tail_say_why() {
        let failure = failure_from_termination(137, "");
        assert_eq!(failure.kind, ErrorKind::Internal);
        assert_eq!(failure.message, "exit code 137 (no result message)");
        let long = format!("{}END", "x".repeat(5000));
        let failure = failure_from_termination(3, &long);
        assert_eq!(failure.kind, ErrorKind::InvalidConfiguration);
        assert!(failure.message.ends_with("END"));
        assert!(failure.message.len() < 1100);
        for (code, kind) in [
            (2, ErrorKind::InvalidConfiguration),
            (6, ErrorKind::IntegrityFailed),
            (7, ErrorKind::NotFound),
            (8, ErrorKind::AlreadyExists),
            (9, ErrorKind::VerificationFailed),
            (130, ErrorKind::Cancelled),
        ] {
            assert_eq!(failure_from_termination(code, "not json").kind, kind);
        }
    }
}
