//! Reads a backup back: fetches the data objects in order, cuts them into the chunks the
//! manifest lists, and decodes (hash, decrypt, decompress) several chunks at once on the blocking
//! pool, handing raw bytes in dump order to a sink — or to nowhere, for a verify pass.
//! Checks every header, chunk hash and tag, the object hashes of a format 1 backup, the raw
//! sizes and the raw hash.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::{GetResultPayload, ObjectStoreExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use super::ChunkCodec;
use super::buffers::BufferPool;
use super::hash;
use crate::error::BackupError;
use crate::format::{HEADER_LEN, check_header};
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::store::BackupStore;
use crate::verify::locate_chunk_error;

/// What a read pass saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanReport {
    /// Raw bytes produced.
    pub raw_size: u64,
    /// Chunks checked.
    pub chunks: u64,
    /// Data objects checked.
    pub objects: u64,
}

/// Where an object's bytes come from: a file of the local store, read in whole chunks on the
/// blocking pool (the store's own stream reads it 8 KiB per blocking task), or the store's
/// stream of network-sized pieces.
enum ObjectSource {
    File(Option<std::fs::File>),
    Stream {
        stream: BoxStream<'static, Result<Bytes, object_store::Error>>,
        /// What is left of the last piece.
        pending: Bytes,
    },
}

/// Pulls exact-size pieces out of a data object, hashing them as they pass when the manifest
/// has the object's hash (format 1).
struct ObjectBytes {
    source: ObjectSource,
    hasher: Option<blake3::Hasher>,
    name: String,
}

impl ObjectBytes {
    fn new(payload: GetResultPayload, name: &str, hashed: bool) -> Self {
        let source = match payload {
            GetResultPayload::File(file, _) => ObjectSource::File(Some(file)),
            GetResultPayload::Stream(stream) => ObjectSource::Stream {
                stream,
                pending: Bytes::new(),
            },
        };
        ObjectBytes {
            source,
            hasher: hashed.then(blake3::Hasher::new),
            name: name.to_owned(),
        }
    }

    fn too_short(&self) -> BackupError {
        BackupError::Integrity(format!(
            "data object {} is shorter than the manifest says (missing chunks)",
            self.name
        ))
    }

    /// The next `len` bytes, in `piece` (emptied first; its allocation is reused), so decoding
    /// needs no copy.
    async fn take(&mut self, len: usize, mut piece: Vec<u8>) -> Result<Vec<u8>, BackupError> {
        piece.clear();
        piece.reserve_exact(len);
        let piece = match &mut self.source {
            ObjectSource::File(slot) => {
                let mut file = slot.take().ok_or_else(|| {
                    BackupError::Internal("a data object read after a failed read".into())
                })?;
                let (file, read) = tokio::task::spawn_blocking(move || {
                    let read = (&mut file)
                        .take(len as u64)
                        .read_to_end(&mut piece)
                        .map(|_| piece);
                    (file, read)
                })
                .await?;
                *slot = Some(file);
                let piece = read?;
                if piece.len() < len {
                    return Err(self.too_short());
                }
                piece
            }
            ObjectSource::Stream { stream, pending } => {
                while piece.len() < len {
                    if pending.is_empty() {
                        match stream.try_next().await? {
                            Some(bytes) => *pending = bytes,
                            None => return Err(self.too_short()),
                        }
                    }
                    let take = pending.len().min(len - piece.len());
                    piece.extend_from_slice(&pending.split_to(take));
                }
                piece
            }
        };
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&piece);
        }
        Ok(piece)
    }

    async fn expect_end(&mut self) -> Result<(), BackupError> {
        let more = match &mut self.source {
            ObjectSource::File(slot) => {
                let mut file = slot.take().ok_or_else(|| {
                    BackupError::Internal("a data object read after a failed read".into())
                })?;
                tokio::task::spawn_blocking(move || file.read(&mut [0u8; 1])).await?? > 0
            }
            ObjectSource::Stream { stream, pending } => {
                !pending.is_empty() || stream.try_next().await?.is_some()
            }
        };
        if more {
            return Err(BackupError::Integrity(format!(
                "data object {} is longer than the manifest says",
                self.name
            )));
        }
        Ok(())
    }
}

type StoredChunk = (u64, Vec<u8>);

