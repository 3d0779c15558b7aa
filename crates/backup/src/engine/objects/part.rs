//! The object copy as a part of a backup run: list the source folder, take the keys the
//! globs allow, reference the unchanged ones, copy the rest into `.copied-objects/<backup>/`,
//! and write the index the manifest's record points to.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStoreExt, PutMode, PutPayload};
use tokio_util::sync::CancellationToken;

use super::config::ObjectCopyConfig;
use super::filter::KeyFilter;
use super::layout::{
    copied_path, holder_dir, index_path, open_bucket, source_display, source_prefix, store_root,
};
use super::previous::{PreviousObjects, previous_objects};
use super::transfer::{Transferred, server_side_copy, stream_copy};
use crate::error::BackupError;
use crate::format::bucket_copy::{
    BucketCopyRecord, IndexEntry, IndexObject, OBJECTS_INDEX_NAME, ObjectIndex,
};
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::run_part::RunPart;
use crate::store::BackupStore;

/// Objects copied at once when the config does not say.
pub const DEFAULT_PARALLELISM: usize = 8;

/// The object copy of one backup run (see [`RunPart`]).
#[derive(Debug)]
pub struct ObjectCopyPart {
    config: ObjectCopyConfig,
    filter: KeyFilter,
}

impl ObjectCopyPart {
    /// Checks the config: globs, prefix, parallelism. Errors: `Config`.
    pub fn new(config: ObjectCopyConfig) -> Result<Self, BackupError> {
        let filter = KeyFilter::new(&config.include, &config.exclude)?;
        source_prefix(&config.prefix)?;
        if config.parallelism == Some(0) {
            return Err(BackupError::Config(
                "objects parallelism must be at least 1".into(),
            ));
        }
        Ok(ObjectCopyPart { config, filter })
    }
}

#[async_trait::async_trait]
impl RunPart for ObjectCopyPart {
    async fn run(
        &self,
        store: &BackupStore,
        manifest: &mut Manifest,
        progress: &Arc<Progress>,
        cancel: &CancellationToken,
    ) -> Result<(), BackupError> {
        let name = manifest.name.clone();
        let outcome = tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(BackupError::Cancelled),
            outcome = self.copy(store, &name, progress) => outcome,
        };
        match outcome {
            Ok(record) => {
                manifest.bucket_copy = Some(record);
                Ok(())
            }
            Err(error) => {
                // The bytes this run copied; its index is an own object the caller deletes.
                if let Err(cleanup) = remove_holder(store, &name).await {
                    tracing::warn!(backup = %name, error = %cleanup, "copied objects left behind");
                }
                Err(error)
            }
        }
    }
}

/// One object to take.
struct Listed {
    key: String,
    meta: ObjectMeta,
}

impl ObjectCopyPart {
    async fn copy(
        &self,
        store: &BackupStore,
        name: &str,
        progress: &Arc<Progress>,
    ) -> Result<BucketCopyRecord, BackupError> {
        let source = open_bucket(&self.config.source)?;
        let display = source_display(&source, &self.config.prefix);
        let prefix = self.config.prefix.trim_matches('/').to_string();
        let same_bucket = source.description() == store.description();
        if same_bucket {
            refuse_overlap(&prefix, store_root(store).as_ref())?;
        }
        let previous = if self.config.full {
            PreviousObjects::new()
        } else {
            previous_objects(store, &display, &prefix).await?
        };
        let listed = self.list(&source).await?;
        progress.set_phase("copy objects");
        progress.start_phase(listed.iter().map(|object| object.meta.size).sum());
        // Server-side copies are tried while the store accepts them (see `copy_one`).
        let server_side = AtomicBool::new(same_bucket);
        let parallelism = self.config.parallelism.unwrap_or(DEFAULT_PARALLELISM);
        let results: Vec<Option<(IndexEntry, bool)>> = futures::stream::iter(listed)
            .map(|object| {
                take_one(
                    &source,
                    store,
                    name,
                    object,
                    &previous,
                    &server_side,
                    progress,
                )
            })
            .buffer_unordered(parallelism)
            .try_collect()
            .await?;
        let mut objects = Vec::with_capacity(results.len());
        let (mut copied, mut skipped) = (0u64, 0u64);
        for (entry, was_copied) in results.into_iter().flatten() {
            if was_copied {
                copied += 1;
            } else {
                skipped += 1;
            }
            objects.push(entry);
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        let index = ObjectIndex {
            source: display.clone(),
            prefix,
            objects,
        };
        let bytes = index.to_json()?;
        let record = BucketCopyRecord {
            source: display,
            object_count: index.objects.len() as u64,
            total_bytes: index.objects.iter().map(|entry| entry.size).sum(),
            copied,
            skipped,
            index: IndexObject {
                name: OBJECTS_INDEX_NAME.into(),
                size: bytes.len() as u64,
                blake3: blake3::hash(&bytes).to_hex().to_string(),
            },
        };
        store
            .object_store()
            .put_opts(
                &index_path(store, name)?,
                PutPayload::from(bytes),
                PutMode::Create.into(),
            )
            .await?;
        Ok(record)
    }

    /// The source's objects under the prefix that the globs take, sorted by key.
    async fn list(&self, source: &BackupStore) -> Result<Vec<Listed>, BackupError> {
        let (list_prefix, strip) = source_prefix(&self.config.prefix)?;
        let mut listing = source.object_store().list(list_prefix.as_ref());
        let mut listed = Vec::new();
        let mut seen = BTreeSet::new();
        while let Some(meta) = listing.try_next().await? {
            let Some(key) = meta.location.as_ref().strip_prefix(strip.as_str()) else {
                continue;
            };
            if !self.filter.accepts(key) {
                continue;
            }
            // object_store drops a key's trailing `/`: `dir/` and `dir` list alike.
            if !seen.insert(key.to_string()) {
                return Err(BackupError::Config(format!(
                    "the source lists {key:?} twice (keys that differ only by a trailing `/` \
                     cannot be told apart); exclude one of them"
                )));
            }
            listed.push(Listed {
                key: key.to_string(),
                meta,
            });
        }
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listed)
    }
}

