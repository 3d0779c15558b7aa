//! When a VerticeBackup's retention sweep runs and what the status says about it: after every
//! newly seen successful run, on the `--retention-interval` timer (folded into the
//! controller's single requeue), after a failed sweep (sooner), and when the large-prune
//! annotation releases a held sweep. The sweep itself is in [`super::retention`].

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use vertice_core::Context;
use vertice_core::conditions::{self, ConditionStatus};

use crate::api::storage::StoreKind;
use crate::api::vertice_backup::{BackupRecord, RetentionPreview};
use crate::api::{BackupRequest, VerticeBackup};
use crate::retention::plan;

use super::policy_status::to_chrono;
use super::retention::{ALLOW_LARGE_PRUNE_ANNOTATION, policy_of, preview, sweep};
use super::store_access::{open_store, snapshot_access};
use super::vertice_backup::VerticeBackups;

/// Condition type: whether the last retention sweep applied the policy.
pub const RETENTION_APPLIED: &str = "RetentionApplied";
/// Reason of `RetentionApplied=False` while the brake holds a sweep.
pub const REASON_HELD: &str = "LargePruneHeld";
/// Reason of `RetentionApplied=False` after a sweep failed.
pub const REASON_FAILED: &str = "SweepFailed";

/// A failed sweep is retried after this long (or the interval, if shorter).
const RETRY_AFTER: TimeDelta = TimeDelta::minutes(5);

/// What the retention step reports.
pub struct RetentionStep {
    /// `RetentionApplied`.
    pub condition: Condition,
    /// The status preview.
    pub preview: Option<RetentionPreview>,
    /// When the next sweep is due.
    pub next_sweep: Option<DateTime<Utc>>,
}

