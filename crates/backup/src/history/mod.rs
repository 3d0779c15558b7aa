//! The backup history database (issue 8 §4): every finished backup run and restore run
//! recorded in PostgreSQL, for reports across clusters and for `vertice-backup history`.
//!
//! - [`migrate`]: the schema `vertice_history`, created and upgraded by the operator from the
//!   versioned SQL files in `crates/backup/migrations/` (a version table, one transaction per
//!   migration, an advisory lock so two replicas never migrate at once).
//! - [`record`]: the rows, built from a BackupRequest's or RestoreRequest's status (pure).
//! - [`write`]: idempotent upserts keyed by the run's UID, with the per-project totals
//!   recomputed in the same transaction.
//! - [`read`]: the runs listed by the CLI.
//!
//! The connection URL carries a password: it is kept in a [`HistoryUrl`] whose `Debug` hides
//! it, and no error of this module includes it.

pub mod migrate;
pub mod read;
pub mod record;
pub mod write;

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

/// The schema every history table and view lives in (see `migrations/0001_history.sql`).
pub const SCHEMA: &str = "vertice_history";

/// How long a connection attempt may take unless the URL says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A PostgreSQL connection URL (`postgres://user:password@host:port/db`, or libpq's
/// `key=value` form). `Debug` and `Display` show no part of it: it holds a password.
#[derive(Clone, PartialEq, Eq)]
pub struct HistoryUrl(String);

impl HistoryUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }
}

impl std::fmt::Debug for HistoryUrl {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("HistoryUrl(<redacted>)")
    }
}

impl std::str::FromStr for HistoryUrl {
    type Err = std::convert::Infallible;

    /// Takes any text: the syntax is checked when connecting ([`HistoryError::InvalidUrl`]),
    /// because a command-line parser's error would print the rejected value, password included.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

impl HistoryUrl {
    /// The parsed connection settings. Errors: [`HistoryError::InvalidUrl`] (naming no part of
    /// the URL).
    pub fn config(&self) -> Result<tokio_postgres::Config, HistoryError> {
        self.0.parse().map_err(|_| HistoryError::InvalidUrl)
    }
}

/// Why the history database could not be used. Messages never contain the URL or password.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The URL does not parse.
    #[error(
        "the history database URL is not a PostgreSQL connection URL (postgres://user:password@host:port/database)"
    )]
    InvalidUrl,
    /// The server could not be reached or refused the login.
    #[error("cannot connect to the history database: {0}")]
    Connect(String),
    /// A statement failed (the server's message).
    #[error("history database statement failed: {0}")]
    Query(String),
    /// An applied migration's SQL differs from this build's file of the same version: someone
    /// edited a released migration (add a new one instead).
    #[error(
        "history migration {version} was applied with different SQL than this build ships (checksum {applied} in the database, {shipped} here)"
    )]
    MigrationChanged {
        /// The migration's version.
        version: i32,
        /// Checksum recorded when it was applied.
        applied: String,
        /// Checksum of this build's file.
        shipped: String,
    },
    /// The database has no history schema yet (the operator creates it on its first write).
    #[error(
        "the history database has no {SCHEMA} schema yet: the operator creates it when it records its first run"
    )]
    NotMigrated,
}

impl HistoryError {
    /// `error` as a [`HistoryError::Query`], its message with `url`'s password (if any)
    /// replaced: server messages can quote connection parameters.
    fn query(error: &tokio_postgres::Error, url: &HistoryUrl) -> Self {
        Self::Query(redact(&describe(error), url))
    }

    fn connect(error: &tokio_postgres::Error, url: &HistoryUrl) -> Self {
        Self::Connect(redact(&describe(error), url))
    }
}

/// The error with its causes (tokio-postgres' `Display` alone often says just "db error").
fn describe(error: &tokio_postgres::Error) -> String {
    let mut message = error.to_string();
    if let Some(db) = error.as_db_error() {
        message = format!("{}: {}", db.severity(), db.message());
    } else {
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
    }
    message
}

/// `message` with the URL and its password replaced by `<redacted>`.
fn redact(message: &str, url: &HistoryUrl) -> String {
    let mut clean = message.replace(&url.0, "<redacted>");
    if let Ok(config) = url.0.parse::<tokio_postgres::Config>()
        && let Some(password) = config.get_password()
        && let Ok(password) = std::str::from_utf8(password)
        && !password.is_empty()
    {
        clean = clean.replace(password, "<redacted>");
    }
    clean
}

/// Connects to the history database (no TLS: the operator reaches it inside the cluster; see
/// the chart's docs) and drives the connection on a task that ends when the client is dropped.
/// Errors: [`HistoryError::InvalidUrl`], [`HistoryError::Connect`].
pub async fn connect(url: &HistoryUrl) -> Result<Client, HistoryError> {
    let mut config: tokio_postgres::Config = url.0.parse().map_err(|_| HistoryError::InvalidUrl)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.application_name("vertice-backup-history");
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|error| HistoryError::connect(&error, url))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!("history database connection ended: {error}");
        }
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_never_show_their_password() {
        for text in [
            "postgres://archiver:s3cr%3Dt@db.example:5432/history",
            "postgresql://archiver:hunter2@10.0.0.1/history?sslmode=disable",
            "host=db user=archiver password=hunter2 dbname=history",
        ] {
            let url: HistoryUrl = text.parse().unwrap();
            let shown = format!("{url:?}");
            assert!(
                !shown.contains("hunter2") && !shown.contains("s3cr"),
                "{shown}"
            );
            assert!(!redact(&format!("failed at {text}"), &url).contains("hunter2"));
        }
        let url: HistoryUrl = "host=db password=hunter2".parse().unwrap();
        assert_eq!(
            redact("password hunter2 rejected", &url),
            "password <redacted> rejected"
        );
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for text in [
            "mysql://root:hunter2@db/x",
            "postgres://root:hunter2@[::1",
            "host='unterminated password=hunter2",
        ] {
            let url: HistoryUrl = text.parse().unwrap();
            let error = url.config().unwrap_err().to_string();
            assert!(!error.contains("hunter2"), "{error}");
        }
    }
}
