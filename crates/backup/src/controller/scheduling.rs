//! What a VerticeBackup's schedule does at one reconcile: which slot is due, what the
//! concurrency policy makes of it, and the BackupRequest a slot creates. Pure functions of the
//! VerticeBackup, its runs and the time, so every rule is unit-tested without a cluster.
//!
//! A slot's BackupRequest is named `<vb>-<unix minute of the slot>`: a restarted operator, or
//! two reconciles racing, try to create the same name and the API server lets one win.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use crate::api::refs::LocalRef;
use crate::api::run::RunPhase;
use crate::api::schedule::{Due, Schedule, ScheduleError};
use crate::api::vertice_backup::ConcurrencyPolicy;
use crate::api::{BackupRequest, BackupRequestSpec, VerticeBackup};

use super::labels;

// The shared keys of `labels.rs`, under the names this controller's code uses.
/// Label: the project a run counts against.
pub const PROJECT_LABEL: &str = labels::PROJECT;
/// Label: the VerticeBackup's name, on the runs it creates and in manifests.
pub const POLICY_LABEL: &str = labels::POLICY;
/// Label: the VerticeBackup's UID, in manifests (retention filters on it).
pub const POLICY_UID_LABEL: &str = labels::POLICY_UID;
/// Label: who manages an object.
pub const MANAGED_BY_LABEL: &str = labels::MANAGED_BY;
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = labels::MANAGED_BY_VALUE;
/// Annotation on a scheduled run: its slot in RFC 3339.
pub const SCHEDULED_TIME_ANNOTATION: &str = labels::SCHEDULED_TIME;

/// The VerticeBackup's schedule, or why it has none.
pub fn schedule_of(backup: &VerticeBackup) -> Result<Schedule, ScheduleError> {
    Schedule::new(&backup.spec.schedule, backup.spec.time_zone.as_deref())
}

/// The deterministic name of the run of `slot`: `<vb>-<unix minute>`.
pub fn run_name(backup_name: &str, slot: DateTime<Utc>) -> String {
    format!("{backup_name}-{}", slot.timestamp().div_euclid(60))
}

/// Whether `run` is controlled by `backup` (its controller ownerReference has its UID).
pub fn is_owned_by<K: Resource>(run: &K, backup: &VerticeBackup) -> bool {
    let uid = backup.uid();
    run.owner_references()
        .iter()
        .any(|owner| owner.controller == Some(true) && Some(&owner.uid) == uid.as_ref())
}

/// The phase of a run (`Pending` before its controller wrote one).
pub fn phase(run: &BackupRequest) -> RunPhase {
    run.status
        .as_ref()
        .map(|status| status.phase)
        .unwrap_or_default()
}

/// Whether a run is active: not finished and not being deleted.
pub fn is_active(run: &BackupRequest) -> bool {
    !phase(run).is_finished() && run.metadata.deletion_timestamp.is_none()
}

/// The slot a run was created for (its annotation), if it was created by a schedule.
pub fn scheduled_time(run: &BackupRequest) -> Option<DateTime<Utc>> {
    run.annotations()
        .get(SCHEDULED_TIME_ANNOTATION)
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|time| time.with_timezone(&Utc))
}

/// The BackupRequest of `slot`: named by [`run_name`], owned by `backup` (controller), labelled
/// with the policy, its project and the manager, annotated with the slot. `None` when the
/// VerticeBackup has no UID yet (it was never stored).
pub fn scheduled_run(backup: &VerticeBackup, slot: DateTime<Utc>) -> Option<BackupRequest> {
    let owner = backup.controller_owner_ref(&())?;
    let name = backup.name_any();
    let identity = super::project::policy_identity(backup);
    let mut labels = BTreeMap::from([
        (POLICY_LABEL.to_owned(), name.clone()),
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
    ]);
    labels.extend(super::project::identity_labels(&identity));
    let annotations = BTreeMap::from([(
        SCHEDULED_TIME_ANNOTATION.to_owned(),
        slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )]);
    let spec = BackupRequestSpec {
        backup_ref: Some(LocalRef { name: name.clone() }),
        target: None,
        object_store: None,
        snapshot: None,
        storage: None,
        encryption: None,
        compression: None,
        executor: None,
        backup_name: None,
        labels: BTreeMap::new(),
        // The run inherits the policy's project and environment (printer columns, metrics).
        project_id: backup.spec.project_id.clone(),
        environment: backup.spec.environment.clone(),
    };
    let mut run = BackupRequest::new(&run_name(&name, slot), spec);
    run.metadata = ObjectMeta {
        name: Some(run_name(&name, slot)),
        namespace: backup.namespace(),
        labels: Some(labels),
        annotations: Some(annotations),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    };
    Some(run)
}

/// What to do about a due slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotAction {
    /// Nothing is due.
    Idle,
    /// Create the slot's run.
    Create(DateTime<Utc>),
    /// `Forbid`: a run is active, so the slot is skipped.
    SkipActive {
        /// The skipped slot.
        slot: DateTime<Utc>,
        /// The active runs.
        active: Vec<String>,
    },
    /// `Replace`: delete the active runs, then create the slot's run.
    Replace {
        /// The slot.
        slot: DateTime<Utc>,
        /// The runs to delete.
        active: Vec<String>,
    },
}

