//! Moving one object's bytes: a server-side copy inside one store, or a stream from one store
//! to another with bounded memory, hashing the bytes (BLAKE3) on the way.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use crate::error::BackupError;

/// Bytes a streamed copy buffers before it starts a multipart upload, and the size of each
/// part: S3's smallest part size. An object up to this size is one `put`.
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// Parts of one object uploaded at once. With [`PART_SIZE`] this bounds a streamed copy's
/// memory to about `(PART_UPLOADS + 1) × 5 MiB` per object in flight.
pub const PART_UPLOADS: usize = 2;

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transferred {
    /// Bytes written.
    pub size: u64,
    /// Their BLAKE3, hex.
    pub blake3: String,
    /// The source's ETag as it was read (`None` when the store gives none).
    pub etag: Option<String>,
}

/// Streams `from` in `source` to `to` in `target`, hashing it. When `expected` is given and
/// the bytes read do not hash to it, the upload is aborted (nothing appears at `to`) and the
/// result is `Integrity`. Errors: `Store` (reading or writing), `Integrity`.
pub async fn stream_copy(
    source: &Arc<dyn ObjectStore>,
    from: &Path,
    target: &Arc<dyn ObjectStore>,
    to: &Path,
    expected: Option<&str>,
) -> Result<Transferred, BackupError> {
    let got = source.get(from).await?;
    let etag = got.meta.e_tag.clone();
    let mut stream = got.into_stream();
    let mut writer = BufWriter::with_capacity(target.clone(), to.clone(), PART_SIZE)
        .with_max_concurrency(PART_UPLOADS);
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    let outcome: Result<(), BackupError> = async {
        while let Some(bytes) = stream.try_next().await? {
            hasher.update(&bytes);
            size += bytes.len() as u64;
            writer.put(bytes).await?;
        }
        Ok(())
    }
    .await;
    let blake3 = hasher.finalize().to_hex().to_string();
    let mismatch = expected.is_some_and(|expected| expected != blake3);
    if outcome.is_err() || mismatch {
        // Nothing of a multipart upload is visible until it completes; a small object is
        // only put on shutdown.
        let _ = writer.abort().await;
        outcome?;
        return Err(BackupError::Integrity(format!(
            "{from} does not match the BLAKE3 its backup recorded"
        )));
    }
    writer.shutdown().await.map_err(store_error)?;
    Ok(Transferred { size, blake3, etag })
}

/// The store error inside an I/O error of object_store's `BufWriter`, so the error keeps its
/// store kind (Forbidden, NotFound, …).
fn store_error(error: std::io::Error) -> BackupError {
    if !error
        .get_ref()
        .is_some_and(|inner| inner.is::<object_store::Error>())
    {
        return BackupError::Io(error);
    }
    match error
        .into_inner()
        .map(|inner| inner.downcast::<object_store::Error>())
    {
        Some(Ok(store)) => BackupError::from(*store),
        _ => BackupError::Internal("a store error that is not one".into()),
    }
}

/// The size and BLAKE3 of `path` in `store`, read as a stream. Errors: `Store`.
pub async fn hash_object(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<(u64, String), BackupError> {
    let mut stream = store.get(path).await?.into_stream();
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    while let Some(bytes) = stream.try_next().await? {
        hasher.update(&bytes);
        size += bytes.len() as u64;
    }
    Ok((size, hasher.finalize().to_hex().to_string()))
}

/// A server-side copy inside one store (no bytes pass through this process), then a read of
/// the copy to record its hash. `etag` is the source's as listed. Errors: `Store`.
pub async fn server_side_copy(
    store: &Arc<dyn ObjectStore>,
    from: &Path,
    to: &Path,
    etag: Option<String>,
) -> Result<Transferred, BackupError> {
    store.copy(from, to).await?;
    let (size, blake3) = hash_object(store, to).await?;
    Ok(Transferred { size, blake3, etag })
}
