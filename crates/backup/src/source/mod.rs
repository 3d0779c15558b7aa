//! Database sources: start a streaming dump of a live server, and stream a dump back into a
//! server. The pipeline only sees bytes; the engines (`postgres`, `mariadb`, `redis`) know the
//! tools, the credentials and the counts that drills compare.
//!
//! Contract the pipeline relies on:
//! - a dump is read to EOF from `DumpStream::reader`, then `DumpStream::finish` says whether the
//!   tool succeeded (exit status, stderr): a dump whose tool failed is never a backup;
//! - a restore is written to `RestoreStream::writer`, which is then shut down, then
//!   `RestoreStream::finish` says whether the tool succeeded;
//! - passwords never appear on a command line or in an error message.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

/// Which database engine a backup holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// PostgreSQL, dumped with `pg_dump -Fc -Z0`.
    Postgres,
    /// MySQL or MariaDB, dumped with `mariadb-dump --single-transaction`.
    Mariadb,
    /// Redis, an RDB snapshot.
    Redis,
}

/// What the source says about itself, recorded in the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The engine.
    pub engine: Engine,
    /// The server's own version string.
    pub server_version: String,
    /// Versions of the client tools used, by tool name.
    pub tool_versions: BTreeMap<String, String>,
}

/// Counts taken at dump time, compared after a drill restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectCounts {
    /// Rows per table, keyed by `schema.table` (PostgreSQL) or `database.table` (MariaDB).
    Tables(BTreeMap<String, u64>),
    /// Number of keys in the Redis server (all logical databases).
    Keys(u64),
}

/// A boxed future that resolves once the tool behind a stream has exited.
pub type Completion = Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send>>;

/// A dump in progress.
pub struct DumpStream {
    /// The dump bytes.
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
    /// Resolves when the tool has exited; an error means the dump is not a backup.
    pub completion: Completion,
}

impl DumpStream {
    /// Waits for the tool; call after the reader reached EOF.
    pub async fn finish(self) -> Result<(), SourceError> {
        self.completion.await
    }
}

/// A restore in progress.
pub struct RestoreStream {
    /// Where the dump bytes go.
    pub writer: Pin<Box<dyn AsyncWrite + Send>>,
    /// Resolves when the tool has exited; call after shutting down the writer.
    pub completion: Completion,
}

impl RestoreStream {
    /// Waits for the tool; call after the writer was shut down.
    pub async fn finish(self) -> Result<(), SourceError> {
        self.completion.await
    }
}

/// Why a source or target failed. Messages never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The server could not be reached or refused the login.
    #[error("cannot connect to the {engine:?} server: {message}")]
    Connect {
        /// The engine.
        engine: Engine,
        /// What went wrong, without secrets.
        message: String,
    },
    /// A client tool (pg_dump, mariadb-dump, …) failed or is missing.
    #[error("{tool} failed: {message}")]
    Tool {
        /// The tool's name.
        tool: String,
        /// Exit status and the end of its stderr, without secrets.
        message: String,
    },
    /// The restore target exists and overwriting was not allowed.
    #[error("restore target {target} already exists; pass --overwrite to replace it")]
    TargetExists {
        /// The database (or server) that would be overwritten.
        target: String,
    },
    /// Anything else, with a message safe to show.
    #[error("{0}")]
    Other(String),
    /// I/O on the streams or temp files.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