/// What the concurrency policy makes of what is due, given the names of the active runs.
pub fn decide(due: &Due, policy: ConcurrencyPolicy, active: &[String]) -> SlotAction {
    let Some(slot) = due.run else {
        return SlotAction::Idle;
    };
    if active.is_empty() {
        return SlotAction::Create(slot);
    }
    match policy {
        ConcurrencyPolicy::Allow => SlotAction::Create(slot),
        ConcurrencyPolicy::Forbid => SlotAction::SkipActive {
            slot,
            active: active.to_vec(),
        },
        ConcurrencyPolicy::Replace => SlotAction::Replace {
            slot,
            active: active.to_vec(),
        },
    }
}

/// The newest slot already acted on: the status's `lastScheduleTime`, the newest slot among
/// the runs (a run created just before a crash that lost the status write), else the
/// VerticeBackup's creation (a new schedule does not run the slots before it existed).
pub fn last_acted_slot(
    backup: &VerticeBackup,
    runs: &[BackupRequest],
    fallback: DateTime<Utc>,
) -> DateTime<Utc> {
    let from_status = backup
        .status
        .as_ref()
        .and_then(|status| status.last_schedule_time.as_ref())
        .map(|time| DateTime::<Utc>::from_timestamp(time.0.as_second(), 0).unwrap_or(fallback));
    let from_runs = runs.iter().filter_map(scheduled_time).max();
    let created = backup
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|time| DateTime::<Utc>::from_timestamp(time.0.as_second(), 0));
    [from_status, from_runs]
        .into_iter()
        .flatten()
        .max()
        .or(created)
        .unwrap_or(fallback)
}

/// The missed-slot count this reconcile starts from: `recorded` (the status's
/// `missedSchedules`), or 0 when a run exists whose slot is newer than the status's
/// `lastScheduleTime` (`recorded_last`; absent counts as older than every run).
///
/// Creating a run restarts the count, so such a run means the status was read before that
/// creation was written: from a cache that had not yet seen the write, or after a write that
/// was lost. Carrying the stale count on would keep it forever, since that slot is never due
/// again.
pub fn carried_missed(
    recorded: Option<i32>,
    recorded_last: Option<DateTime<Utc>>,
    newest_run_slot: Option<DateTime<Utc>>,
) -> i32 {
    match newest_run_slot {
        Some(run) if recorded_last.is_none_or(|last| run > last) => 0,
        _ => recorded.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, h, mi, 0)
            .single()
            .unwrap_or_default()
    }

    fn due(run: Option<DateTime<Utc>>) -> Due {
        Due {
            run,
            missed: 0,
            next: None,
        }
    }

    #[test]
    fn names_are_the_unix_minute_of_the_slot() {
        assert_eq!(run_name("nightly", utc(0, 0)), "nightly-29453760");
        assert_eq!(run_name("nightly", utc(0, 1)), "nightly-29453761");
        // Seconds inside the minute do not change the name.
        let late = utc(0, 1) + chrono::TimeDelta::seconds(59);
        assert_eq!(run_name("nightly", late), "nightly-29453761");
    }

    #[test]
    fn each_policy_decides_as_a_cron_job_does() {
        let active = vec!["nightly-1".to_owned()];
        let slot = utc(3, 0);
        for policy in [
            ConcurrencyPolicy::Forbid,
            ConcurrencyPolicy::Allow,
            ConcurrencyPolicy::Replace,
        ] {
            assert_eq!(decide(&due(None), policy, &active), SlotAction::Idle);
            assert_eq!(
                decide(&due(Some(slot)), policy, &[]),
                SlotAction::Create(slot)
            );
        }
        assert_eq!(
            decide(&due(Some(slot)), ConcurrencyPolicy::Allow, &active),
            SlotAction::Create(slot)
        );
        assert_eq!(
            decide(&due(Some(slot)), ConcurrencyPolicy::Forbid, &active),
            SlotAction::SkipActive {
                slot,
                active: active.clone()
            }
        );
        assert_eq!(
            decide(&due(Some(slot)), ConcurrencyPolicy::Replace, &active),
            SlotAction::Replace { slot, active }
        );
    }

    #[test]
    fn a_run_newer_than_the_recorded_slot_restarts_the_missed_count() {
        let (first, second, third) = (utc(1, 0), utc(2, 0), utc(3, 0));
        // Fresh status: the skipped slot is newer than the newest run; the count stays.
        assert_eq!(carried_missed(Some(1), Some(second), Some(first)), 1);
        // The status recorded the newest run's own slot: its count stands.
        assert_eq!(carried_missed(Some(2), Some(third), Some(third)), 2);
        // Stale status: a run of a newer slot exists, so it was created after that read.
        assert_eq!(carried_missed(Some(1), Some(second), Some(third)), 0);
        assert_eq!(carried_missed(Some(4), None, Some(first)), 0);
        // No runs: the status's count, or 0 when it has none.
        assert_eq!(carried_missed(Some(3), Some(second), None), 3);
        assert_eq!(carried_missed(None, None, None), 0);
    }
}
