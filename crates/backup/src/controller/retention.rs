//! Retention in the operator: one VerticeBackup's sweep of its store. Only the backups whose
//! manifest carries this VerticeBackup's UID label are considered — a second VerticeBackup
//! sharing the bucket and prefix is never pruned — and the selection is the engine's
//! ([`crate::retention::plan`]: `minKeep` and the newest good backup are never deleted).
//!
//! A brake: a sweep that would delete more than a share of this policy's backups (a policy
//! edited to `keepLast: 1`, a clock jumped a year ahead) deletes nothing and waits until the
//! VerticeBackup carries [`ALLOW_LARGE_PRUNE_ANNOTATION`]`=true`.
//!
//! Each backup goes snapshot first (an RDS snapshot its manifest records, deleted with
//! `snapshots`' credentials, see [`crate::snapshot::delete_backup`]), then its manifest (so a
//! half-deleted backup no longer looks like one), then its data
//! ([`BackupStore::delete_backup`]); the caller then deletes BackupRequests that point at it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::policy::RetentionSpec;
use crate::api::validation::parse_duration_seconds;
use crate::api::vertice_backup::{RetentionCandidate, RetentionPreview};
use crate::error::BackupError;
use crate::retention::{
    BackupSummary, DeleteReason, RetentionPlan, RetentionPolicy, Verdict, plan,
};
use crate::snapshot::SnapshotAccess;
use crate::store::BackupStore;

use super::scheduling::POLICY_UID_LABEL;

/// The annotation that releases a sweep held by the brake (value `true`).
pub const ALLOW_LARGE_PRUNE_ANNOTATION: &str = "backup.vertice.dev/allow-large-prune";

/// Most deletions listed in the status preview.
const PREVIEW_LIMIT: usize = 20;

/// The engine's policy for a spec's `retention` section. Negative counts cannot pass
/// admission; they would read as 0 (rule off).
pub fn policy_of(spec: &RetentionSpec) -> RetentionPolicy {
    let count = |value: Option<i32>| value.map(|value| u32::try_from(value).unwrap_or(0));
    RetentionPolicy {
        keep_last: count(spec.keep_last),
        keep_hourly: count(spec.keep_hourly),
        keep_daily: count(spec.keep_daily),
        keep_weekly: count(spec.keep_weekly),
        keep_monthly: count(spec.keep_monthly),
        keep_yearly: count(spec.keep_yearly),
        max_age: spec
            .max_age
            .as_deref()
            .and_then(parse_duration_seconds)
            .map(Duration::from_secs),
        min_keep: count(spec.min_keep).unwrap_or(0),
        require_verified: spec.require_verified.unwrap_or(false),
    }
}

/// Whether deleting `deletions` of `total` backups exceeds `max_percent` percent.
pub fn exceeds_share(deletions: usize, total: usize, max_percent: u8) -> bool {
    deletions.saturating_mul(100) > total.saturating_mul(usize::from(max_percent))
}

/// The backups in `store` whose manifest carries `uid` in [`POLICY_UID_LABEL`]. A manifest
/// that cannot be read is skipped (never deleted: a person looks first).
pub async fn policy_backups(
    store: &BackupStore,
    uid: &str,
) -> Result<Vec<BackupSummary>, BackupError> {
    let mut backups = Vec::new();
    for folder in store.backup_folders().await? {
        if !folder.has_manifest {
            continue;
        }
        let manifest = match store.read_manifest(&folder.name).await {
            Ok(manifest) => manifest,
            Err(BackupError::Store(message)) => return Err(BackupError::Store(message)),
            Err(_) => continue,
        };
        if manifest.labels.get(POLICY_UID_LABEL).map(String::as_str) != Some(uid) {
            continue;
        }
        backups.push(BackupSummary {
            verified: store.is_verified(&folder.name).await?,
            name: folder.name,
            end_time: manifest.finished_at,
            succeeded: true,
        });
    }
    Ok(backups)
}

