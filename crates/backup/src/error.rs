//! The errors of the backup engine, and the process exit code each one maps to.

use crate::snapshot::{SnapshotError, SnapshotErrorKind};
use crate::source::SourceError;
use crate::store::{StoreError, StoreErrorKind};

/// Why a backup, restore, verify, drill, list or prune failed. Messages never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The user's input is wrong (a flag, a spec, a key file): fix it and run again.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The database source or restore target failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The object store failed or could not be reached; [`StoreError::kind`] says how (not
    /// found, forbidden, unavailable, conflict, invalid config), so the operator can tell a 403
    /// from a 503.
    #[error("object store: {0}")]
    Store(StoreError),
    /// The run's managed-database snapshot failed; [`SnapshotError::kind`] says how
    /// (forbidden, unavailable, failed, timed out, …).
    #[error("database snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
    /// No backup of that name (no manifest) in the store.
    #[error("backup {0:?} not found (no manifest in the store)")]
    NotFound(String),
    /// A backup of that name already exists; backups are never overwritten.
    #[error("backup {0:?} already exists in the store")]
    AlreadyExists(String),
    /// Another run holds the backup name: it is writing that backup now, or it was interrupted
    /// and left its objects (which `prune` reclaims after its grace period).
    #[error(
        "backup name {name:?} is taken: another run reserved it {since} and is writing it now, \
         or was interrupted (prune reclaims an interrupted run's objects after its grace period); \
         nothing was written"
    )]
    NameReserved {
        /// The backup name.
        name: String,
        /// When the other run reserved it, as far as the store tells (`at <time>`), or empty.
        since: String,
    },
    /// Data in the store does not match the manifest: corrupted, missing or reordered.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// The supplied key cannot open this backup.
    #[error("wrong encryption key: {0}")]
    WrongKey(String),
    /// The manifest was written by a newer (or unknown) format.
    #[error(
        "unsupported backup format version {found} (this build reads versions {} to {supported})",
        crate::format::OLDEST_FORMAT_VERSION
    )]
    UnsupportedFormat {
        /// The version found in the manifest.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A drill restored the backup but the counts differ from those taken at dump time.
    #[error("drill found differences with the dump-time counts: {0}")]
    DrillMismatch(String),
    /// The run was cancelled (signal); nothing was left that looks like a backup.
    #[error("cancelled")]
    Cancelled,
    /// Local I/O failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A bug or an unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Exit codes of the `vertice-backup` binary (documented in `--help`).
pub mod exit_code {
    /// Success.
    pub const OK: u8 = 0;
    /// An unexpected internal error.
    pub const INTERNAL: u8 = 1;
    /// Command-line usage error (clap's own code).
    pub const USAGE: u8 = 2;
    /// Invalid configuration: spec, flags, key files.
    pub const CONFIG: u8 = 3;
    /// The database (source or restore target) failed or is unreachable.
    pub const DATABASE: u8 = 4;
    /// The object store failed or is unreachable.
    pub const STORE: u8 = 5;
    /// Integrity failure: corrupted or missing data, wrong key, unknown format.
    pub const INTEGRITY: u8 = 6;
    /// The backup does not exist.
    pub const NOT_FOUND: u8 = 7;
    /// Refused to overwrite: the backup or the restore target already exists.
    pub const EXISTS: u8 = 8;
    /// A drill failed its checks: the restored counts differ from the dump-time counts, or
    /// the restored copy is not isolated (it reaches outside itself).
    pub const DRILL_MISMATCH: u8 = 9;
    /// Cancelled by a signal.
    pub const CANCELLED: u8 = 130;
}

impl BackupError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            BackupError::Config(_) => exit_code::CONFIG,
            BackupError::Source(SourceError::TargetExists { .. }) => exit_code::EXISTS,
            BackupError::Source(_) => exit_code::DATABASE,
            BackupError::Store(_) => exit_code::STORE,
            BackupError::Snapshot(error) if error.kind == SnapshotErrorKind::InvalidConfig => {
                exit_code::CONFIG
            }
            // The snapshot is the run's database part.
            BackupError::Snapshot(_) => exit_code::DATABASE,
            BackupError::NotFound(_) => exit_code::NOT_FOUND,
            BackupError::AlreadyExists(_) | BackupError::NameReserved { .. } => exit_code::EXISTS,
            BackupError::Integrity(_)
            | BackupError::WrongKey(_)
            | BackupError::UnsupportedFormat { .. } => exit_code::INTEGRITY,
            BackupError::DrillMismatch(_) => exit_code::DRILL_MISMATCH,
            BackupError::Cancelled => exit_code::CANCELLED,
            BackupError::Io(_) | BackupError::Internal(_) => exit_code::INTERNAL,
        }
    }

    /// The store error's kind, when this is a store error.
    pub fn store_kind(&self) -> Option<StoreErrorKind> {
        match self {
            BackupError::Store(error) => Some(error.kind),
            _ => None,
        }
    }

    /// The snapshot error's kind, when this is a snapshot error.
    pub fn snapshot_kind(&self) -> Option<SnapshotErrorKind> {
        match self {
            BackupError::Snapshot(error) => Some(error.kind),
            _ => None,
        }
    }

    /// Whether running again later may succeed without any change (the store or the
    /// database was unreachable); false for errors a person must fix.
    pub fn is_transient(&self) -> bool {
        match self {
            BackupError::Store(error) => error.kind.is_transient(),
            BackupError::Snapshot(error) => error.kind.is_transient(),
            BackupError::Source(SourceError::Connect { .. }) => true,
            _ => false,
        }
    }

    /// A short machine-readable kind, used in `--output json`.
    pub fn kind(&self) -> &'static str {
        match self {
            BackupError::Config(_) => "Config",
            BackupError::Source(SourceError::TargetExists { .. }) => "TargetExists",
            BackupError::Source(_) => "Database",
            BackupError::Store(_) => "Store",
            BackupError::Snapshot(_) => "Snapshot",
            BackupError::NotFound(_) => "NotFound",
            BackupError::AlreadyExists(_) => "AlreadyExists",
            BackupError::NameReserved { .. } => "NameReserved",
            BackupError::Integrity(_) => "Integrity",
            BackupError::WrongKey(_) => "WrongKey",
            BackupError::UnsupportedFormat { .. } => "UnsupportedFormat",
            BackupError::DrillMismatch(_) => "DrillMismatch",
            BackupError::Cancelled => "Cancelled",
            BackupError::Io(_) => "Io",
            BackupError::Internal(_) => "Internal",
        }
    }
}

impl From<object_store::Error> for BackupError {
    fn from(error: object_store::Error) -> Self {
        BackupError::Store(StoreError::from(error))
    }
}

impl From<StoreError> for BackupError {
    fn from(error: StoreError) -> Self {
        BackupError::Store(error)
    }
}

impl From<tokio::task::JoinError> for BackupError {
    fn from(error: tokio::task::JoinError) -> Self {
        BackupError::Internal(format!("a pipeline task failed: {error}"))
    }
}
