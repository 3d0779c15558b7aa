//! Database sources: start a streaming dump of a live server, and stream a dump back into a
//! server. The pipeline only sees bytes; the engines (`postgres`, `mariadb`, `redis`) know the
//! tools, the credentials and the counts that drills compare.
//!
//! Contract the pipeline relies on:
//! - a dump is read to EOF from `DumpStream::reader`, then `DumpStream::finish` says whether the
//!   tool succeeded (exit status, stderr): a dump whose tool failed is never a backup;
//! - a restore is written to `RestoreStream::writer`, which is then shut down, then
//!   `RestoreStream::completion` says whether the tool succeeded; the tool writes into a
//!   staging target only, and `RestoreStream::staged` is committed (or aborted) by the caller
//!   once it knows the whole stream was read and verified (see [`staging`]);
//! - passwords never appear on a command line or in an error message.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

pub mod credentials;
pub mod engine;
pub mod identifier;
pub mod mariadb;
pub mod mariadb_properties;
pub mod postgres;
pub mod postgres_properties;
pub mod process;
pub mod redis;
pub mod restore_failure;
pub mod staged_file;
pub mod staging;
pub mod tool_output;

pub use credentials::{PasswordSource, Secret};
pub use engine::DatabaseEngine;
pub use staging::Staged;

/// How long the database tools wait for a connection unless the spec says otherwise.
pub(crate) fn default_connect_timeout_seconds() -> u64 {
    10
}

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
    /// Server settings that decide whether (and how) a dump loads elsewhere, by name; e.g.
    /// Redis `databases` (a snapshot with keys in db 20 loads only where `databases` > 20).
    /// Empty when the engine records none or the server would not tell.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
}

/// Counts taken at dump time, compared after a drill restore.
///
/// JSON (in the manifest and in results): `{"rows": {"<schema>": {"<table>": n}}}`,
/// `{"keys": n}`, or — only in manifests written before table names were structured —
/// `{"tables": {"<schema>.<table>": n}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectCounts {
    /// Rows per table by (schema, table) — PostgreSQL schema, or MariaDB database — each name
    /// exactly as the server spells it, so `a."b.c"` and `"a.b".c` stay two tables.
    Rows(TableRows),
    /// Rows per table keyed by the joined string `schema.table`: what older manifests hold.
    /// Still read (and sealed manifests still verify, as they round-trip unchanged), never
    /// written; such a key is ambiguous when a name holds a dot (see `drill::compare_counts`).
    Tables(BTreeMap<String, u64>),
    /// Number of keys in the Redis server (all logical databases); written by older
    /// versions, compared exactly.
    Keys(u64),
    /// Redis keys in all logical databases, and how many of them carry an expiry (those may
    /// legitimately be gone from a snapshot taken a moment after the count).
    RedisKeys(RedisKeyCounts),
}

/// Redis key counts (see [`ObjectCounts::RedisKeys`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisKeyCounts {
    /// All keys, expired-but-not-yet-removed ones included (Redis' own `keys=`).
    pub keys: u64,
    /// Keys with an expiry (`expires=`).
    pub expiring: u64,
}

/// Row counts by schema (or MariaDB database), then by table.
pub type TableRows = BTreeMap<String, BTreeMap<String, u64>>;

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