/// Refuses to copy a folder of the backup store's own bucket that holds the backups, or lies
/// inside them: the copy would copy itself.
fn refuse_overlap(source_prefix: &str, store_root: &str) -> Result<(), BackupError> {
    let inside = |outer: &str, inner: &str| {
        outer.is_empty() || inner == outer || inner.starts_with(&format!("{outer}/"))
    };
    if inside(source_prefix, store_root) || inside(store_root, source_prefix) {
        return Err(BackupError::Config(format!(
            "the objects prefix {source_prefix:?} and the backup store's prefix {store_root:?} \
             overlap in the same bucket: the copy would copy backups"
        )));
    }
    Ok(())
}

/// References or copies one object; `None` when it vanished since it was listed (a live
/// bucket changes while it is copied; the copy records what it could read).
async fn take_one(
    source: &BackupStore,
    store: &BackupStore,
    name: &str,
    object: Listed,
    previous: &PreviousObjects,
    server_side: &AtomicBool,
    progress: &Arc<Progress>,
) -> Result<Option<(IndexEntry, bool)>, BackupError> {
    let Listed { key, meta } = object;
    if let Some(earlier) = previous.get(&key) {
        let unchanged = meta.e_tag.is_some() && earlier.etag == meta.e_tag;
        if unchanged && earlier.size == meta.size {
            progress.add(meta.size);
            return Ok(Some((earlier.clone(), false)));
        }
    }
    let to = copied_path(store, name, &key)?;
    let copied = match copy_one(source, store, &meta, &to, server_side).await {
        Ok(copied) => copied,
        Err(BackupError::Store(error)) if error.kind == crate::store::StoreErrorKind::NotFound => {
            tracing::warn!(key = %key, "object vanished while copying; not in this backup");
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    progress.add(copied.size);
    Ok(Some((
        IndexEntry {
            key,
            size: copied.size,
            etag: copied.etag,
            blake3: copied.blake3,
            holder: name.to_string(),
        },
        true,
    )))
}

/// A server-side copy while `server_side` holds; a store that refuses one (no permission for
/// the backup store's credentials on the source's keys, an API the server lacks) turns it off
/// for the rest of the run and the object is streamed instead.
async fn copy_one(
    source: &BackupStore,
    store: &BackupStore,
    meta: &ObjectMeta,
    to: &object_store::path::Path,
    server_side: &AtomicBool,
) -> Result<Transferred, BackupError> {
    if server_side.load(Ordering::Relaxed) {
        match server_side_copy(store.object_store(), &meta.location, to, meta.e_tag.clone()).await {
            Ok(copied) => return Ok(copied),
            Err(BackupError::Store(error))
                if !error.kind.is_transient()
                    && error.kind != crate::store::StoreErrorKind::NotFound =>
            {
                tracing::info!(error = %error, "server-side copy refused; streaming instead");
                server_side.store(false, Ordering::Relaxed);
            }
            Err(error) => return Err(error),
        }
    }
    stream_copy(
        source.object_store(),
        &meta.location,
        store.object_store(),
        to,
        None,
    )
    .await
}

/// Deletes every object in `.copied-objects/<name>/`.
pub(crate) async fn remove_holder(store: &BackupStore, name: &str) -> Result<(), BackupError> {
    let dir = holder_dir(store, name)?;
    let paths: Vec<_> = store
        .object_store()
        .list(Some(&dir))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await?;
    for path in paths {
        match store.object_store().delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_prefixes_in_one_bucket_are_refused() {
        for (source, root) in [
            ("", "backups"),
            ("a", "a/b"),
            ("a/b", "a"),
            ("x", "x"),
            ("x", ""),
        ] {
            assert!(refuse_overlap(source, root).is_err(), "{source} {root}");
        }
        for (source, root) in [("media", "backups"), ("ab", "a"), ("a", "ab/c")] {
            assert!(refuse_overlap(source, root).is_ok(), "{source} {root}");
        }
    }
}
