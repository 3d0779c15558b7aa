//! The `backup` action: dump a database (or copy a file) into a store as one new backup, then
//! copy a bucket folder into it when the run has one (issue 8 §1, [`super::objects`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::objects::{ObjectCopyConfig, ObjectCopyPart};
use super::spec::{EncryptionSpec, RunSpec};
use crate::backup::{BackupOptions, DumpInput, default_parallelism, run_backup_measured};
use crate::error::BackupError;
use crate::format::DEFAULT_CHUNK_SIZE;
use crate::manifest::Manifest;
use crate::names::new_default_backup_name;
use crate::pipeline::compress::Compression;
use crate::pipeline::cpu::StageCpuReport;
use crate::pipeline::upload::UploadLimits;
use crate::progress::Progress;
use crate::snapshot::SnapshotConfig;
use crate::source::{DatabaseSource, SourceConfig};
use crate::store::BackupStore;

/// What a backup reads.
#[derive(Clone, Debug)]
pub enum BackupInput {
    /// A live database server, dumped by its engine's tool.
    Database(SourceConfig),
    /// A file's bytes, stored as they are; the path `-` is stdin.
    File(PathBuf),
    /// No database part: a run with only an object copy ([`BackupRun::objects`]). Its data
    /// object holds an empty stream, so the manifest keeps the format's shape.
    Nothing,
    /// A managed-database snapshot (see [`crate::snapshot`]): the manifest records it, and
    /// the backup's one data object holds that record as JSON.
    Snapshot(SnapshotConfig),
}

/// How the bytes are processed on their way to the store.
#[derive(Clone, Debug)]
pub struct PipelineSettings {
    /// `zstd`, `gzip` or `none`.
    pub compression: String,
    /// zstd 1–19 or −7…−1, gzip 1–9; `None` is the algorithm's default.
    pub compression_level: Option<i32>,
    /// zstd: keep `compression_level` even while compression holds the dump back (see
    /// [`crate::pipeline::adaptive`]).
    pub fixed_compression_level: bool,
    /// Raw chunk size in bytes (bounds in [`crate::format`]).
    pub chunk_size: usize,
    /// Chunks compressed and encrypted at once; `None` is the number of CPUs.
    pub parallelism: Option<usize>,
    /// Multipart upload part size and concurrency.
    pub upload: UploadLimits,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            compression: "zstd".into(),
            compression_level: None,
            fixed_compression_level: false,
            chunk_size: DEFAULT_CHUNK_SIZE,
            parallelism: None,
            upload: UploadLimits::default(),
        }
    }
}

/// One backup to make.
#[derive(Clone, Debug)]
pub struct BackupRun {
    /// The backup's name (its folder); `None` generates `<engine>-<UTC time>-<random>`.
    pub name: Option<String>,
    /// What to back up.
    pub input: BackupInput,
    /// Compression, chunking, parallelism, upload bounds.
    pub pipeline: PipelineSettings,
    /// The key-encryption key (or `disabled`).
    pub encryption: EncryptionSpec,
    /// Labels recorded in the manifest (the operator's owner UID, policy, request).
    pub labels: BTreeMap<String, String>,
    /// A bucket folder to copy after the database part (see [`super::objects`]).
    pub objects: Option<ObjectCopyConfig>,
}

impl BackupRun {
    /// The backup a spec describes. Errors: `Config` when the spec names neither a source
    /// nor a snapshot, or both.
    pub fn from_spec(spec: &RunSpec) -> Result<Self, BackupError> {
        let input = match (&spec.source, &spec.snapshot, &spec.objects) {
            (Some(source), None, _) => BackupInput::Database(source.clone()),
            (None, Some(snapshot), _) => BackupInput::Snapshot(snapshot.clone()),
            (Some(_), Some(_), _) => {
                return Err(BackupError::Config(
                    "a backup has one database part: a source (a dump) or a snapshot, not both"
                        .into(),
                ));
            }
            (None, None, Some(_)) => BackupInput::Nothing,
            (None, None, None) => {
                return Err(BackupError::Config(
                    "a backup needs a source, a snapshot or objects to copy".into(),
                ));
            }
        };
        Ok(BackupRun {
            name: spec.name.clone(),
            input,
            pipeline: PipelineSettings {
                compression: spec.compression.clone(),
                compression_level: spec.compression_level,
                fixed_compression_level: spec.fixed_compression_level,
                chunk_size: spec.chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE),
                parallelism: spec.parallelism,
                upload: UploadLimits::default(),
            },
            encryption: spec.encryption.clone(),
            labels: spec.labels.clone(),
            objects: spec.objects.clone(),
        })
    }

    /// The pipeline's options for backup `name`. Errors: `Config` for an unknown compression
    /// or a level out of range, or a key that cannot be read.
    fn options(&self, name: &str) -> Result<BackupOptions, BackupError> {
        let mut options = BackupOptions::new(name, self.encryption.writing_key()?);
        options.compression =
            Compression::from_spec(&self.pipeline.compression, self.pipeline.compression_level)?;
        options.adaptive_compression = !self.pipeline.fixed_compression_level;
        options.chunk_size = self.pipeline.chunk_size;
        options.parallelism = self
            .pipeline
            .parallelism
            .unwrap_or_else(default_parallelism)
            .max(1);
        options.labels = self.labels.clone();
        options.upload = self.pipeline.upload;
        if let Some(objects) = &self.objects {
            options
                .parts
                .push(Arc::new(ObjectCopyPart::new(objects.clone())?));
        }
        Ok(options)
    }
}