/// Sends every stored chunk, in order, checking headers (and a format 1 backup's whole-object
/// hashes) on the way.
async fn fetch_chunks(
    store: BackupStore,
    manifest: Arc<Manifest>,
    chunks: mpsc::Sender<Result<StoredChunk, BackupError>>,
    pool: Arc<BufferPool>,
) {
    let outcome = async {
        let backup_id = manifest.backup_id_bytes()?;
        let mut next_chunk = 0usize;
        for (object_index, object) in manifest.objects.iter().enumerate() {
            let object_index = u32::try_from(object_index)
                .map_err(|_| BackupError::Integrity("too many data objects".into()))?;
            let path = store.data_path(&manifest.name, object_index)?;
            let payload = match store.object_store().get(&path).await {
                Ok(result) => result.payload,
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(BackupError::Integrity(format!(
                        "data object {} is missing",
                        object.name
                    )));
                }
                Err(error) => return Err(error.into()),
            };
            let mut bytes = ObjectBytes::new(payload, &object.name, object.blake3.is_some());
            let header = bytes.take(HEADER_LEN as usize, Vec::new()).await?;
            check_header(&header, manifest.format_version, object_index, &backup_id)?;
            while let Some(entry) = manifest.chunks.get(next_chunk) {
                if entry.object != object_index {
                    break;
                }
                let len = usize::try_from(entry.stored_size)
                    .map_err(|_| BackupError::Integrity("chunk too large".into()))?;
                let stored = bytes.take(len, pool.get()).await?;
                if chunks.send(Ok((next_chunk as u64, stored))).await.is_err() {
                    return Ok(());
                }
                next_chunk += 1;
            }
            bytes.expect_end().await?;
            if let (Some(hasher), Some(expected)) = (&bytes.hasher, &object.blake3) {
                hash::check(
                    &hasher.finalize(),
                    expected,
                    &format!("data object {}", object.name),
                )?;
            }
        }
        Ok(())
    }
    .await;
    if let Err(error) = outcome {
        let _ = chunks.send(Err(error)).await;
    }
}

/// Reads the whole backup, checking everything, and writes the raw dump to `sink` (if any).
pub async fn scan(
    store: &BackupStore,
    manifest: Arc<Manifest>,
    codec: Arc<ChunkCodec>,
    parallelism: usize,
    mut sink: Option<&mut (dyn AsyncWrite + Send + Unpin)>,
    progress: &Progress,
) -> Result<ScanReport, BackupError> {
    let (tx, mut rx) = mpsc::channel(parallelism.max(1));
    // In flight at most: the channel, one being read, the decoding ones (two buffers each) and
    // one being written; idle ones beyond that are freed.
    let pool = BufferPool::new(3 * parallelism.max(1) + 2);
    let _fetcher = AbortOnDropHandle::new(tokio::spawn(fetch_chunks(
        store.clone(),
        manifest.clone(),
        tx,
        pool.clone(),
    )));
    let last = manifest.chunks.len().saturating_sub(1) as u64;
    let expected_raw_blake3 = manifest.raw_blake3.clone();
    let expected_raw_size = manifest.raw_size;
    let objects = manifest.objects.len() as u64;
    let received = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let located_store = store.clone();
    let mut decoded = received
        .map(|item| {
            let codec = codec.clone();
            let manifest = manifest.clone();
            let store = located_store.clone();
            let pool = pool.clone();
            async move {
                let (index, stored) = item?;
                let entry = manifest
                    .chunks
                    .get(usize::try_from(index).unwrap_or(usize::MAX))
                    .cloned()
                    .ok_or_else(|| BackupError::Internal("chunk index out of range".into()))?;
                let located = entry.clone();
                tokio::task::spawn_blocking(move || -> Result<Vec<u8>, BackupError> {
                    let (raw, spare) =
                        codec.decode_into(index, index == last, &entry, stored, pool.get())?;
                    pool.put(spare);
                    Ok(raw)
                })
                .await?
                .map_err(|error| locate_chunk_error(error, &store, &manifest.name, &located))
            }
        })
        .buffered(parallelism.max(1));
    let mut raw_hasher = blake3::Hasher::new();
    let mut report = ScanReport {
        raw_size: 0,
        chunks: 0,
        objects: 0,
    };
    while let Some(raw) = decoded.next().await {
        let raw = raw?;
        raw_hasher.update(&raw);
        report.raw_size += raw.len() as u64;
        report.chunks += 1;
        progress.add(raw.len() as u64);
        if let Some(sink) = sink.as_mut() {
            sink.write_all(&raw).await?;
        }
        pool.put(raw);
    }
    drop(decoded);
    if report.chunks != last + 1 {
        return Err(BackupError::Integrity(format!(
            "read {} chunks, the manifest lists {}",
            report.chunks,
            last + 1
        )));
    }
    hash::check(
        &raw_hasher.finalize(),
        &expected_raw_blake3,
        "the whole dump",
    )?;
    if report.raw_size != expected_raw_size {
        return Err(BackupError::Integrity(format!(
            "the dump has {} bytes, the manifest says {expected_raw_size}",
            report.raw_size
        )));
    }
    report.objects = objects;
    Ok(report)
}
