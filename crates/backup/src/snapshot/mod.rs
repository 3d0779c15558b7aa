//! Managed-database snapshots (issue 8 §2): a run's database part can be a snapshot of a
//! cloud database instead of a dump. Only AWS RDS is implemented ([`rds`]); the snapshot is
//! created, tagged as ours, waited for, and recorded in the manifest ([`SnapshotRecord`]);
//! deleting the backup (retention, prune) deletes it too, and never a snapshot we did not make.

mod config;
mod error;
pub mod naming;
pub mod poll;
mod rds;
mod record;

pub use config::{DEFAULT_TIMEOUT, SnapshotAccess, SnapshotConfig, SnapshotProvider};
pub use error::{SnapshotError, SnapshotErrorKind};
pub use rds::{DeleteOutcome, delete_snapshot, take_snapshot};
pub use record::SnapshotRecord;

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;

use crate::backup::DumpInput;
use crate::error::BackupError;

/// A backup's database part as a snapshot: takes it (see [`take_snapshot`]) and returns its
/// record, for the manifest, and the backup's data: the record as JSON, so the backup holds
/// (and verify checks) what it points at.
pub async fn snapshot_part(
    config: &SnapshotConfig,
    backup_name: &str,
    labels: &BTreeMap<String, String>,
    cancel: &CancellationToken,
) -> Result<(SnapshotRecord, DumpInput), BackupError> {
    let record = take_snapshot(config, backup_name, labels, cancel).await?;
    let description = serde_json::to_vec_pretty(&record).map_err(|error| {
        BackupError::Internal(format!("cannot serialize the snapshot record: {error}"))
    })?;
    Ok((record, DumpInput::plain(std::io::Cursor::new(description))))
}

/// Deletes the snapshot of a run that failed after taking it (no manifest names it, so
/// nothing else would); a failure to delete is logged, and the run's own error is what counts.
pub async fn discard_unrecorded(
    config: &SnapshotConfig,
    record: &SnapshotRecord,
    backup_name: &str,
) {
    if let Err(error) = delete_snapshot(&SnapshotAccess::from(config), record, backup_name).await {
        tracing::warn!(
            snapshot = record.snapshot_id,
            %error,
            "the failed run's snapshot could not be deleted; delete it by hand"
        );
    }
}

/// Deletes backup `name` from `store` (see [`crate::store::BackupStore::delete_backup`]) and,
/// first, the snapshot its manifest records, if vertice-backup made it for this backup (see
/// [`delete_snapshot`]; one already gone is fine, one not ours is left alone). The snapshot
/// goes first so that a failure leaves the backup, and so the reference, for the next try.
///
/// Errors: `Config` when the manifest records a snapshot and `access` is `None` (the backup is
/// kept: deleting it would lose the only record of the snapshot); the snapshot's and the
/// store's errors.
pub async fn delete_backup(
    store: &crate::store::BackupStore,
    name: &str,
    access: Option<&SnapshotAccess>,
) -> Result<(), BackupError> {
    let snapshot = match store.read_manifest(name).await {
        Ok(manifest) => manifest.snapshot,
        // An unreadable manifest is not ours to judge here; the store's deletion decides.
        Err(_) => None,
    };
    if let Some(record) = snapshot {
        let Some(access) = access else {
            return Err(BackupError::Config(format!(
                "backup {name:?} holds RDS snapshot {}: give snapshot credentials to delete it \
                 (the backup is kept until then)",
                record.snapshot_id
            )));
        };
        match delete_snapshot(access, &record, name).await? {
            DeleteOutcome::Deleted => {
                tracing::info!(
                    backup = name,
                    snapshot = record.snapshot_id,
                    "deleted the backup's snapshot"
                );
            }
            DeleteOutcome::AlreadyGone => {}
            DeleteOutcome::NotOurs => tracing::warn!(
                backup = name,
                snapshot = record.snapshot_id,
                "the snapshot the manifest names does not carry this backup's owner tags: left alone"
            ),
        }
    }
    store.delete_backup(name).await
}