/// A finished backup.
#[derive(Debug)]
pub struct BackupReport {
    /// The manifest as written: name, sizes, chunks, counts, labels.
    pub manifest: Manifest,
    /// CPU seconds per pipeline stage.
    pub cpu: StageCpuReport,
    /// Wall-clock seconds from the first byte read to the manifest written.
    pub seconds: f64,
    /// Where the backup is: the store's description (`s3://bucket/prefix`, no credentials);
    /// the backup is the folder `<location>/<manifest.name>/`.
    pub location: String,
}

/// Makes one backup in `store`. Progress bytes are the raw (dump) bytes read. When `cancel`
/// fires the run stops, deletes what it wrote and fails with `Cancelled`.
///
/// Errors: `Config` (bad settings or keys), `AlreadyExists`/`NameReserved` (the name is taken:
/// nothing was written), `Source` (the database or its tool failed), `Store`, `Cancelled`.
pub async fn backup(
    store: &BackupStore,
    run: &BackupRun,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<BackupReport, BackupError> {
    let source = match &run.input {
        BackupInput::Database(config) => Some(DatabaseSource::new(config.clone())),
        BackupInput::File(_) | BackupInput::Nothing | BackupInput::Snapshot(_) => None,
    };
    let name = match (&run.name, &source, &run.input) {
        (Some(name), _, _) => name.clone(),
        (None, Some(source), _) => {
            new_default_backup_name(&format!("{:?}", source.engine()).to_lowercase())?
        }
        (None, None, BackupInput::Snapshot(_)) => new_default_backup_name("snapshot")?,
        (None, None, BackupInput::Nothing) => new_default_backup_name("objects")?,
        (None, None, _) => new_default_backup_name("file")?,
    };
    let mut options = run.options(&name)?;
    if store.exists(&name).await? {
        return Err(BackupError::AlreadyExists(name));
    }
    let input = match (&source, &run.input) {
        (Some(source), _) => DumpInput::from_started(source.dump().await?),
        (None, BackupInput::File(path)) if path.as_os_str() == "-" => {
            DumpInput::plain(tokio::io::stdin())
        }
        (None, BackupInput::File(path)) => {
            DumpInput::plain(tokio::fs::File::open(path).await.map_err(|error| {
                BackupError::Config(format!("cannot open {}: {error}", path.display()))
            })?)
        }
        (None, BackupInput::Nothing) => DumpInput::plain(tokio::io::empty()),
        (None, BackupInput::Snapshot(config)) => {
            let (record, input) =
                crate::snapshot::snapshot_part(config, &name, &run.labels, cancel).await?;
            options.snapshot = Some(record);
            input
        }
        (None, BackupInput::Database(_)) => return Err(BackupError::Internal("no input".into())),
    };
    progress.set_phase("backup");
    let started = Instant::now();
    let outcome =
        match run_backup_measured(store, &options, input, progress.clone(), cancel.clone()).await {
            Ok(outcome) => outcome,
            Err(error) => {
                // No manifest names the run's snapshot: nothing else would ever delete it.
                if let (BackupInput::Snapshot(config), Some(record)) =
                    (&run.input, &options.snapshot)
                {
                    crate::snapshot::discard_unrecorded(config, record, &name).await;
                }
                return Err(error);
            }
        };
    Ok(BackupReport {
        manifest: outcome.manifest,
        cpu: outcome.cpu,
        seconds: started.elapsed().as_secs_f64(),
        location: store.description().to_string(),
    })
}