/// A restore in progress, writing into a staging target.
pub struct RestoreStream {
    /// Where the dump bytes go.
    pub writer: Pin<Box<dyn AsyncWrite + Send>>,
    /// Resolves when the tool has exited; await after shutting down the writer. It never
    /// touches the target: success means the staging target holds what the tool was given.
    pub completion: Completion,
    /// Commits the staging target into place, or aborts it; exactly one, decided by the
    /// caller after `completion` (see [`staging`]).
    pub staged: Staged,
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
    /// The restore target cannot carry a database-level property of the source (an encoding,
    /// a locale or collation the target server lacks, a setting it does not know): the restore
    /// refuses rather than give a database that behaves differently.
    #[error(
        "the target server cannot provide the source database's {property}: {message}; \
         install it on the target server or restore onto a server that has it"
    )]
    UnsupportedProperty {
        /// Which property, e.g. `LC_COLLATE "de_DE.ISO-8859-1"`.
        property: String,
        /// The server's own message, without secrets.
        message: String,
    },
    /// The restore tool failed on a statement of the dump (the dump itself is intact); the
    /// hint says what to pass or do to restore it anyway.
    #[error("{tool} could not complete the restore: {message}\n{hint}")]
    RestoreStatement {
        /// The tool's name.
        tool: String,
        /// Exit status and the end of its stderr, without secrets.
        message: String,
        /// How to get past it (boxed: it keeps every `Result` of this error small).
        hint: Box<restore_failure::RestoreHint>,
    },
    /// A statement of a MariaDB dump is larger than the target server accepts in one packet
    /// (its `max_allowed_packet`), so the server cut the restore off.
    #[error(
        "{tool} failed: the dump's statement at line {line} is {} ({statement_bytes} bytes), \
         larger than the server's max_allowed_packet of {} ({max_allowed_packet} bytes); raise \
         max_allowed_packet on the target server to at least {needed_bytes} (SET GLOBAL \
         max_allowed_packet = {needed_bytes}, or its configuration file; MariaDB allows up to \
         1073741824) and restore again. {tool} said: {output}",
        crate::progress::human_bytes(*.statement_bytes),
        crate::progress::human_bytes(*.max_allowed_packet)
    )]
    PacketTooLarge {
        /// The client tool.
        tool: String,
        /// 1-based line of the dump that holds the statement.
        line: u64,
        /// The statement's size in bytes.
        statement_bytes: u64,
        /// The server's `max_allowed_packet` in bytes.
        max_allowed_packet: u64,
        /// A `max_allowed_packet` that accepts the statement (rounded up to 1 MiB).
        needed_bytes: u64,
        /// The end of the tool's output, long lines trimmed.
        output: String,
    },
    /// A value of a MariaDB dump is larger than the target server's `max_allowed_packet`:
    /// the server cannot hold it (the restore builds large values piece by piece, so only the
    /// value's own size counts).
    #[error(
        "{tool} failed: a value of the dump is larger than the server's max_allowed_packet of \
         {} ({max_allowed_packet} bytes); raise max_allowed_packet on the target server to at \
         least the source server's (SET GLOBAL max_allowed_packet = …, or its configuration \
         file; MariaDB allows up to 1073741824) and restore again. {tool} said: {output}",
        crate::progress::human_bytes(*.max_allowed_packet)
    )]
    ValueTooLarge {
        /// The client tool.
        tool: String,
        /// The server's `max_allowed_packet` in bytes.
        max_allowed_packet: u64,
        /// The end of the tool's output, long lines trimmed.
        output: String,
    },
    /// Anything else, with a message safe to show.
    #[error("{0}")]
    Other(String),
    /// I/O on the streams or temp files.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Row or key counts that resolve while (or after) the dump runs: PostgreSQL counts in the
/// dump's own snapshot concurrently with it. Await before writing the manifest.
pub type CountsFuture = Pin<Box<dyn Future<Output = Result<ObjectCounts, SourceError>> + Send>>;

/// A dump that has started, with what the manifest records about it.
pub struct StartedDump {
    /// The server and tool versions.
    pub info: SourceInfo,
    /// The databases the dump holds (PostgreSQL: one; MariaDB: one or more; Redis: empty, the
    /// whole server). A MariaDB dump of exactly one database can be restored under another
    /// name; one of several restores into the original names.
    pub databases: Vec<String>,
    /// The bytes and the tool's exit.
    pub stream: DumpStream,
    /// Counts consistent with the dump (see each engine for how exact).
    pub counts: CountsFuture,
    /// Database-level properties (encoding, locale, settings, comment) recorded in the
    /// manifest so a restore recreates them; `None` where the engine has none (Redis).
    pub properties: Option<DatabaseProperties>,
}

/// Database-level properties of the dumped database(s), per engine (recorded in the manifest
/// as `databaseProperties`; manifests written before it existed have none and restore as
/// before).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "engine", rename_all = "lowercase")]
pub enum DatabaseProperties {
    /// The one dumped PostgreSQL database.
    Postgres(postgres_properties::PostgresDatabaseProperties),
    /// Each dumped MariaDB database, by name.
    Mariadb(mariadb_properties::MariadbDatabasesProperties),
}

impl DatabaseProperties {
    /// The PostgreSQL properties, if these are.
    pub fn postgres(&self) -> Option<&postgres_properties::PostgresDatabaseProperties> {
        match self {
            Self::Postgres(properties) => Some(properties),
            Self::Mariadb(_) => None,
        }
    }

