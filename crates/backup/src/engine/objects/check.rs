//! Verifying a backup's object copy: its index against the manifest, and every object's size
//! and BLAKE3 against the index, wherever its holder keeps it.

use futures::{StreamExt, TryStreamExt};

use super::layout::copied_path;
use super::previous::read_index;
use super::transfer::hash_object;
use crate::error::BackupError;
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::store::{BackupStore, StoreErrorKind};

/// Checks the object copy `manifest` records (nothing when it has none) and returns how many
/// objects were checked. `manifest` must already be trusted (its seal checked, as
/// [`crate::verify::OpenedBackup`] does). Progress bytes are object bytes read.
///
/// Errors: `Integrity` (an index or an object that does not match, a missing object), `Store`.
pub async fn verify_objects(
    store: &BackupStore,
    manifest: &Manifest,
    parallelism: usize,
    progress: &Progress,
) -> Result<Option<u64>, BackupError> {
    let Some(record) = &manifest.bucket_copy else {
        return Ok(None);
    };
    let index = read_index(store, &manifest.name, record).await?;
    let count = index.objects.len() as u64;
    futures::stream::iter(index.objects)
        .map(|entry| async move {
            let path = copied_path(store, &entry.holder, &entry.key)?;
            let (size, blake3) = match hash_object(store.object_store(), &path).await {
                Ok(found) => found,
                Err(BackupError::Store(error)) if error.kind == StoreErrorKind::NotFound => {
                    return Err(BackupError::Integrity(format!(
                        "copied object {:?} (held by backup {:?}) is missing",
                        entry.key, entry.holder
                    )));
                }
                Err(error) => return Err(error),
            };
            if size != entry.size || blake3 != entry.blake3 {
                return Err(BackupError::Integrity(format!(
                    "copied object {:?} (held by backup {:?}) does not match the index",
                    entry.key, entry.holder
                )));
            }
            progress.add(size);
            Ok(())
        })
        .buffer_unordered(parallelism.max(1))
        .try_collect::<()>()
        .await?;
    Ok(Some(count))
}
