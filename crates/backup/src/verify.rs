//! `verify`: re-reads a backup and checks everything a restore would — every data object's
//! header and length, every chunk hash (and a format 1 backup's object hashes), and (with a
//! key) every tag, the decompressed sizes and the raw dump hash — without writing anywhere.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::BackupError;
use crate::keys::KeyRing;
use crate::manifest::{ChunkEntry, Manifest};
use crate::manifest_seal::unseal_data_key;
use crate::pipeline::ChunkCodec;
use crate::pipeline::encrypt::DataKey;
use crate::pipeline::reader::{ScanReport, scan};
use crate::progress::Progress;
use crate::store::BackupStore;

/// A backup whose manifest is read and whose data key is unwrapped, ready to read.
#[derive(Debug)]
pub struct OpenedBackup {
    store: BackupStore,
    manifest: Arc<Manifest>,
    codec: Arc<ChunkCodec>,
    parallelism: usize,
}

/// What a verify pass found (everything, or it would have failed).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Backup name.
    pub name: String,
    /// Raw bytes checked.
    pub raw_size: u64,
    /// Stored bytes read.
    pub stored_size: u64,
    /// Chunks checked.
    pub chunks: u64,
    /// Data objects checked.
    pub objects: u64,
    /// Copied bucket objects whose size and BLAKE3 were checked (absent: no object copy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copied_objects: Option<u64>,
    /// How long the pass took.
    #[serde(with = "seconds")]
    pub duration: Duration,
}

mod seconds {
    pub fn serialize<S: serde::Serializer>(
        duration: &std::time::Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_secs_f64())
    }
}

impl OpenedBackup {
    /// Reads backup `name`'s manifest and unwraps its data key. Fails with `NotFound`,
    /// `UnsupportedFormat`, `Integrity` (a malformed manifest) or `WrongKey`.
    pub async fn open(
        store: &BackupStore,
        name: &str,
        keys: &KeyRing,
        parallelism: usize,
    ) -> Result<Self, BackupError> {
        let manifest = store.read_manifest(name).await?;
        let backup_id = manifest.backup_id_bytes()?;
        // Nothing the manifest says is used before its seal is checked.
        let key = match unseal_data_key(&manifest, keys)? {
            Some(data_key) => Some(DataKey::from_bytes(&data_key)?),
            None => None,
        };
        let codec = ChunkCodec::new(backup_id, manifest.compression, key);
        Ok(OpenedBackup {
            store: store.clone(),
            manifest: Arc::new(manifest),
            codec: Arc::new(codec),
            parallelism: parallelism.max(1),
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Reads the whole backup and checks everything (the copied bucket objects too); writes
    /// nothing.
    pub async fn verify(&self, progress: &Progress) -> Result<VerifyReport, BackupError> {
        let started = Instant::now();
        progress.start_phase(self.manifest.raw_size);
        let report = self.scan(None, progress).await?;
        // The object copy, if any: its index and every object's size and hash.
        let copied_objects = crate::engine::objects::verify_objects(
            &self.store,
            &self.manifest,
            self.parallelism,
            progress,
        )
        .await?;
        Ok(VerifyReport {
            copied_objects,
            name: self.manifest.name.clone(),
            raw_size: report.raw_size,
            stored_size: self.manifest.stored_size,
            chunks: report.chunks,
            objects: report.objects,
            duration: started.elapsed(),
        })
    }

    pub(crate) async fn scan(
        &self,
        sink: Option<&mut (dyn tokio::io::AsyncWrite + Send + Unpin)>,
        progress: &Progress,
    ) -> Result<ScanReport, BackupError> {
        scan(
            &self.store,
            self.manifest.clone(),
            self.codec.clone(),
            self.parallelism,
            sink,
            progress,
        )
        .await
    }
}

/// Verifies backup `name`.
pub async fn verify_backup(
    store: &BackupStore,
    name: &str,
    keys: &KeyRing,
    parallelism: usize,
    progress: &Progress,
) -> Result<VerifyReport, BackupError> {
    OpenedBackup::open(store, name, keys, parallelism)
        .await?
        .verify(progress)
        .await
}

/// Adds where a damaged chunk lies to an integrity error about it: the data object's path in
/// the store, the byte range inside that object, and the store, so a person can find the file
/// (or restore it from a copy). Other errors pass unchanged.
pub(crate) fn locate_chunk_error(
    error: BackupError,
    store: &BackupStore,
    backup: &str,
    chunk: &ChunkEntry,
) -> BackupError {
    let BackupError::Integrity(message) = error else {
        return error;
    };
    let object = match store.data_path(backup, chunk.object) {
        Ok(path) => path.to_string(),
        Err(_) => crate::format::data_object_name(chunk.object),
    };
    BackupError::Integrity(format!(
        "{message}; the chunk is bytes {}..{} of data object {object} in {}",
        chunk.offset,
        chunk.offset.saturating_add(chunk.stored_size),
        store.description()
    ))
}