impl RetentionStep {
    /// Sweeps if one is due; never fails the reconcile (a store that is down must not stop
    /// the schedule): a failure is reported in the condition and an Event and retried.
    pub async fn run(
        owner: &VerticeBackups,
        ctx: &Context,
        backup: &VerticeBackup,
        record: Option<&BackupRecord>,
        runs: &mut Vec<BackupRequest>,
        now: DateTime<Utc>,
    ) -> Self {
        let previous = backup.status.clone().unwrap_or_default();
        let retention = backup.spec.effective_retention();
        let Some(spec) = &retention else {
            return Self {
                condition: conditions::new(
                    RETENTION_APPLIED,
                    ConditionStatus::True,
                    "NoRetentionPolicy",
                    "neither spec.retention nor spec.retentionDays is set: every backup is kept",
                ),
                preview: None,
                next_sweep: None,
            };
        };
        if backup.spec.storage.store == StoreKind::Local {
            // Steady, not an error to retry: the volume is mounted only into runs.
            return Self {
                condition: conditions::new(
                    RETENTION_APPLIED,
                    ConditionStatus::False,
                    "LocalStoreNotReachable",
                    "retention is not applied: a local store (a PersistentVolumeClaim) is mounted only into runs, never into the operator; prune it with `vertice-backup prune`",
                ),
                preview: None,
                next_sweep: None,
            };
        }
        let interval = TimeDelta::from_std(owner.retention_interval).unwrap_or(TimeDelta::hours(1));
        let last_sweep = previous
            .retention
            .as_ref()
            .and_then(|preview| preview.evaluated_time.as_ref())
            .and_then(to_chrono);
        let previous_condition = conditions::find(&previous.conditions, RETENTION_APPLIED);
        let previous_reason = previous_condition.map(|condition| condition.reason.as_str());
        let allowed = backup
            .annotations()
            .get(ALLOW_LARGE_PRUNE_ANNOTATION)
            .is_some_and(|value| value == "true");
        let new_success = record.and_then(|record| record.request.as_ref())
            != previous
                .last_successful_backup
                .as_ref()
                .and_then(|record| record.request.as_ref());
        let due = match last_sweep {
            None => true,
            Some(last) => {
                new_success
                    || now >= last + interval
                    || (previous_reason == Some(REASON_FAILED)
                        && now >= last + RETRY_AFTER.min(interval))
                    || (previous_reason == Some(REASON_HELD) && allowed)
            }
        };
        if !due {
            return Self {
                condition: previous_condition.cloned().unwrap_or_else(|| {
                    conditions::new(
                        RETENTION_APPLIED,
                        ConditionStatus::Unknown,
                        "NotSweptYet",
                        "",
                    )
                }),
                preview: previous.retention.clone(),
                next_sweep: last_sweep.map(|last| last + interval),
            };
        }
        let max_percent = spec
            .max_delete_percent
            .and_then(|percent| u8::try_from(percent).ok())
            .unwrap_or(owner.max_delete_percent);
        let outcome =
            Self::sweep_now(ctx, backup, spec, runs, now, interval, max_percent, allowed).await;
        match outcome {
            Ok(step) => step,
            Err(message) => {
                ctx.events()
                    .warning(
                        &backup.object_ref(&()),
                        REASON_FAILED,
                        "Retention",
                        message.clone(),
                    )
                    .await;
                // The preview keeps its time, so the retry is measured from the last good sweep.
                let mut kept = previous.retention.clone().unwrap_or_default();
                if kept.evaluated_time.is_none() {
                    kept.evaluated_time = Some(conditions::time(now));
                }
                Self {
                    condition: conditions::new(
                        RETENTION_APPLIED,
                        ConditionStatus::False,
                        REASON_FAILED,
                        message,
                    ),
                    preview: Some(kept),
                    next_sweep: Some(now + RETRY_AFTER.min(interval)),
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn sweep_now(
        ctx: &Context,
        backup: &VerticeBackup,
        spec: &crate::api::policy::RetentionSpec,
        runs: &mut Vec<BackupRequest>,
        now: DateTime<Utc>,
        interval: TimeDelta,
        max_percent: u8,
        allowed: bool,
    ) -> Result<Self, String> {
        let uid = backup.uid().unwrap_or_default();
        let namespace = backup.namespace().unwrap_or_default();
        let reference = backup.object_ref(&());
        let (store, _credentials) = open_store(ctx, &namespace, &backup.spec.storage)
            .await
            .map_err(|error| format!("retention cannot open the store: {error}"))?;
        let snapshots = match &backup.spec.snapshot {
            Some(snapshot) => Some(snapshot_access(ctx, &namespace, snapshot).await.map_err(
                |error| format!("retention cannot read the snapshot credentials: {error}"),
            )?),
            None => None,
        };
        let policy = policy_of(spec);
        let access = snapshots.as_ref().map(|(access, _files)| access);
        let done = sweep(&store, access, &uid, &policy, now, max_percent, allowed)
            .await
            .map_err(|error| format!("retention sweep failed: {error}"))?;
        let total = done.plan.keep.len() + done.plan.delete.len();
        let at = conditions::time(now);
        if done.held {
            let message = format!(
                "retention would delete {} of this VerticeBackup's {total} backups, more than {max_percent}%: nothing was deleted; annotate it {ALLOW_LARGE_PRUNE_ANNOTATION}=true to proceed",
                done.plan.delete.len()
            );
            ctx.events()
                .warning(&reference, REASON_HELD, "Retention", message.clone())
                .await;
            return Ok(Self {
                condition: conditions::new(
                    RETENTION_APPLIED,
                    ConditionStatus::False,
                    REASON_HELD,
                    message,
                ),
                preview: Some(preview(done.plan.keep.len(), &done.plan.delete, at)),
                next_sweep: Some(now + interval),
            });
        }
        if !done.deleted.is_empty() {
            delete_runs_of(ctx, &namespace, &done.deleted, runs).await;
            ctx.events()
                .normal(
                    &reference,
                    "BackupsPruned",
                    "Retention",
                    format!(
                        "retention deleted {} backup(s) from {}: {}",
                        done.deleted.len(),
                        store.description(),
                        done.deleted.join(", ")
                    ),
                )
                .await;
        }
        if allowed {
            // The approval is for this sweep only: the brake is on again for the next one.
            let api: Api<VerticeBackup> = ctx.api(&namespace);
            let patch = serde_json::json!({"metadata": {"annotations": {ALLOW_LARGE_PRUNE_ANNOTATION: null}}});
            if let Err(error) = api
                .patch(
                    &backup.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "removing the large-prune annotation failed"
                );
            }
        }
        // What the next timed sweep would delete among what is left, and why.
        let left: Vec<_> = done
            .backups
            .iter()
            .filter(|backup| !done.deleted.contains(&backup.name))
            .cloned()
            .collect();
        let next = plan(&left, &policy, now + interval);
        Ok(Self {
            condition: conditions::new(
                RETENTION_APPLIED,
                ConditionStatus::True,
                "Applied",
                format!(
                    "kept {} backup(s), deleted {}",
                    done.plan.keep.len(),
                    done.deleted.len()
                ),
            ),
            preview: Some(preview(next.keep.len(), &next.delete, at)),
            next_sweep: Some(now + interval),
        })
    }
}

/// Deletes the BackupRequests whose backup was pruned (their result names it).
async fn delete_runs_of(
    ctx: &Context,
    namespace: &str,
    pruned: &[String],
    runs: &mut Vec<BackupRequest>,
) {
    let api: Api<BackupRequest> = ctx.api(namespace);
    let pointing: Vec<String> = runs
        .iter()
        .filter(|run| {
            run.status
                .as_ref()
                .and_then(|status| status.result.as_ref())
                .and_then(|result| result.backup_name.as_ref())
                .is_some_and(|name| pruned.contains(name))
        })
        .map(ResourceExt::name_any)
        .collect();
    for name in &pointing {
        if let Err(error) = api.delete(name, &DeleteParams::background()).await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                run = name,
                "deleting the run of a pruned backup failed"
            );
        }
    }
    runs.retain(|run| !pointing.contains(&run.name_any()));
}
