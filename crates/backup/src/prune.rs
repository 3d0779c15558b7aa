//! Applying retention to a store: the backups a policy deletes (see [`crate::retention`]), and
//! the folders that interrupted runs left without a manifest, reclaimed once they are older
//! than a grace period.
//!
//! A run killed mid-upload (SIGKILL, a node lost) never reaches its cleanup: its reservation
//! and finished data objects (and, on the local store, its staged upload files) stay in its
//! folder, and without a manifest nothing lists them. Such a folder is reclaimed when its
//! newest object is older than the grace period — a writer that is still running keeps its
//! newest object recent, so the grace must exceed the longest time a run goes without
//! finishing an object. Unfinished multipart uploads are not objects and no portable API lists
//! them: the clouds reap them (S3: a lifecycle rule `AbortIncompleteMultipartUpload`; Azure
//! drops uncommitted blocks after 7 days; GCS resumable sessions expire after 7 days).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::objects::{CopiedObjectsOutcome, collect_copied_objects};
use crate::engine::selector::LabelSelector;
use crate::error::BackupError;
use crate::retention::{BackupSummary, RetentionPlan, RetentionPolicy, plan};
use crate::store::BackupStore;

/// The default grace before a folder without a manifest is reclaimed: 24 hours. A running
/// backup finishes a data object at least every so often (at most 16 GiB each by default,
/// so 24 h allows for a writer as slow as 0.2 MB/s); a backup schedule is rarely sparser.
pub const DEFAULT_PARTIAL_GRACE: Duration = Duration::from_secs(24 * 3600);

/// What to prune.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// The retention policy for backups.
    pub policy: RetentionPolicy,
    /// Folders without a manifest whose newest object is at least this old are reclaimed.
    pub partial_grace: Duration,
    /// Decide and report only; delete nothing.
    pub dry_run: bool,
    /// Credentials for deleting the RDS snapshots of deleted backups (see
    /// [`crate::snapshot::delete_backup`]); a backup with a snapshot cannot be pruned without.
    pub snapshots: Option<crate::snapshot::SnapshotAccess>,
}

/// A folder an interrupted run left (own objects, no manifest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialFolder {
    /// The folder (the name the run had).
    pub name: String,
    /// Own objects in it.
    pub objects: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// When its newest object was written.
    pub newest: DateTime<Utc>,
    /// Seconds since then (0 if it lies in the future).
    pub age_seconds: u64,
    /// Whether it is (or, in a dry run, would be) reclaimed: older than the grace period.
    pub reclaim: bool,
}

/// What a prune decided (and, unless a dry run, did).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneOutcome {
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// The retention plan for the backups.
    pub plan: RetentionPlan,
    /// Folders without a manifest, reclaimed or waiting for their grace period.
    pub partial: Vec<PartialFolder>,
    /// The grace period in whole seconds.
    pub partial_grace_seconds: u64,
    /// Backups whose manifest could not be read: never deleted, a person looks first.
    pub unreadable: Vec<String>,
    /// The label selector the backups were filtered by (empty: all).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Backups the selector left out: neither kept nor deleted by this policy.
    pub not_selected: usize,
    /// Copied bucket objects no backup references any more (whatever the selector: a backup
    /// of any policy may reference them), collected after the deletions.
    pub copied_objects: CopiedObjectsOutcome,
}

/// Plans retention for `store` at `now` and, unless `options.dry_run`, deletes what the plan
/// and the grace period say. Errors: the store's, when listing or a deletion fails.
pub async fn prune(
    store: &BackupStore,
    options: &PruneOptions,
    now: DateTime<Utc>,
) -> Result<PruneOutcome, BackupError> {
    prune_matching(store, options, &LabelSelector::default(), now).await
}

