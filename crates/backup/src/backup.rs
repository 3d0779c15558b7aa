//! One backup run: dump → chunks → (compress, encrypt, hash, in parallel) → multipart upload →
//! manifest, written last and only when the dump tool succeeded and every object is complete.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::error::BackupError;
use crate::format::{
    BackupId, DEFAULT_CHUNK_SIZE, FORMAT_VERSION, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, to_hex,
};
use crate::keys::KeyEncryptionKey;
use crate::manifest::Manifest;
use crate::manifest_seal::ManifestSealKey;
use crate::pipeline::adaptive::AdaptiveLevel;
use crate::pipeline::buffers::BufferPool;
use crate::pipeline::chunker::{ChunkerOutcome, chunk_stream};
use crate::pipeline::compress::Compression;
use crate::pipeline::cpu::{Stage, StageCpu, StageCpuReport};
use crate::pipeline::encrypt::{DataKey, random_bytes};
use crate::pipeline::upload::{DataObjectWriter, UploadLimits};
use crate::pipeline::{ChunkCodec, RawChunk};
use crate::progress::Progress;
use crate::run_part::RunPart;
use crate::source::{CountsFuture, DatabaseProperties, DumpStream, SourceInfo, StartedDump};
use crate::store::BackupStore;
use crate::store::reservation::Reservation;

/// How to make a backup.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    /// Backup name (its folder in the store).
    pub name: String,
    /// Labels recorded in the manifest.
    pub labels: BTreeMap<String, String>,
    /// Chunk compression.
    pub compression: Compression,
    /// zstd: lower the level (down to [`crate::pipeline::adaptive::STORE_LEVEL`]) while
    /// compression holds the dump back, and return to `compression`'s level when it keeps up
    /// (default true; see [`crate::pipeline::adaptive`]).
    pub adaptive_compression: bool,
    /// Raw chunk size.
    pub chunk_size: usize,
    /// Chunks compressed and encrypted at once (default: the number of CPUs).
    pub parallelism: usize,
    /// The key-encryption key; `None` stores the backup unencrypted.
    pub key: Option<KeyEncryptionKey>,
    /// Multipart upload bounds.
    pub upload: UploadLimits,
    /// Parts of the run after the dump, in order (see [`crate::run_part`]).
    pub parts: Vec<Arc<dyn RunPart>>,
    /// The run's managed-database snapshot, recorded in the manifest.
    pub snapshot: Option<crate::snapshot::SnapshotRecord>,
}

impl BackupOptions {
    /// Defaults for backup `name`, encrypted with `key`.
    pub fn new(name: &str, key: Option<KeyEncryptionKey>) -> Self {
        BackupOptions {
            name: name.to_string(),
            labels: BTreeMap::new(),
            compression: Compression::default(),
            adaptive_compression: true,
            chunk_size: DEFAULT_CHUNK_SIZE,
            parallelism: default_parallelism(),
            key,
            upload: UploadLimits::default(),
            parts: Vec::new(),
            snapshot: None,
        }
    }
}

/// The number of CPUs (at least 1).
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// What is being backed up.
pub struct DumpInput {
    /// The dump stream and its tool's completion.
    pub stream: DumpStream,
    /// Engine and versions, if the stream comes from a database.
    pub source: Option<SourceInfo>,
    /// The databases the dump holds.
    pub databases: Vec<String>,
    /// Counts taken at dump time, resolving while the dump runs.
    pub counts: Option<CountsFuture>,
    /// Database-level properties, recorded in the manifest.
    pub properties: Option<DatabaseProperties>,
}

impl DumpInput {
    /// A database dump that has started.
    pub fn from_started(started: StartedDump) -> Self {
        DumpInput {
            stream: started.stream,
            source: Some(started.info),
            databases: started.databases,
            counts: Some(started.counts),
            properties: started.properties,
        }
    }

