//! The VerticeBackup controller: on the operator's clock it creates the BackupRequest of each
//! due slot (CronJob semantics: `suspend`, `concurrencyPolicy`, `startingDeadlineSeconds`,
//! time zones), the RestoreRequest of each drill slot, trims finished runs to the history
//! limits, applies retention to the store after each new success and on a timer, reports all
//! of it in the status and in Events, and requeues exactly at the next thing due — no other
//! timer. It owns its BackupRequests and RestoreRequests, so a run that finishes reconciles it.
//!
//! The runs' own status is written only by their controllers; this one reads it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use vertice_core::conditions::{self, ConditionStatus};
use vertice_core::error::{is_conflict, is_not_found};
use vertice_core::{Applied, Context, ControllerBuilder, Reconciler};

use crate::api::restore_request::RestoreRequest;
use crate::api::schedule::Schedule;
use crate::api::vertice_backup::DeletionPolicy;
use crate::api::{BackupRequest, VerticeBackup, VerticeBackupStatus};

use super::finished;
use super::history::{beyond_limits, limits};
use super::options::OperatorArgs;
use super::policy_error::PolicyError;
use super::policy_metrics;
use super::policy_status::LAST_BACKUP_SUCCEEDED;
use super::policy_status::{active_runs, last_backup_condition, last_successful, to_chrono};
use super::retention_step::RetentionStep;
use super::scheduling::{
    MANAGED_BY, MANAGED_BY_LABEL, POLICY_LABEL, SlotAction, carried_missed, decide, is_active,
    is_owned_by, last_acted_slot, schedule_of, scheduled_run, scheduled_time,
};
use super::size_gauge::RunSizes;
use super::store_access::{open_store, snapshot_access};
use super::verification::{drill, drill_schedule, last_drill_slot, verified};

/// The finalizer that runs `deletionPolicy` before a VerticeBackup goes.
pub const FINALIZER: &str = "backup.vertice.dev/cleanup";
/// Condition type: whether the schedule runs (next slot) or is suspended.
pub const SCHEDULED: &str = "Scheduled";

/// The VerticeBackup reconciler.
pub struct VerticeBackups {
    pub(super) retention_interval: Duration,
    pub(super) max_delete_percent: u8,
    /// The size gauge, whose series of a deleted VerticeBackup go with it.
    pub(super) sizes: RunSizes,
}

/// The VerticeBackup controller with its finalizer, its owned runs and drills (only those a
/// schedule made: label `app.kubernetes.io/managed-by=vertice-backup`, and only until they
/// are labelled finished: `finished.rs`) and its gauges. `sizes` is the run size gauge.
pub fn controller(
    args: &OperatorArgs,
    sizes: RunSizes,
) -> ControllerBuilder<VerticeBackup, VerticeBackups> {
    let managed = finished::unfinished_and(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let builder = ControllerBuilder::new(VerticeBackups {
        retention_interval: args.retention_interval,
        max_delete_percent: args.retention_max_delete_percent,
        sizes,
    })
    .finalizer(FINALIZER)
    .latest_only()
    .owns_with::<BackupRequest>(watcher::Config::default().labels(&managed))
    .owns_with::<RestoreRequest>(watcher::Config::default().labels(&managed));
    policy_metrics::register(builder)
}

/// The schedule's decision at one reconcile.
struct ScheduleReport {
    last_schedule: Option<DateTime<Utc>>,
    missed: i32,
    next: Option<DateTime<Utc>>,
    condition: Condition,
}

/// The objects of `K` this VerticeBackup controls (by label, then by owner UID).
async fn owned<K>(ctx: &Context, backup: &VerticeBackup) -> Result<Vec<K>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = ctx.api(&backup.namespace().unwrap_or_default());
    let selector = format!("{POLICY_LABEL}={}", backup.name_any());
    let list = api.list(&ListParams::default().labels(&selector)).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|item| is_owned_by(item, backup))
        .collect())
}

