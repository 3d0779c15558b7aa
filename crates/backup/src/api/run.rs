//! What BackupRequest and RestoreRequest statuses share: the phase of a run and how it ended.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RunPhase {
    /// Accepted, not yet started.
    #[default]
    Pending,
    /// Waiting for a free slot (per-project limit, concurrency policy or storage breaker);
    /// the `Ready` condition says why.
    Queued,
    /// Executing.
    Running,
    /// Finished successfully (final).
    Succeeded,
    /// Finished unsuccessfully (final).
    Failed,
}

impl RunPhase {
    /// Whether the run has ended (its result no longer changes).
    pub fn is_finished(self) -> bool {
        matches!(self, RunPhase::Succeeded | RunPhase::Failed)
    }
}

/// Why a run failed, by kind (the engine's exit-code classes), so alerts and users can tell a
/// broken database from a broken bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ErrorKind {
    /// The spec or its Secrets are wrong (exit 2 or 3).
    InvalidConfiguration,
    /// The database failed or refused (exit 4).
    DatabaseFailed,
    /// The object store failed or refused (exit 5).
    StorageFailed,
    /// Corrupted or missing data, wrong key, unknown format (exit 6).
    IntegrityFailed,
    /// The backup to restore does not exist (exit 7).
    NotFound,
    /// A backup of that name exists; nothing was overwritten (exit 8).
    AlreadyExists,
    /// A drill or restore verification found different counts (exit 9).
    VerificationFailed,
    /// A pre hook with `failurePolicy: Fail` failed.
    HookFailed,
    /// The run was cancelled (exit 130) or exceeded its deadline.
    Cancelled,
    /// Anything else (exit 1, or a Pod that never reported).
    Internal,
}

impl ErrorKind {
    /// The kind of a runner exit code (README "Exit codes").
    pub fn from_exit_code(code: i32) -> Self {
        match code {
            2 | 3 => ErrorKind::InvalidConfiguration,
            4 => ErrorKind::DatabaseFailed,
            5 => ErrorKind::StorageFailed,
            6 => ErrorKind::IntegrityFailed,
            7 => ErrorKind::NotFound,
            8 => ErrorKind::AlreadyExists,
            9 => ErrorKind::VerificationFailed,
            130 => ErrorKind::Cancelled,
            _ => ErrorKind::Internal,
        }
    }
}

/// The fields of a run's status that describe its progress in time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunTimes {
    /// When the run started executing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Seconds from start to completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_to_kinds() {
        assert_eq!(ErrorKind::from_exit_code(4), ErrorKind::DatabaseFailed);
        assert_eq!(ErrorKind::from_exit_code(5), ErrorKind::StorageFailed);
        assert_eq!(
            ErrorKind::from_exit_code(3),
            ErrorKind::InvalidConfiguration
        );
        assert_eq!(ErrorKind::from_exit_code(137), ErrorKind::Internal);
        assert!(RunPhase::Failed.is_finished());
        assert!(!RunPhase::Queued.is_finished());
    }
}