    /// A plain byte stream (a file, stdin) with no database behind it.
    pub fn plain(reader: impl tokio::io::AsyncRead + Send + 'static) -> Self {
        DumpInput {
            stream: DumpStream {
                reader: Box::pin(reader),
                completion: Box::pin(async { Ok(()) }),
            },
            source: None,
            databases: Vec::new(),
            counts: None,
            properties: None,
        }
    }
}

/// A finished backup: its manifest and what each pipeline stage cost.
#[derive(Debug)]
pub struct BackupOutcome {
    /// The manifest as written.
    pub manifest: Manifest,
    /// CPU time per stage of the pipeline (see [`crate::pipeline::cpu`]).
    pub cpu: StageCpuReport,
}

/// Runs one backup; returns its manifest. The name is reserved first, create-only (see
/// `store::reservation`): a run that loses the name to another fails with `NameReserved`
/// (exit code 8) before it writes anything. On any later failure (source, store,
/// cancellation) the open upload is aborted, this run's objects are deleted, and no manifest
/// is written. The manifest is written create-only.
pub async fn run_backup(
    store: &BackupStore,
    options: &BackupOptions,
    input: DumpInput,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<Manifest, BackupError> {
    run_backup_measured(store, options, input, progress, cancel)
        .await
        .map(|outcome| outcome.manifest)
}

/// [`run_backup`], also reporting each pipeline stage's CPU time.
pub async fn run_backup_measured(
    store: &BackupStore,
    options: &BackupOptions,
    input: DumpInput,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<BackupOutcome, BackupError> {
    let cpu = StageCpu::new();
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&options.chunk_size) {
        return Err(BackupError::Config(format!(
            "chunk size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes"
        )));
    }
    if options.upload.part_size < 5 * 1024 * 1024 || options.upload.concurrency == 0 {
        return Err(BackupError::Config(
            "upload parts must be at least 5 MiB and concurrency at least 1".into(),
        ));
    }
    if store.exists(&options.name).await? {
        return Err(BackupError::AlreadyExists(options.name.clone()));
    }
    let started_at = Utc::now();
    let backup_id: BackupId = random_bytes()?;
    store
        .reserve_name(&Reservation {
            name: options.name.clone(),
            backup_id: to_hex(&backup_id),
            reserved_at: started_at,
            pid: std::process::id(),
        })
        .await?;
    let (data_key, encryption, seal_key) = match &options.key {
        Some(key) => {
            let (data_key, wrapped) = key.new_data_key(&backup_id)?;
            (
                Some(DataKey::from_bytes(&data_key)?),
                Some(wrapped),
                Some(ManifestSealKey::derive(&data_key)),
            )
        }
        None => (None, None, None),
    };
    let adaptive = match options.compression {
        Compression::Zstd { level } if options.adaptive_compression => {
            Some(Arc::new(AdaptiveLevel::new(level, options.parallelism)))
        }
        _ => None,
    };
    let mut codec = ChunkCodec::new(backup_id, options.compression, data_key);
    if let Some(adaptive) = &adaptive {
        codec = codec.with_adaptive_level(adaptive.clone());
    }
    let codec = Arc::new(codec);
    let mut writer = DataObjectWriter::new(store.clone(), &options.name, backup_id, options.upload);

    let DumpInput {
        stream,
        source,
        databases,
        counts,
        properties,
    } = input;
    // Counts run beside the dump (PostgreSQL: in the dump's own snapshot).
    let counts = counts.map(|counts| AbortOnDropHandle::new(tokio::spawn(counts)));
    let DumpStream {
        mut reader,
        completion,
    } = stream;
    let parallelism = options.parallelism.max(1);
    let (raw_tx, mut raw_rx) = tokio::sync::mpsc::channel::<RawChunk>(1);
    let chunk_size = options.chunk_size;
    let chunker_progress = progress.clone();
    let chunker_cpu = cpu.clone();
    // Raw chunk buffers in use: one being read, one of look-ahead, one in the channel and
    // those being encoded.
    let buffers = BufferPool::new(parallelism + 3);
    let chunker_buffers = buffers.clone();
    let chunker = AbortOnDropHandle::new(tokio::spawn(cpu.metered(Stage::Read, async move {
        chunk_stream(
            &mut reader,
            chunk_size,
            raw_tx,
            chunker_progress,
            chunker_cpu,
            chunker_buffers,
            adaptive,
        )
        .await
    })));

    let pipeline = async {
        let raw_chunks = futures::stream::poll_fn(move |cx| raw_rx.poll_recv(cx));
        let mut encoded = raw_chunks
            .map(|chunk| {
                let codec = codec.clone();
                let cpu = cpu.clone();
                let buffers = buffers.clone();
                async move {
                    tokio::task::spawn_blocking(move || {
                        let encoded = codec.encode(&chunk, &cpu);
                        buffers.put(Vec::from(chunk.data));
                        encoded
                    })
                    .await?
                }
            })
            .buffered(parallelism);
        let mut entries = Vec::new();
        loop {
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(BackupError::Cancelled),
                next = encoded.next() => next,
            };
            let Some(chunk) = next else { break };
            let entry = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(BackupError::Cancelled),
                entry = cpu.metered(Stage::Upload, writer.write_chunk(chunk?)) => entry?,
            };
            entries.push(entry);
        }
        drop(encoded);
        let outcome: ChunkerOutcome = chunker.await??;
        // The dump tool must have succeeded before anything is completed in the store.
        completion.await?;
        let counts = match counts {
            Some(counts) => Some(counts.await??),
            None => None,
        };
        Ok((entries, outcome, counts))
    }
    .await;

    let (chunks, outcome, counts) = match pipeline {
        Ok(done) => done,
        Err(error) => {
            writer.abort().await;
            // Frees the name: the reservation, with anything the writer could not delete.
            let _ = store.delete_folder(&options.name).await;
            return Err(error);
        }
    };
    let objects = match writer.finish().await {
        Ok(objects) => objects,
        Err(error) => {
            // `finish` aborted the open upload; remove any earlier objects.
            let _ = store.delete_folder(&options.name).await;
            return Err(error);
        }
    };
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        name: options.name.clone(),
        backup_id: to_hex(&backup_id),
        source,
        started_at,
        finished_at: Utc::now(),
        raw_size: outcome.raw_size,
        stored_size: objects.iter().map(|object| object.size).sum(),
        compression: options.compression,
        encryption,
        chunk_size: options.chunk_size as u64,
        objects,
        chunks,
        raw_blake3: outcome.raw_blake3,
        databases,
        counts,
        labels: options.labels.clone(),
        snapshot: options.snapshot.clone(),
        database_properties: properties,
        bucket_copy: None,
        seal: None,
    };
    for part in &options.parts {
        // The part watches `cancel` itself, so that it can clean up what it wrote.
        if let Err(error) = part.run(store, &mut manifest, &progress, &cancel).await {
            let _ = store.delete_folder(&options.name).await;
            return Err(error);
        }
    }
    manifest.validate()?;
    if let Some(seal_key) = &seal_key {
        seal_key.seal(&mut manifest)?;
    }
    if cancel.is_cancelled() {
        let _ = store.delete_folder(&options.name).await;
        return Err(BackupError::Cancelled);
    }
    match store.create_manifest(&manifest).await {
        Ok(()) => {}
        // A manifest appeared though this run holds the reservation: a writer that does not
        // reserve names (an older version) made it. Its objects are not ours to delete.
        Err(error @ BackupError::AlreadyExists(_)) => return Err(error),
        Err(error) => {
            let _ = store.delete_folder(&options.name).await;
            return Err(error);
        }
    }
    Ok(BackupOutcome {
        manifest,
        cpu: cpu.report(),
    })
}