impl VerticeBackups {
    /// Creates the run of `slot` (a 409 means a restart or a racing reconcile created it).
    async fn create_run(
        &self,
        ctx: &Context,
        backup: &VerticeBackup,
        slot: DateTime<Utc>,
        runs: &mut Vec<BackupRequest>,
    ) -> Result<(), PolicyError> {
        let Some(run) = scheduled_run(backup, slot) else {
            return Ok(());
        };
        let api: Api<BackupRequest> = ctx.api(&backup.namespace().unwrap_or_default());
        match api.create(&PostParams::default(), &run).await {
            Ok(created) => {
                let note = format!(
                    "created BackupRequest {} for the slot {}",
                    created.name_any(),
                    slot.to_rfc3339()
                );
                ctx.events()
                    .normal_related(
                        &backup.object_ref(&()),
                        &created.object_ref(&()),
                        "RunCreated",
                        "Schedule",
                        note,
                    )
                    .await;
                runs.push(created);
                Ok(())
            }
            Err(error) if is_conflict(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes the active runs (`Replace`) with foreground propagation, so their Jobs go first.
    async fn replace(
        &self,
        ctx: &Context,
        backup: &VerticeBackup,
        active: &[String],
        runs: &mut [BackupRequest],
    ) -> Result<(), PolicyError> {
        let api: Api<BackupRequest> = ctx.api(&backup.namespace().unwrap_or_default());
        for name in active {
            match api.delete(name, &DeleteParams::foreground()).await {
                Ok(_) => {}
                Err(error) if is_not_found(&error) => {}
                Err(error) => return Err(error.into()),
            }
            // Seen as being deleted from now on (not active).
            if let Some(run) = runs.iter_mut().find(|run| &run.name_any() == name) {
                run.metadata.deletion_timestamp = Some(conditions::time(ctx.now()));
            }
        }
        ctx.events()
            .normal(
                &backup.object_ref(&()),
                "RunReplaced",
                "Schedule",
                format!(
                    "deleted the active run(s) {} (concurrencyPolicy Replace)",
                    active.join(", ")
                ),
            )
            .await;
        Ok(())
    }

    /// The schedule step: creates, skips or replaces for the due slot.
    async fn schedule(
        &self,
        ctx: &Context,
        backup: &VerticeBackup,
        schedule: &Schedule,
        runs: &mut Vec<BackupRequest>,
        now: DateTime<Utc>,
    ) -> Result<ScheduleReport, PolicyError> {
        let previous = backup.status.clone().unwrap_or_default();
        // A run's slot counts too: the status write may have been lost after its creation.
        let newest_run_slot = runs.iter().filter_map(scheduled_time).max();
        let recorded_last = previous.last_schedule_time.as_ref().and_then(to_chrono);
        let mut last_schedule = recorded_last.max(newest_run_slot);
        let mut missed = carried_missed(previous.missed_schedules, recorded_last, newest_run_slot);
        if backup.spec.suspend == Some(true) {
            let condition = conditions::new(
                SCHEDULED,
                ConditionStatus::False,
                "Suspended",
                "spec.suspend is true: no new runs start; active runs finish",
            );
            return Ok(ScheduleReport {
                last_schedule,
                missed,
                next: None,
                condition,
            });
        }
        let acted = last_acted_slot(backup, runs, now);
        let due = schedule.due(acted, now, backup.spec.starting_deadline_seconds);
        let newly_missed = i32::try_from(due.missed).unwrap_or(i32::MAX);
        let active: Vec<String> = runs
            .iter()
            .filter(|run| is_active(run))
            .map(ResourceExt::name_any)
            .collect();
        let reference = backup.object_ref(&());
        let mut skipped = None;
        match decide(&due, backup.spec.concurrency_policy, &active) {
            SlotAction::Idle => {
                if due.missed > 0 {
                    // Past the starting deadline: counted, never run late.
                    last_schedule = schedule.latest_until(now).max(last_schedule);
                    missed = missed.saturating_add(newly_missed);
                    ctx.events()
                        .warning(&reference, "MissedSchedule", "Schedule", format!(
                            "{} slot(s) missed: the newest is past startingDeadlineSeconds ({}s)",
                            due.missed,
                            backup.spec.starting_deadline_seconds.unwrap_or_default()
                        ))
                        .await;
                }
            }
            SlotAction::Create(slot) => {
                self.create_run(ctx, backup, slot, runs).await?;
                last_schedule = Some(slot).max(last_schedule);
                missed = newly_missed;
            }
            SlotAction::Replace { slot, active } => {
                self.replace(ctx, backup, &active, runs).await?;
                self.create_run(ctx, backup, slot, runs).await?;
                last_schedule = Some(slot).max(last_schedule);
                missed = newly_missed;
            }
            SlotAction::SkipActive { slot, active } => {
                last_schedule = Some(slot).max(last_schedule);
                missed = missed.saturating_add(newly_missed).saturating_add(1);
                let note = format!(
                    "skipped the slot {}: run(s) {} still active (concurrencyPolicy Forbid)",
                    slot.to_rfc3339(),
                    active.join(", ")
                );
                ctx.events()
                    .warning(&reference, "SlotSkipped", "Schedule", note.clone())
                    .await;
                skipped = Some(note);
            }
        }
        let next = due.next;
        let mut message = next.map_or_else(
            || "the schedule has no future slot".to_owned(),
            |next| format!("next run at {}", next.to_rfc3339()),
        );
        if let Some(skipped) = skipped {
            message = format!("{message}; {skipped}");
        }
        let condition = conditions::new(
            SCHEDULED,
            next.is_some(),
            if next.is_some() {
                "Scheduled"
            } else {
                "NoFutureSlot"
            },
            message,
        );
        Ok(ScheduleReport {
            last_schedule,
            missed,
            next,
            condition,
        })
    }

    /// Deletes finished runs beyond the history limits, oldest first.
    async fn trim_history(
        &self,
        ctx: &Context,
        backup: &VerticeBackup,
        runs: &mut Vec<BackupRequest>,
    ) -> Result<(), PolicyError> {
        let (successful, failed) = limits(backup);
        let doomed = beyond_limits(runs, successful, failed);
        if doomed.is_empty() {
            return Ok(());
        }
        let api: Api<BackupRequest> = ctx.api(&backup.namespace().unwrap_or_default());
        for name in &doomed {
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(error) if is_not_found(&error) => {}
                Err(error) => return Err(error.into()),
            }
        }
        runs.retain(|run| !doomed.contains(&run.name_any()));
        ctx.events()
            .normal(
                &backup.object_ref(&()),
                "HistoryTrimmed",
                "Cleanup",
                format!(
                    "deleted finished BackupRequest(s) beyond the history limits ({successful} succeeded, {failed} failed): {} (their stored backups stay)",
                    doomed.join(", ")
                ),
            )
            .await;
        Ok(())
    }

    /// The drill step: creates the RestoreRequest of a due drill slot; returns the drills and
    /// the next drill slot.
    async fn drills(
        &self,
        ctx: &Context,
        backup: &VerticeBackup,
        record: Option<&crate::api::vertice_backup::BackupRecord>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<RestoreRequest>, Option<DateTime<Utc>>), PolicyError> {
        let mut drills: Vec<RestoreRequest> = owned(ctx, backup).await?;
        let Some(schedule) = drill_schedule(backup)? else {
            return Ok((drills, None));
        };
        let acted = last_drill_slot(backup, &drills, now);
        let due = schedule.due(acted, now, backup.spec.starting_deadline_seconds);
        let reference = backup.object_ref(&());
        if let Some(slot) = due.run {
            match drill(backup, record, slot) {
                Ok(drill) => {
                    let api: Api<RestoreRequest> = ctx.api(&backup.namespace().unwrap_or_default());
                    match api.create(&PostParams::default(), &drill).await {
                        Ok(created) => {
                            ctx.events()
                                .normal_related(
                                    &reference,
                                    &created.object_ref(&()),
                                    "DrillCreated",
                                    "Verify",
                                    format!(
                                        "created RestoreRequest {} to verify backup {}",
                                        created.name_any(),
                                        record.map(|r| r.name.as_str()).unwrap_or_default()
                                    ),
                                )
                                .await;
                            drills.push(created);
                        }
                        Err(error) if is_conflict(&error) => {}
                        Err(error) => return Err(error.into()),
                    }
                }
                Err(why) => {
                    ctx.events()
                        .warning(
                            &reference,
                            "DrillNotCreated",
                            "Verify",
                            format!(
                                "no restore drill for the slot {}: {why:?}",
                                slot.to_rfc3339()
                            ),
                        )
                        .await;
                }
            }
        }
        Ok((drills, due.next))
    }
}

impl Reconciler<VerticeBackup> for VerticeBackups {
    type Error = PolicyError;

    async fn apply(
        &self,
        backup: Arc<VerticeBackup>,
        ctx: &Context,
    ) -> Result<Applied<VerticeBackupStatus>, PolicyError> {
        let now = ctx.now();
        let schedule = schedule_of(&backup)?;
        let previous = backup.status.clone().unwrap_or_default();
        let mut runs: Vec<BackupRequest> = owned(ctx, &backup).await?;
        let report = self
            .schedule(ctx, &backup, &schedule, &mut runs, now)
            .await?;
        let record = last_successful(&runs, previous.last_successful_backup.clone());
        let last_backup = last_backup_condition(
            &runs,
            conditions::find(&previous.conditions, LAST_BACKUP_SUCCEEDED),
        );
        let (drills, next_drill) = self.drills(ctx, &backup, record.as_ref(), now).await?;
        let (verified_condition, last_verified) =
            verified(&backup, &drills, previous.last_verified_time.clone());
        let retention =
            RetentionStep::run(self, ctx, &backup, record.as_ref(), &mut runs, now).await;
        self.trim_history(ctx, &backup, &mut runs).await?;

        let status = VerticeBackupStatus {
            observed_generation: None,
            conditions: vec![
                report.condition,
                last_backup,
                verified_condition,
                retention.condition,
            ],
            last_schedule_time: report.last_schedule.map(conditions::time),
            next_schedule_time: report.next.map(conditions::time),
            last_successful_backup: record,
            last_verified_time: last_verified,
            active: active_runs(&runs),
            missed_schedules: Some(report.missed),
            retention: retention.preview,
        };
        let wake_at = [report.next, next_drill, retention.next_sweep]
            .into_iter()
            .flatten()
            .min();
        let mut applied = Applied::new(status);
        if let Some(wake_at) = wake_at {
            let delay = (wake_at - now).to_std().unwrap_or(Duration::ZERO);
            applied = applied.requeue_after(delay.max(Duration::from_secs(1)));
        }
        Ok(applied)
    }

    async fn cleanup(&self, backup: Arc<VerticeBackup>, ctx: &Context) -> Result<(), PolicyError> {
        self.sizes
            .forget(&backup.namespace().unwrap_or_default(), &backup.name_any());
        if backup.spec.deletion_policy != DeletionPolicy::Delete {
            return Ok(());
        }
        let Some(uid) = backup.uid() else {
            return Ok(());
        };
        let namespace = backup.namespace().unwrap_or_default();
        let (store, _credentials) = open_store(ctx, &namespace, &backup.spec.storage).await?;
        let snapshots = match &backup.spec.snapshot {
            Some(snapshot) => Some(snapshot_access(ctx, &namespace, snapshot).await?),
            None => None,
        };
        let access = snapshots.as_ref().map(|(access, _files)| access);
        let deleted = super::retention::delete_all(&store, access, &uid).await?;
        ctx.events()
            .normal(
                &backup.object_ref(&()),
                "BackupsDeleted",
                "Cleanup",
                format!(
                    "deletionPolicy Delete: deleted {} stored backup(s) of this VerticeBackup from {}",
                    deleted.len(),
                    store.description()
                ),
            )
            .await;
        Ok(())
    }
}