    /// The MariaDB properties, if these are.
    pub fn mariadb(&self) -> Option<&mariadb_properties::MariadbDatabasesProperties> {
        match self {
            Self::Mariadb(properties) => Some(properties),
            Self::Postgres(_) => None,
        }
    }
}

/// Connection settings for one engine, as the CLI and the runner take them
/// (`{"engine": "postgres", "host": …}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "engine", rename_all = "lowercase")]
pub enum SourceConfig {
    /// PostgreSQL.
    Postgres(postgres::PostgresConfig),
    /// MySQL or MariaDB.
    Mariadb(mariadb::MariadbConfig),
    /// Redis.
    Redis(redis::RedisConfig),
}

/// Where a restore goes, per engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "engine", rename_all = "lowercase")]
pub enum RestoreTarget {
    /// A PostgreSQL database.
    Postgres(postgres::PostgresRestoreOptions),
    /// MariaDB database(s).
    Mariadb(mariadb::MariadbRestoreOptions),
    /// A Redis data directory.
    Redis(redis::RedisRestoreOptions),
}

/// One database source of any engine: what the pipeline holds.
#[derive(Clone, Debug)]
pub enum DatabaseSource {
    /// PostgreSQL.
    Postgres(postgres::PostgresSource),
    /// MySQL or MariaDB.
    Mariadb(mariadb::MariadbSource),
    /// Redis.
    Redis(redis::RedisSource),
}

impl DatabaseSource {
    /// The source for `config`; nothing is contacted yet.
    pub fn new(config: SourceConfig) -> Self {
        match config {
            SourceConfig::Postgres(config) => Self::Postgres(postgres::PostgresSource::new(config)),
            SourceConfig::Mariadb(config) => Self::Mariadb(mariadb::MariadbSource::new(config)),
            SourceConfig::Redis(config) => Self::Redis(redis::RedisSource::new(config)),
        }
    }

    /// The engine behind this source: the one place that knows every engine.
    pub fn as_engine(&self) -> &dyn DatabaseEngine {
        match self {
            Self::Postgres(source) => source,
            Self::Mariadb(source) => source,
            Self::Redis(source) => source,
        }
    }

    /// What the restored copy in `target` holds that reaches outside it (see
    /// [`crate::isolation`]); empty for Redis, whose snapshots act only on their own server.
    pub async fn isolation_report(
        &self,
        target: &RestoreTarget,
        dumped_databases: &[String],
    ) -> Result<crate::isolation::IsolationReport, SourceError> {
        self.as_engine()
            .isolation_report(target, dumped_databases)
            .await
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.as_engine().engine()
    }

    /// Server and tool versions.
    pub async fn info(&self) -> Result<SourceInfo, SourceError> {
        self.as_engine().info().await
    }

    /// Starts a dump.
    pub async fn dump(&self) -> Result<StartedDump, SourceError> {
        self.as_engine().dump().await
    }

    /// Starts a restore into `target`, which must be of the same engine.
    pub async fn restore(&self, target: &RestoreTarget) -> Result<RestoreStream, SourceError> {
        self.as_engine().restore(target).await
    }

    /// Counts of what a restore produced in `target` (a drill compares them with the
    /// manifest's). MariaDB single-database restores are re-keyed to the dumped database name
    /// so the keys match the manifest's.
    pub async fn count_restored(
        &self,
        target: &RestoreTarget,
        dumped_databases: &[String],
    ) -> Result<ObjectCounts, SourceError> {
        self.as_engine()
            .count_restored(target, dumped_databases)
            .await
    }
}

impl RestoreTarget {
    /// Where it is, bare: the database name(s) or the data directory.
    pub fn location(&self) -> String {
        match self {
            Self::Postgres(options) => options.database.clone(),
            Self::Mariadb(options) => match &options.database {
                Some(database) => database.clone(),
                None => options.dumped_databases.join(", "),
            },
            Self::Redis(options) => options.data_dir.display().to_string(),
        }
    }

    /// Where it is, for people: `database "app_restored"`, `databases ["a", "b"]`, or the
    /// data directory.
    pub fn describe(&self) -> String {
        match self {
            Self::Postgres(options) => format!("database {:?}", options.database),
            Self::Mariadb(options) => match &options.database {
                Some(database) => format!("database {database:?}"),
                None => format!("databases {:?}", options.dumped_databases),
            },
            Self::Redis(options) => format!("{}", options.data_dir.display()),
        }
    }

    fn engine_name(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Mariadb(_) => "mariadb",
            Self::Redis(_) => "redis",
        }
    }
}