/// [`prune`] applied only to the backups whose manifest labels match `selector`, so two
/// policies sharing a prefix never count or delete each other's backups. Folders without a
/// manifest have no labels; they are reclaimed after the grace period whoever left them (a
/// run still writing keeps its newest object younger than the grace).
pub async fn prune_matching(
    store: &BackupStore,
    options: &PruneOptions,
    selector: &LabelSelector,
    now: DateTime<Utc>,
) -> Result<PruneOutcome, BackupError> {
    let mut not_selected = 0;
    let mut backups = Vec::new();
    let mut partial = Vec::new();
    let mut unreadable = Vec::new();
    for folder in store.backup_folders().await? {
        if !folder.has_manifest {
            let age = now
                .signed_duration_since(folder.newest)
                .to_std()
                .unwrap_or(Duration::ZERO);
            partial.push(PartialFolder {
                reclaim: age >= options.partial_grace,
                name: folder.name,
                objects: folder.objects,
                bytes: folder.bytes,
                newest: folder.newest,
                age_seconds: age.as_secs(),
            });
            continue;
        }
        match store.read_manifest(&folder.name).await {
            Ok(manifest) if !selector.matches(&manifest.labels) => not_selected += 1,
            Ok(manifest) => backups.push(BackupSummary {
                verified: store.is_verified(&folder.name).await?,
                name: folder.name,
                end_time: manifest.finished_at,
                succeeded: true,
            }),
            Err(_) => unreadable.push(folder.name),
        }
    }
    let decided = plan(&backups, &options.policy, now);
    if !options.dry_run {
        for verdict in &decided.delete {
            crate::snapshot::delete_backup(store, &verdict.name, options.snapshots.as_ref())
                .await?;
        }
        for folder in partial.iter().filter(|folder| folder.reclaim) {
            // A manifest may have appeared since the listing: then it is a backup now.
            if store.exists(&folder.name).await? {
                continue;
            }
            store.delete_folder(&folder.name).await?;
        }
    }
    let copied_objects =
        collect_copied_objects(store, now, options.partial_grace, options.dry_run).await?;
    Ok(PruneOutcome {
        copied_objects,
        dry_run: options.dry_run,
        plan: decided,
        partial,
        partial_grace_seconds: options.partial_grace.as_secs(),
        unreadable,
        selector: selector.to_string(),
        not_selected,
    })
}

impl PruneOutcome {
    /// The outcome as lines for a person: each deletion and each kept backup with its reasons,
    /// each folder without a manifest, and a warning for each future-dated backup.
    pub fn text(&self) -> String {
        let mut text = String::new();
        let (delete, reclaim) = if self.dry_run {
            ("would delete", "would reclaim")
        } else {
            ("deleting", "reclaiming")
        };
        for verdict in &self.plan.delete {
            text.push_str(&format!(
                "{delete} {}: {}\n",
                verdict.name,
                joined(&verdict.reasons)
            ));
        }
        for verdict in &self.plan.keep {
            text.push_str(&format!(
                "keep {}: {}\n",
                verdict.name,
                joined(&verdict.reasons)
            ));
        }
        for folder in &self.partial {
            let what = format!(
                "{} (no manifest: an interrupted run; {} objects, {} bytes, newest written {}s ago)",
                folder.name, folder.objects, folder.bytes, folder.age_seconds
            );
            if folder.reclaim {
                text.push_str(&format!("{reclaim} {what}\n"));
            } else {
                text.push_str(&format!(
                    "wait {what}: younger than the grace period of {}s, its run may still be writing\n",
                    self.partial_grace_seconds
                ));
            }
        }
        for name in &self.unreadable {
            text.push_str(&format!(
                "skip {name}: its manifest cannot be read; never deleted by prune\n"
            ));
        }
        if self.not_selected > 0 {
            text.push_str(&format!(
                "left alone: {} backup(s) whose labels do not match {}\n",
                self.not_selected, self.selector
            ));
        }
        text
    }
}

fn joined<T: std::fmt::Display>(reasons: &[T]) -> String {
    reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
