//! Putting a backup's copied objects back into a bucket, each verified against the index
//! before it becomes visible.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::layout::{copied_path, full_key, key_path, open_bucket};
use super::part::DEFAULT_PARALLELISM;
use super::previous::read_index;
use super::transfer::stream_copy;
use crate::engine::spec::EncryptionSpec;
use crate::error::BackupError;
use crate::progress::Progress;
use crate::source::SourceError;
use crate::store::{BackupStore, StoreConfig};
use crate::verify::OpenedBackup;

/// Where to put a backup's objects back.
#[derive(Clone, Debug)]
pub struct ObjectRestoreRun {
    /// The backup whose objects to restore.
    pub name: String,
    /// The bucket to write into (its `prefix` is not used; see `prefix`).
    pub target: StoreConfig,
    /// The folder to write under, any characters; `None` is `restored/<backup name>` (a new
    /// folder, so a restore never lands on the live objects unless asked to).
    pub prefix: Option<String>,
    /// Replace objects that exist at the target (by default the restore refuses, before it
    /// writes anything, when any target key exists).
    pub overwrite: bool,
    /// Keys that open the backup (its manifest's seal is checked before the index is used).
    pub encryption: EncryptionSpec,
    /// Objects restored at once (default 8).
    pub parallelism: Option<usize>,
}

/// What a restore of objects did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRestoreOutcome {
    /// The backup restored.
    pub name: String,
    /// The folder written under.
    pub prefix: String,
    /// Objects written.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Restores backup `run.name`'s copied objects under `run.prefix` in `run.target`. Every
/// object is streamed from the store, hashed, and completed at the target only when its BLAKE3
/// matches the index. When `cancel` fires it stops with `Cancelled`; objects already written
/// stay (they are verified copies).
///
/// Errors: `NotFound` (no such backup), `Config` (the backup has no object copy, or a key the
/// target cannot hold), `Source(TargetExists)` (a target key exists and `overwrite` is off: nothing
/// was written), `Integrity`, `WrongKey`, `Store`, `Cancelled`.
pub async fn restore_objects(
    store: &BackupStore,
    run: &ObjectRestoreRun,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<ObjectRestoreOutcome, BackupError> {
    let opened = OpenedBackup::open(store, &run.name, &run.encryption.key_ring()?, 1).await?;
    let manifest = opened.manifest();
    let record = manifest.bucket_copy.as_ref().ok_or_else(|| {
        BackupError::Config(format!("backup {:?} has no copied objects", run.name))
    })?;
    let index = read_index(store, &run.name, record).await?;
    let prefix = run
        .prefix
        .clone()
        .unwrap_or_else(|| format!("restored/{}", run.name));
    let target = open_bucket(&run.target)?;
    let mut plan = Vec::with_capacity(index.objects.len());
    for entry in index.objects {
        let to = key_path(&full_key(&prefix, &entry.key))?;
        plan.push((entry, to));
    }
    let parallelism = run.parallelism.unwrap_or(DEFAULT_PARALLELISM).max(1);
    if !run.overwrite {
        refuse_existing(&target, &plan, parallelism).await?;
    }
    progress.set_phase("restore objects");
    progress.start_phase(plan.iter().map(|(entry, _)| entry.size).sum());
    let work = futures::stream::iter(plan)
        .map(|(entry, to)| {
            let target = &target;
            async move {
                let from = copied_path(store, &entry.holder, &entry.key)?;
                let written = stream_copy(
                    store.object_store(),
                    &from,
                    target.object_store(),
                    &to,
                    Some(&entry.blake3),
                )
                .await?;
                progress.add(written.size);
                Ok::<u64, BackupError>(written.size)
            }
        })
        .buffer_unordered(parallelism)
        .try_fold((0u64, 0u64), |(objects, bytes), size| async move {
            Ok((objects + 1, bytes + size))
        });
    let (objects, bytes) = tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(BackupError::Cancelled),
        done = work => done?,
    };
    Ok(ObjectRestoreOutcome {
        name: run.name.clone(),
        prefix,
        objects,
        bytes,
    })
}

/// `AlreadyExists` naming the first target key that exists.
async fn refuse_existing(
    target: &BackupStore,
    plan: &[(
        crate::format::bucket_copy::IndexEntry,
        object_store::path::Path,
    )],
    parallelism: usize,
) -> Result<(), BackupError> {
    futures::stream::iter(plan)
        .map(|(_, to)| async move {
            match target.object_store().head(to).await {
                Ok(_) => Err(BackupError::Source(SourceError::TargetExists {
                    target: format!("object {:?}", to.as_ref()),
                })),
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(error) => Err(error.into()),
            }
        })
        .buffer_unordered(parallelism)
        .try_collect::<()>()
        .await
}
