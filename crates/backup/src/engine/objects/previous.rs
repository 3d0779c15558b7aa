//! The copy an incremental copy builds on: the newest backup in the store that copied the same
//! source and prefix.

use std::collections::BTreeMap;

use object_store::ObjectStoreExt;

use super::layout::index_path;
use crate::error::BackupError;
use crate::format::bucket_copy::{BucketCopyRecord, IndexEntry, ObjectIndex};
use crate::store::BackupStore;

/// The previous copy's objects by key (empty when there is none).
pub type PreviousObjects = BTreeMap<String, IndexEntry>;

/// The objects of the newest backup (by finish time) whose copy had source `display` and
/// prefix `prefix`. Backups whose manifest or index cannot be read are passed over (with a
/// warning): they only make this copy less incremental. Errors: `Store` when listing fails.
pub async fn previous_objects(
    store: &BackupStore,
    display: &str,
    prefix: &str,
) -> Result<PreviousObjects, BackupError> {
    let mut candidates = Vec::new();
    for name in store.list_backup_names().await? {
        match store.read_manifest(&name).await {
            Ok(manifest) => {
                if let Some(record) = manifest.bucket_copy {
                    if record.source == display {
                        candidates.push((manifest.finished_at, name, record));
                    }
                }
            }
            Err(error) => tracing::warn!(backup = %name, %error, "manifest unreadable"),
        }
    }
    candidates.sort_by(|a, b| b.0.cmp(&a.0));
    for (_, name, record) in candidates {
        match read_index(store, &name, &record).await {
            Ok(index) if index.prefix == prefix => {
                return Ok(index
                    .objects
                    .into_iter()
                    .map(|entry| (entry.key.clone(), entry))
                    .collect());
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(backup = %name, %error, "objects index unreadable"),
        }
    }
    Ok(PreviousObjects::new())
}

/// Reads backup `name`'s index and checks it against the manifest's record (size, BLAKE3).
/// Errors: `Store`, `Integrity`.
pub async fn read_index(
    store: &BackupStore,
    name: &str,
    record: &BucketCopyRecord,
) -> Result<ObjectIndex, BackupError> {
    let path = index_path(store, name)?;
    let bytes = match store.object_store().get(&path).await {
        Ok(result) => result.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(BackupError::Integrity(format!(
                "backup {name:?} has lost its objects index"
            )));
        }
        Err(error) => return Err(error.into()),
    };
    if bytes.len() as u64 != record.index.size
        || blake3::hash(&bytes).to_hex().as_str() != record.index.blake3
    {
        return Err(BackupError::Integrity(format!(
            "the objects index of backup {name:?} does not match its manifest"
        )));
    }
    let index = ObjectIndex::from_json(&bytes)?;
    let total: u64 = index.objects.iter().map(|entry| entry.size).sum();
    if index.objects.len() as u64 != record.object_count || total != record.total_bytes {
        return Err(BackupError::Integrity(format!(
            "the objects index of backup {name:?} does not add up to its manifest's counts"
        )));
    }
    Ok(index)
}