/// What one sweep found and did.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// The plan for this policy's backups at the sweep's time.
    pub plan: RetentionPlan,
    /// Whether the brake held the deletions back.
    pub held: bool,
    /// The backups deleted (empty when held).
    pub deleted: Vec<String>,
    /// This policy's backups as listed before the sweep.
    pub backups: Vec<BackupSummary>,
}

/// Plans retention for `uid`'s backups at `now` and deletes what the plan says, unless that
/// is more than `max_percent` of them and `allow_large` is false. A backup holding an RDS
/// snapshot is deleted with its snapshot through `snapshots` (the VerticeBackup's snapshot
/// credentials). Errors: the store's and RDS's; `Config` for a snapshot backup when
/// `snapshots` is `None` (it is kept rather than deleted without its snapshot); a deletion
/// failing stops the sweep (what was deleted stays deleted, the next sweep goes on).
pub async fn sweep(
    store: &BackupStore,
    snapshots: Option<&SnapshotAccess>,
    uid: &str,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    max_percent: u8,
    allow_large: bool,
) -> Result<Sweep, BackupError> {
    let backups = policy_backups(store, uid).await?;
    let decided = plan(&backups, policy, now);
    let held = exceeds_share(decided.delete.len(), backups.len(), max_percent) && !allow_large;
    let mut deleted = Vec::new();
    if !held {
        // Oldest first, so an interrupted sweep leaves the newest backups.
        for verdict in decided.delete.iter().rev() {
            crate::snapshot::delete_backup(store, &verdict.name, snapshots).await?;
            deleted.push(verdict.name.clone());
        }
    }
    Ok(Sweep {
        plan: decided,
        held,
        deleted,
        backups,
    })
}

/// Deletes every backup of `uid` (`deletionPolicy: Delete`), oldest first, each with its RDS
/// snapshot (through `snapshots`, as in [`sweep`]) and manifest first.
pub async fn delete_all(
    store: &BackupStore,
    snapshots: Option<&SnapshotAccess>,
    uid: &str,
) -> Result<Vec<String>, BackupError> {
    let mut backups = policy_backups(store, uid).await?;
    backups.sort_by(|a, b| {
        a.end_time
            .cmp(&b.end_time)
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut deleted = Vec::new();
    for backup in backups {
        crate::snapshot::delete_backup(store, &backup.name, snapshots).await?;
        deleted.push(backup.name);
    }
    Ok(deleted)
}

/// The status preview: how many backups the policy keeps and what goes next, and why — the
/// deletions of `pending` (a plan held by the brake, or the plan of the next sweep), oldest
/// first, at most 20.
pub fn preview(kept: usize, pending: &[Verdict<DeleteReason>], at: Time) -> RetentionPreview {
    RetentionPreview {
        kept: i32::try_from(kept).unwrap_or(i32::MAX),
        next_deletions: pending
            .iter()
            .rev()
            .take(PREVIEW_LIMIT)
            .map(|verdict| RetentionCandidate {
                name: verdict.name.clone(),
                reason: verdict
                    .reasons
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            })
            .collect(),
        evaluated_time: Some(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_a_strict_upper_bound() {
        assert!(!exceeds_share(0, 0, 50));
        assert!(!exceeds_share(3, 6, 50));
        assert!(exceeds_share(4, 6, 50));
        assert!(exceeds_share(1, 1, 50));
        assert!(!exceeds_share(1, 1, 100));
        assert!(exceeds_share(1, 100, 0));
    }

    #[test]
    fn spec_fields_become_the_engine_policy() {
        let spec = RetentionSpec {
            keep_last: Some(7),
            keep_daily: Some(0),
            max_age: Some("1h30m".to_owned()),
            min_keep: Some(2),
            require_verified: Some(true),
            ..RetentionSpec::default()
        };
        let policy = policy_of(&spec);
        assert_eq!(policy.keep_last, Some(7));
        assert_eq!(policy.keep_daily, Some(0));
        assert_eq!(policy.max_age, Some(Duration::from_secs(5400)));
        assert_eq!(policy.min_keep, 2);
        assert!(policy.require_verified);
        assert_eq!(
            policy_of(&RetentionSpec::default()),
            RetentionPolicy::default()
        );
    }
}
