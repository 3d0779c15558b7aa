//! MySQL / MariaDB: `mariadb-dump --single-transaction` streamed from stdout, restored with the
//! `mariadb` client from stdin into staging databases (`vertice_stage_…`; a dump of several
//! databases is pointed at them by `rename_stream`), which the commit step moves into the
//! targets only after the whole dump was verified (`staged`, `swap`): MariaDB has no
//! `RENAME DATABASE`, so contents move — tables by one atomic `RENAME TABLE`, views,
//! triggers, routines and events by their definitions.
//!
//! Credentials reach both tools through a private option file (`--defaults-file`, mode 0600,
//! removed when the tool exits). `--defaults-file` rather than `--defaults-extra-file`: only
//! our file is read, so a `[client]` section in the machine's `my.cnf` cannot redirect a
//! backup to another server or user.
//!
//! A dump of exactly one database is made without `--databases`, so it holds no
//! `CREATE DATABASE`/`USE` and can be restored under any name (a new database by default). A
//! dump of several (or all non-system) databases restores into the original names.
//! One limit of renaming: MariaDB keeps a trigger's (and event's) text as it was written, so a
//! trigger created as `CREATE TRIGGER db.trg … ON db.t` (rather than inside the database)
//! still names the original database; restoring such a dump under another name on the same
//! server fails with "trigger already exists" instead of silently touching the original.
//!
//! Row counts: exact `COUNT(*)` per `database.table`, all in one
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT` session started together with the dump. MariaDB
//! cannot share a snapshot between sessions (PostgreSQL can), so under concurrent writes the
//! counts' snapshot and the dump's may differ by the writes of the few milliseconds between
//! them; on a quiet server (and for every drill of a quiet source) they are exact.
//!
//! A restored copy must not act on its source: its events arrive `DISABLE`d unless
//! [`MariadbRestoreOptions::keep_events_enabled`] (see `restore_filter`), and
//! [`MariadbSource::isolation_report`] lists the routines, views, triggers and events that name
//! other databases (see `isolation`).
//!
//! Large rows: whatever was dumped from a server restores onto that same server. A value's
//! literal is longer than the value (escapes; `--hex-blob`, which older backups used, doubles
//! it), so a row the server holds can make an `INSERT` larger than the server's
//! `max_allowed_packet`. Dumps now write binary columns as escaped strings (not hex), and the
//! restore builds every value larger than a quarter of the target's limit (at most 4 MiB) in a
//! user variable, piece by piece, before inserting its row (see `long_values`). Both tools use
//! the protocol's largest packet (1 GiB, at least as large as any server's). A value larger than
//! the target server's limit fails the restore with [`SourceError::ValueTooLarge`] (a statement
//! still too large, with [`SourceError::PacketTooLarge`]); both name max_allowed_packet.
//!
//! Every name in SQL is either a backtick-quoted identifier (backticks doubled) or a hex
//! literal, so hostile names (quotes, backslashes, semicolons, unicode) cannot break out.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::credentials::{PasswordSource, Secret, private_temp_file};
use super::process::{Tool, find_tool, tool_version};
use super::staging::unique_suffix;
use super::{
    Engine, ObjectCounts, RestoreStream, SourceError, SourceInfo, Staged, StartedDump, TableRows,
};

mod counts;
mod engine;
mod rename_stream;
mod staged;
mod swap;

mod isolation;
mod long_values;
mod restore_filter;

pub use isolation::qualifiers;
pub use restore_filter::{LongestLine, StatementWatch, disable_event};

/// The largest packet the MariaDB/MySQL protocol allows: the tools' own limit, so that the
/// server's (at most this) is always the one that decides.
const PROTOCOL_MAX_PACKET: u64 = 1 << 30;

/// Databases that belong to the server, never dumped by "all databases".
const SYSTEM_DATABASES: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

/// How to reach a MySQL/MariaDB server and what to dump.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MariadbConfig {
    /// Host name or IP address (TCP), or a Unix socket path (starts with `/`).
    pub host: String,
    /// TCP port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Where the password comes from.
    #[serde(default)]
    pub password: PasswordSource,
    /// Databases to dump; empty means every database but the system ones.
    #[serde(default)]
    pub databases: Vec<String>,
    /// Dump stored procedures and functions.
    #[serde(default = "yes")]
    pub routines: bool,
    /// Dump events (needs the EVENT privilege).
    #[serde(default = "yes")]
    pub events: bool,
    /// Where `mariadb-dump` and `mariadb` (or `mysqldump` and `mysql`) live; default PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<PathBuf>,
    /// Connection timeout in seconds.
    #[serde(default = "super::default_connect_timeout_seconds")]
    pub connect_timeout_seconds: u64,
}

fn default_port() -> u16 {
    3306
}

fn yes() -> bool {
    true
}

/// How to restore a MariaDB dump.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MariadbRestoreOptions {
    /// For a dump of one database: the database to restore into (created by the restore);
    /// `None` restores under the dumped name. Must be `None` for a dump of several databases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The databases the dump holds (`StartedDump::databases`, recorded in the manifest).
    pub dumped_databases: Vec<String>,
    /// Replace existing target databases. They stay untouched while the dump streams into
    /// staging databases, and are replaced only after the whole restore succeeded (their
    /// contents are moved aside first and dropped last).
    #[serde(default)]
    pub overwrite: bool,
    /// The dumped databases' character sets, collations and comments (from the manifest),
    /// given to the staging databases and, by the commit, to the targets; `None` for backups
    /// made before they were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<super::mariadb_properties::MariadbDatabasesProperties>,
    /// Keep the dump's events as they were (enabled ones run in the copy as soon as it is
    /// restored). By default every event arrives `DISABLE`d: a copy's event would otherwise
    /// start running at once, and an event that names its source database writes into it.
    #[serde(default)]
    pub keep_events_enabled: bool,
}

/// A MySQL/MariaDB server as a backup source and restore target.
#[derive(Clone, Debug)]
pub struct MariadbSource {
    config: MariadbConfig,
}

impl MariadbSource {
    /// A source for `config`. Nothing is contacted until a method is called.
    pub fn new(config: MariadbConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &MariadbConfig {
        &self.config
    }

    /// The server version and the client tools' versions.
    pub async fn info(&self) -> Result<SourceInfo, SourceError> {
        let server_version = self.query_rows("SELECT VERSION();").await?;
        let server_version = server_version
            .first()
            .and_then(|row| row.first())
            .cloned()
            .unwrap_or_default();
        let mut tool_versions = BTreeMap::new();
        for (name, path) in [
            ("mariadb-dump", self.dump_tool()),
            ("mariadb", self.client_tool()),
        ] {
            tool_versions.insert(
                name.to_owned(),
                tool_version(Engine::Mariadb, name, &path).await?,
            );
        }
        Ok(SourceInfo {
            engine: Engine::Mariadb,
            server_version,
            tool_versions,
            settings: BTreeMap::new(),
        })
    }

    /// The databases a dump covers: the configured ones, or every non-system database.
    pub async fn databases(&self) -> Result<Vec<String>, SourceError> {
        if !self.config.databases.is_empty() {
            return Ok(self.config.databases.clone());
        }
        let excluded: Vec<String> = SYSTEM_DATABASES
            .iter()
            .map(|name| hex_literal(name))
            .collect();
        let rows = self
            .query_rows(&format!(
                "SELECT HEX(SCHEMA_NAME) FROM information_schema.SCHEMATA \
                 WHERE HEX(SCHEMA_NAME) NOT IN ({}) ORDER BY SCHEMA_NAME;",
                excluded.join(", ")
            ))
            .await?;
        rows.iter()
            .map(|row| decode_hex_field(row.first().map(String::as_str).unwrap_or_default()))
            .collect()
    }

    /// Starts `mariadb-dump --single-transaction`; counts are taken in a consistent snapshot
    /// started together with the dump (see the module doc).
    pub async fn dump(&self) -> Result<StartedDump, SourceError> {
        let info = self.info().await?;
        let databases = self.databases().await?;
        if databases.is_empty() {
            return Err(SourceError::Other(
                "there is no database to dump (the server holds only system databases)".to_owned(),
            ));
        }
        let (mut tool, _password) = self.tool(&self.dump_tool(), "mariadb-dump")?;
        tool.args([
            "--single-transaction",
            "--skip-lock-tables",
            "--quick",
            "--triggers",
            "--default-character-set=utf8mb4",
        ]);
        // No --hex-blob: see the module doc (large rows).
        tool.arg(format!("--max-allowed-packet={PROTOCOL_MAX_PACKET}"));
        if self.config.routines {
            tool.arg("--routines");
        }
        if self.config.events {
            tool.arg("--events");
        }
        if databases.len() > 1 {
            tool.arg("--databases");
        }
        // `--` so that a database named like an option stays a name.
        tool.arg("--").args(databases.iter().cloned());
        let properties = super::mariadb_properties::read_properties(self, &databases).await?;
        let stream = tool.spawn_dump()?;

        let counter = self.clone();
        let counted_databases = databases.clone();
        let counting = tokio::spawn(async move { counter.count_rows(&counted_databases).await });
        let counts = Box::pin(async move {
            counting.await.unwrap_or_else(|_| {
                Err(SourceError::Other(
                    "the row counting task failed".to_owned(),
                ))
            })
        });
        Ok(StartedDump {
            info,
            databases,
            stream,
            counts,
            properties: Some(super::DatabaseProperties::Mariadb(properties)),
        })
    }

    /// Starts the `mariadb` client reading a dump into staging databases (see
    /// [`MariadbRestoreOptions`] and the `staged` module): the targets are replaced only by
    /// the commit step.
    pub async fn restore(
        &self,
        options: &MariadbRestoreOptions,
    ) -> Result<RestoreStream, SourceError> {
        let targets = restore_targets(options)?;
        let server_max_packet = self.max_allowed_packet().await?;
        let existing = self.existing_databases(&targets).await?;
        if !existing.is_empty() && !options.overwrite {
            return Err(SourceError::TargetExists {
                target: existing.join(", "),
            });
        }
        let suffix = unique_suffix();
        let plan: Vec<staged::StagedDatabase> = targets
            .iter()
            .enumerate()
            .map(|(index, target)| staged::StagedDatabase {
                target: target.clone(),
                staging: super::identifier::generated_name(
                    Engine::Mariadb,
                    "vertice_stage",
                    &format!("_{suffix}_{index}"),
                ),
            })
            .collect();
        let single = options.dumped_databases.len() == 1;
        let single_staging = match plan.as_slice() {
            [database] if single => Some(database.staging.clone()),
            _ => None,
        };
        // --- database-level properties (fidelity): the staging databases get the dumped
        // ones' character set, collation and comment, and the commit copies them onto the
        // targets (`swap`). A single-database dump has no CREATE DATABASE of its own; a dump
        // of several creates its (renamed) databases only "IF NOT EXISTS", so creating them
        // first with the recorded properties is what gives them their comments too.
        let properties = options.properties.clone().unwrap_or_default();
        let mut create = String::new();
        if let Some(staging) = &single_staging {
            let dumped = options.dumped_databases.first().map_or("", String::as_str);
            create.push_str(&properties.create_statement(staging, dumped));
        } else if options.properties.is_some() {
            for (dumped, database) in options.dumped_databases.iter().zip(&plan) {
                create.push_str(&properties.create_statement(&database.staging, dumped));
            }
        }
        if !create.is_empty() {
            let script = format!("{}{create}", super::mariadb_properties::SESSION_SETUP);
            if let Err(error) = self.run_sql(&script).await {
                self.drop_staging(&plan).await;
                return Err(properties.create_failure(&options.dumped_databases, error));
            }
        }
        // --- end of database-level properties
        let (mut tool, _password) = self.tool(&self.client_tool(), "mariadb")?;
        tool.args(["--binary-mode", "--batch"]);
        tool.arg(format!("--max-allowed-packet={PROTOCOL_MAX_PACKET}"));
        if let Some(staging) = &single_staging {
            tool.arg(format!("--database={staging}"));
        }
        let stream = match tool.spawn_restore() {
            Ok(stream) => stream,
            Err(error) => {
                self.drop_staging(&plan).await;
                return Err(error);
            }
        };
        let writer: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>> =
            if single_staging.is_some() {
                stream.writer
            } else {
                let renames = options
                    .dumped_databases
                    .iter()
                    .cloned()
                    .zip(plan.iter().map(|database| database.staging.clone()))
                    .collect();
                Box::pin(rename_stream::RenameDatabases::new(stream.writer, renames))
            };
        let committer = self.clone();
        let commit_plan = plan.clone();
        let overwrite = options.overwrite;
        let cleaner = self.clone();
        let mut stream = RestoreStream {
            writer,
            completion: stream.completion,
            staged: Staged::new(
                async move { committer.commit_staged(&commit_plan, overwrite).await },
                async move {
                    cleaner.drop_staging(&plan).await;
                    Ok(())
                },
            ),
        };
        restore_filter::apply(&mut stream, !options.keep_events_enabled, server_max_packet);
        Ok(stream)
    }

    /// Drops the databases, if they exist (drills clean up with this).
    pub async fn drop_database(&self, database: &str) -> Result<(), SourceError> {
        self.run_sql(&format!(
            "DROP DATABASE IF EXISTS {};",
            quote_ident(database)
        ))
        .await
    }

    async fn drop_databases(&self, databases: &[String]) {
        for database in databases {
            // Best effort: the original failure is the error to report.
            let _ = self.drop_database(database).await;
        }
    }

    /// Which of `databases` exist (compared byte for byte: SCHEMATA's collation is
    /// case-insensitive, database names on Linux are not).
    async fn existing_databases(&self, databases: &[String]) -> Result<Vec<String>, SourceError> {
        let names: Vec<String> = databases.iter().map(|name| hex_literal(name)).collect();
        let rows = self
            .query_rows(&format!(
                "SELECT HEX(SCHEMA_NAME) FROM information_schema.SCHEMATA \
                 WHERE HEX(SCHEMA_NAME) IN ({});",
                names.join(", ")
            ))
            .await?;
        rows.iter()
            .map(|row| decode_hex_field(row.first().map(String::as_str).unwrap_or_default()))
            .collect()
    }

    /// Runs SQL through the `mariadb` client; tab-separated rows without headers.
    pub(crate) async fn query_rows(&self, sql: &str) -> Result<Vec<Vec<String>>, SourceError> {
        let (mut tool, _password) = self.tool(&self.client_tool(), "mariadb")?;
        tool.args(["--batch", "--skip-column-names"]);
        let output = tool.output(Some(sql.as_bytes())).await?;
        Ok(String::from_utf8_lossy(&output)
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| line.split('\t').map(str::to_owned).collect())
            .collect())
    }

    async fn run_sql(&self, sql: &str) -> Result<(), SourceError> {
        self.query_rows(sql).await.map(|_| ())
    }

    fn dump_tool(&self) -> PathBuf {
        let bin_dir = self.config.bin_dir.as_deref();
        let path = find_tool("mariadb-dump", bin_dir, &[]);
        if path.is_absolute() {
            path
        } else {
            find_tool("mysqldump", bin_dir, &[])
        }
    }

    fn client_tool(&self) -> PathBuf {
        let bin_dir = self.config.bin_dir.as_deref();
        let path = find_tool("mariadb", bin_dir, &[]);
        if path.is_absolute() {
            path
        } else {
            find_tool("mysql", bin_dir, &[])
        }
    }

    /// A MariaDB tool whose first argument is `--defaults-file=<private option file>` holding
    /// the connection and the password.
    fn tool(
        &self,
        program: &std::path::Path,
        name: &str,
    ) -> Result<(Tool, Option<Secret>), SourceError> {
        let password = self.config.password.resolve()?;
        let mut options = String::from("[client]\n");
        if self.config.host.starts_with('/') {
            options.push_str(&format!("socket={}\n", quote_option(&self.config.host)));
        } else {
            options.push_str(&format!(
                "host={}\nport={}\nprotocol=TCP\n",
                quote_option(&self.config.host),
                self.config.port
            ));
        }
        options.push_str(&format!("user={}\n", quote_option(&self.config.user)));
        if let Some(password) = &password {
            options.push_str(&format!("password={}\n", quote_option(password.expose())));
        }
        // Only the `mariadb` client knows connect-timeout (mariadb-dump rejects it as an
        // unknown variable), so it goes into the client's own group.
        options.push_str(&format!(
            "[mysql]\nconnect-timeout={}\n",
            self.config.connect_timeout_seconds
        ));
        let file = private_temp_file("vertice-my-", &options)?;
        let mut tool = Tool::new(Engine::Mariadb, name, program);
        // Must be the first argument, or the tools ignore it.
        tool.arg(format!("--defaults-file={}", file.path().display()))
            .env_remove("MYSQL_PWD")
            .env_remove("MYSQL_HOST")
            .secret(password.clone())
            .keep_alive(file);
        Ok((tool, password))
    }
}

/// The databases a restore writes: the given target for a single-database dump, else the
/// dumped names.
fn restore_targets(options: &MariadbRestoreOptions) -> Result<Vec<String>, SourceError> {
    match (options.dumped_databases.as_slice(), &options.database) {
        ([], _) => Err(SourceError::Other(
            "the restore needs the dumped database names (from the manifest)".to_owned(),
        )),
        ([_], Some(target)) => Ok(vec![target.clone()]),
        ([dumped], None) => Ok(vec![dumped.clone()]),
        (_, Some(_)) => Err(SourceError::Other(
            "a dump of several databases restores into their own names; it cannot be renamed"
                .to_owned(),
        )),
        (dumped, None) => Ok(dumped.to_vec()),
    }
}

/// Files the tables counted in database `from` under database `to` (a restore under another
/// name counted as the dumped database). Other databases are left as they are.
pub fn rekey_database(mut counts: TableRows, from: &str, to: &str) -> TableRows {
    if let Some(tables) = counts.remove(from) {
        counts.insert(to.to_string(), tables);
    }
    counts
}

/// Quotes a MariaDB identifier: inside backticks, a backtick is doubled.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A string as a hex literal compared with `HEX(column)`: `'6162'` — no escaping rules (and no
/// sql_mode such as NO_BACKSLASH_ESCAPES) can change what it means.
pub(crate) fn hex_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2 + 2);
    out.push('\'');
    for byte in value.bytes() {
        out.push_str(&format!("{byte:02X}"));
    }
    out.push('\'');
    out
}

/// Decodes a `HEX()` column back to the UTF-8 name.
pub(crate) fn decode_hex_field(hex: &str) -> Result<String, SourceError> {
    let invalid = || SourceError::Other(format!("unexpected hex value {hex:?} from mariadb"));
    if !hex.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// Quotes an option-file value: double quotes, with `\` and `"` escaped and line breaks as
/// escapes (an option file value cannot span lines).
fn quote_option(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
