//! The parts of a VerticeBackup's status read from its BackupRequests: the active runs, the
//! newest successful backup and the `LastBackupSucceeded` condition. The runs' status is the
//! BackupRequest controller's (which reads sizes and location from the stored manifest); this
//! only copies it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use vertice_core::conditions::{self, ConditionStatus};

use crate::api::BackupRequest;
use crate::api::refs::LocalRef;
use crate::api::run::RunPhase;
use crate::api::vertice_backup::BackupRecord;

use super::history::finished_at;
use super::scheduling::{is_active, phase};

/// Condition type: whether the newest finished run succeeded.
pub const LAST_BACKUP_SUCCEEDED: &str = "LastBackupSucceeded";

/// The active runs, by name, sorted.
pub fn active_runs(runs: &[BackupRequest]) -> Vec<LocalRef> {
    let mut names: Vec<String> = runs
        .iter()
        .filter(|run| is_active(run))
        .map(ResourceExt::name_any)
        .collect();
    names.sort();
    names.into_iter().map(|name| LocalRef { name }).collect()
}

/// The newest finished run (by completion time, then name).
fn newest_finished(runs: &[BackupRequest]) -> Option<&BackupRequest> {
    runs.iter()
        .filter(|run| phase(run).is_finished())
        .max_by(|a, b| {
            finished_at(a)
                .cmp(&finished_at(b))
                .then_with(|| a.name_any().cmp(&b.name_any()))
        })
}

/// The record of the newest succeeded run that reported its backup, if newer than `previous`
/// (runs beyond the history limit are gone, so the status keeps what it saw).
pub fn last_successful(
    runs: &[BackupRequest],
    previous: Option<BackupRecord>,
) -> Option<BackupRecord> {
    let newest = runs
        .iter()
        .filter(|run| phase(run) == RunPhase::Succeeded)
        .filter_map(|run| {
            let status = run.status.as_ref()?;
            let result = status.result.as_ref()?;
            let time = status
                .times
                .completion_time
                .clone()
                .or_else(|| run.metadata.creation_timestamp.clone())?;
            Some(BackupRecord {
                name: result.backup_name.clone().unwrap_or_else(|| run.name_any()),
                request: Some(run.name_any()),
                time,
                raw_size: result.raw_size,
                stored_size: result.stored_size,
                location: result.location.clone().unwrap_or_default(),
            })
        })
        .max_by(|a, b| a.time.0.cmp(&b.time.0).then_with(|| a.name.cmp(&b.name)));
    match (newest, previous) {
        (Some(newest), Some(previous)) if previous.time.0 > newest.time.0 => Some(previous),
        (Some(newest), _) => Some(newest),
        (None, previous) => previous,
    }
}

/// `LastBackupSucceeded` from the newest finished run; `previous` is kept when no finished run
/// is left (history limits) so the condition does not forget.
pub fn last_backup_condition(runs: &[BackupRequest], previous: Option<&Condition>) -> Condition {
    let Some(run) = newest_finished(runs) else {
        return previous.cloned().unwrap_or_else(|| {
            conditions::new(
                LAST_BACKUP_SUCCEEDED,
                ConditionStatus::Unknown,
                "NoRunFinished",
                "no backup run has finished yet",
            )
        });
    };
    let result = run
        .status
        .as_ref()
        .and_then(|status| status.result.as_ref());
    if phase(run) == RunPhase::Succeeded {
        let backup = result
            .and_then(|result| result.backup_name.clone())
            .unwrap_or_else(|| run.name_any());
        conditions::new(
            LAST_BACKUP_SUCCEEDED,
            ConditionStatus::True,
            "BackupSucceeded",
            format!("run {} stored backup {backup}", run.name_any()),
        )
    } else {
        let kind = result
            .and_then(|result| result.error_kind)
            .map_or_else(|| "Unknown".to_owned(), |kind| format!("{kind:?}"));
        let message = result
            .and_then(|result| result.error_message.clone())
            .unwrap_or_default();
        conditions::new(
            LAST_BACKUP_SUCCEEDED,
            ConditionStatus::False,
            "BackupFailed",
            format!("run {} failed ({kind}): {message}", run.name_any()),
        )
    }
}

/// A condition time's instant as chrono's.
pub fn to_chrono(time: &Time) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::<chrono::Utc>::from_timestamp(time.0.as_second(), 0)
}
