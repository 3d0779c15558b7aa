//! PostgreSQL: `pg_dump -Fc -Z0` streamed from stdout, `pg_restore` from stdin, optional
//! globals (roles, tablespaces) with `pg_dumpall --globals-only`.
//!
//! Row counts are exactly the dump's: they are read from the archive as it streams past
//! (`archive_counts`), which costs the server nothing. The dump runs in a REPEATABLE READ
//! transaction's exported snapshot (`pg_dump --snapshot=<id>`), kept open until the dump ends,
//! so where the archive cannot be counted (a pg_dump newer than the counter knows) the counts
//! fall back to `count(*)` in that same snapshot — still exactly the rows the dump holds, even
//! under concurrent writes.
//!
//! Restore goes into a staging database with a generated name, which the commit step renames
//! to the target only after the whole dump was verified and `pg_restore` succeeded: a failed restore leaves the target as it was (absent, or
//! — with `overwrite` — the old database), and a half-restored database never carries the
//! target's name. Without `overwrite`, an existing target is refused before anything is done.
//!
//! What a restored copy could reach outside itself (foreign servers, dblink calls,
//! subscriptions) is reported by [`PostgresSource::isolation_report`] (see `isolation`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, NoTls};

use super::credentials::{PasswordSource, Secret, private_temp_file, scrub};
use super::postgres_properties::{PostgresDatabaseProperties, read_properties};
use super::process::{Tool, find_tool, then, tool_version};
use super::restore_failure::classify_pg_restore_failure;
use super::staging::unique_suffix;
use super::{
    DumpStream, Engine, ObjectCounts, RestoreStream, SourceError, SourceInfo, Staged, StartedDump,
    TableRows,
};

pub mod archive_counts;
mod counting_reader;
use counting_reader::CountingReader;
mod swap;
use swap::{drop_database, staging_name, swap_into_place};
mod catalog;
use catalog::{count_tables, database_exists, error_text, pg_error, query_string};
mod engine;
mod isolation;

/// How to reach a PostgreSQL server and what to dump.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresConfig {
    /// Host name or IP address (TCP), or a Unix socket directory (starts with `/`).
    pub host: String,
    /// TCP port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Login role.
    pub user: String,
    /// Where the password comes from.
    #[serde(default)]
    pub password: PasswordSource,
    /// The database to dump (and, for `count_rows` without a name, to count).
    pub database: String,
    /// The database to connect to for CREATE/DROP/RENAME DATABASE during restores.
    #[serde(default = "default_maintenance_database")]
    pub maintenance_database: String,
    /// Where `pg_dump`, `pg_restore`, `pg_dumpall` and `psql` live; by default the newest
    /// `/usr/lib/postgresql/<version>/bin`, then PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<PathBuf>,
    /// Connection timeout in seconds.
    #[serde(default = "super::default_connect_timeout_seconds")]
    pub connect_timeout_seconds: u64,
}

fn default_port() -> u16 {
    5432
}

fn default_maintenance_database() -> String {
    "postgres".to_owned()
}

/// How to restore a PostgreSQL dump.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostgresRestoreOptions {
    /// The database to restore into; created by the restore.
    pub database: String,
    /// Replace the database when it exists (it is dropped only after the restore succeeded).
    #[serde(default)]
    pub overwrite: bool,
    /// Do not restore ownership (`--no-owner`): every object belongs to the restoring role.
    /// Needed when the dump's roles do not exist on the target server.
    #[serde(default)]
    pub no_owner: bool,
    /// Do not restore privileges (`--no-privileges`).
    #[serde(default)]
    pub no_privileges: bool,
    /// The dumped database's encoding, locale, settings and comment (from the manifest),
    /// given to the restored database; `None` for backups made before they were recorded
    /// (the database then gets the server's defaults, as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<PostgresDatabaseProperties>,
}

/// A PostgreSQL server as a backup source and restore target.
#[derive(Clone, Debug)]
pub struct PostgresSource {
    config: PostgresConfig,
}

impl PostgresSource {
    /// A source for `config`. Nothing is contacted until a method is called.
    pub fn new(config: PostgresConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }

    /// The server version and the client tools' versions.
    pub async fn info(&self) -> Result<SourceInfo, SourceError> {
        let password = self.config.password.resolve()?;
        let client = self
            .connect(&self.config.database, password.as_ref())
            .await?;
        let server_version =
            query_string(&client, "SHOW server_version", password.as_ref()).await?;
        let mut tool_versions = BTreeMap::new();
        for tool in ["pg_dump", "pg_restore"] {
            let version = tool_version(Engine::Postgres, tool, &self.tool(tool)).await?;
            tool_versions.insert(tool.to_owned(), version);
        }
        Ok(SourceInfo {
            engine: Engine::Postgres,
            server_version,
            tool_versions,
            settings: BTreeMap::new(),
        })
    }

    /// Starts `pg_dump -Fc -Z0` of the configured database; the row counts come from the same
    /// snapshot as the dump.
    pub async fn dump(&self) -> Result<StartedDump, SourceError> {
        let info = self.info().await?;
        let password = self.config.password.resolve()?;
        let client = self
            .connect(&self.config.database, password.as_ref())
            .await?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| pg_error("starting the snapshot transaction", &e, password.as_ref()))?;
        let snapshot =
            query_string(&client, "SELECT pg_export_snapshot()", password.as_ref()).await?;
        let properties = read_properties(&client).await?;

        let mut tool = self.tool_command("pg_dump", password.as_ref())?;
        tool.args(["--format=custom", "--compress=0", "--no-password"])
            .arg(format!("--snapshot={snapshot}"))
            .arg(format!("--dbname={}", self.conninfo(&self.config.database)));
        let stream = tool.spawn_dump()?;
        let (reader, archive_counts) = CountingReader::new(stream.reader);

        // The exporting transaction must stay open until pg_dump has imported the snapshot,
        // and for SQL counts if the archive cannot be counted: the counting task holds it until
        // the archive ended, and pg_dump's completion waits for that task.
        let (counts_tx, counts_rx) = tokio::sync::oneshot::channel();
        let counting_password = password.clone();
        let counting = tokio::spawn(async move {
            let counts = match archive_counts.await {
                Ok(Ok(rows)) => Ok(ObjectCounts::Rows(rows)),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "the archive's rows could not be counted; counting with SQL in the dump's snapshot");
                    count_tables(&client, counting_password.as_ref()).await
                }
                // The stream was dropped before its end: the dump is not a backup.
                Err(_) => Err(SourceError::Other(
                    "the dump ended before its rows were counted".to_owned(),
                )),
            };
            let _ = counts_tx.send(counts);
            client
        });
        let completion = then(stream.completion, move |result| async move {
            // Commit (or roll back) only after pg_dump exited.
            if let Ok(client) = counting.await {
                let _ = client.batch_execute("COMMIT").await;
            }
            result
        });
        let counts = Box::pin(async move {
            counts_rx.await.unwrap_or_else(|_| {
                Err(SourceError::Other(
                    "the row counting task ended early".to_owned(),
                ))
            })
        });
        Ok(StartedDump {
            info,
            databases: vec![self.config.database.clone()],
            stream: DumpStream {
                reader: Box::pin(reader),
                completion,
            },
            counts,
            properties: Some(super::DatabaseProperties::Postgres(properties)),
        })
    }

    /// Starts `pg_dumpall --globals-only` (roles, tablespaces): plain SQL, restored with
    /// [`Self::restore_globals`]. Reading role passwords needs a superuser; other roles can
    /// only dump globals with `no_role_passwords`.
    pub async fn dump_globals(&self, no_role_passwords: bool) -> Result<DumpStream, SourceError> {
        let password = self.config.password.resolve()?;
        let mut tool = self.tool_command("pg_dumpall", password.as_ref())?;
        tool.args(["--globals-only", "--no-password"]).arg(format!(
            "--dbname={}",
            self.conninfo(&self.config.maintenance_database)
        ));
        if no_role_passwords {
            tool.arg("--no-role-passwords");
        }
        tool.spawn_dump()
    }

    /// Starts `psql` reading a globals dump. Errors on single statements (a role that already
    /// exists) do not stop it — that is how globals are usually replayed — but a failure to
    /// connect does.
    pub async fn restore_globals(&self) -> Result<RestoreStream, SourceError> {
        let password = self.config.password.resolve()?;
        let mut tool = self.tool_command("psql", password.as_ref())?;
        tool.args(["-X", "-q", "--no-password"]).arg(format!(
            "--dbname={}",
            self.conninfo(&self.config.maintenance_database)
        ));
        tool.spawn_restore()
    }

    /// Starts `pg_restore` of a custom-format dump into `options.database` (see the module
    /// doc for the staging and overwrite semantics).
    pub async fn restore(
        &self,
        options: &PostgresRestoreOptions,
    ) -> Result<RestoreStream, SourceError> {
        let password = self.config.password.resolve()?;
        let admin = self
            .connect(&self.config.maintenance_database, password.as_ref())
            .await?;
        if !options.overwrite
            && database_exists(&admin, &options.database, password.as_ref()).await?
        {
            return Err(SourceError::TargetExists {
                target: options.database.clone(),
            });
        }
        let staging = staging_name();
        // --- database-level properties (fidelity): encoding and locale go into CREATE
        // DATABASE; a server that lacks them refuses with the property named.
        let create = match &options.properties {
            Some(properties) => properties.create_statement(&staging),
            None => format!(
                "CREATE DATABASE {} TEMPLATE template0",
                quote_ident(&staging)
            ),
        };
        admin.batch_execute(&create).await.map_err(|e| {
            match (&options.properties, e.as_db_error()) {
                (Some(properties), Some(db)) => properties.create_failure(db.message()),
                _ => pg_error("creating the staging database", &e, password.as_ref()),
            }
        })?;
        // --- end of database-level properties

        let mut tool = self.tool_command("pg_restore", password.as_ref())?;
        tool.args(["--exit-on-error", "--no-password"])
            .arg(format!("--dbname={}", self.conninfo(&staging)));
        if options.no_owner {
            tool.arg("--no-owner");
        }
        if options.no_privileges {
            tool.arg("--no-privileges");
        }
        let stream = match tool.spawn_restore() {
            Ok(stream) => stream,
            Err(error) => {
                drop_database(&admin, &staging).await;
                return Err(error);
            }
        };
        let target = options.database.clone();
        let overwrite = options.overwrite;
        let (no_owner, no_privileges) = (options.no_owner, options.no_privileges);
        // A failed statement gets a hint: the flags for a missing role, or how to restore the
        // rest by hand.
        let completion = {
            let target = target.clone();
            then(stream.completion, move |result| async move {
                result.map_err(|error| {
                    classify_pg_restore_failure(error, &target, no_owner, no_privileges)
                })
            })
        };
        let properties = options.properties.clone();
        let admin = std::sync::Arc::new(admin);
        let commit = {
            let admin = admin.clone();
            let staging = staging.clone();
            async move {
                // --- database-level properties (fidelity): settings, role settings, comment
                // and connection limit, set on the staging database (after pg_restore, so e.g.
                // a read-only default cannot break the restore) before it takes the target's
                // name; they are kept by the database's OID, so they follow it through RENAME.
                let applied = match &properties {
                    Some(properties) => properties.apply(&admin, &staging, no_owner).await,
                    None => Ok(()),
                };
                // --- end of database-level properties
                let swapped = match applied {
                    Ok(()) => {
                        swap_into_place(&admin, &staging, &target, overwrite, password.as_ref())
                            .await
                    }
                    Err(error) => Err(error),
                };
                if swapped.is_err() {
                    drop_database(&admin, &staging).await;
                }
                swapped
            }
        };
        let abort = async move {
            drop_database(&admin, &staging).await;
            Ok(())
        };
        Ok(RestoreStream {
            writer: stream.writer,
            completion,
            staged: Staged::new(commit, abort),
        })
    }

    /// Exact row counts of every user table in `database` (the configured one when `None`),
    /// e.g. of a drill's restored copy, keyed like the dump's counts.
    pub async fn count_rows(&self, database: Option<&str>) -> Result<ObjectCounts, SourceError> {
        let password = self.config.password.resolve()?;
        let client = self
            .connect(database.unwrap_or(&self.config.database), password.as_ref())
            .await?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| pg_error("starting a transaction", &e, password.as_ref()))?;
        let counts = count_tables(&client, password.as_ref()).await;
        let _ = client.batch_execute("COMMIT").await;
        counts
    }

    /// Whether `database` exists on the server.
    pub async fn database_exists(&self, database: &str) -> Result<bool, SourceError> {
        let password = self.config.password.resolve()?;
        let admin = self
            .connect(&self.config.maintenance_database, password.as_ref())
            .await?;
        database_exists(&admin, database, password.as_ref()).await
    }

    /// Drops `database` if it exists, disconnecting its sessions (drills clean up with this).
    pub async fn drop_database(&self, database: &str) -> Result<(), SourceError> {
        let password = self.config.password.resolve()?;
        let admin = self
            .connect(&self.config.maintenance_database, password.as_ref())
            .await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(database)
            ))
            .await
            .map_err(|e| pg_error("dropping the database", &e, password.as_ref()))
    }

    async fn connect(
        &self,
        database: &str,
        password: Option<&Secret>,
    ) -> Result<Client, SourceError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.config.host)
            .port(self.config.port)
            .user(&self.config.user)
            .dbname(database)
            .application_name("vertice-backup")
            .connect_timeout(Duration::from_secs(self.config.connect_timeout_seconds));
        if let Some(password) = password {
            config.password(password.expose());
        }
        // TLS comes with the operator's TLS settings; until then, plain TCP or a Unix socket.
        let (client, connection) =
            config
                .connect(NoTls)
                .await
                .map_err(|error| SourceError::Connect {
                    engine: Engine::Postgres,
                    message: scrub(&error_text(&error), password),
                })?;
        tokio::spawn(async move {
            // Errors surface on the client's next query; nothing to do with them here.
            let _ = connection.await;
        });
        Ok(client)
    }

    fn tool(&self, name: &str) -> PathBuf {
        find_tool(name, self.config.bin_dir.as_deref(), &postgres_bin_dirs())
    }

    /// A PostgreSQL client tool with the password in a private PGPASSFILE (never on argv,
    /// never in the environment where `ps e` shows it).
    fn tool_command(&self, name: &str, password: Option<&Secret>) -> Result<Tool, SourceError> {
        let mut tool = Tool::new(Engine::Postgres, name, &self.tool(name));
        tool.env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .env(
                "PGCONNECT_TIMEOUT",
                self.config.connect_timeout_seconds.to_string(),
            )
            .env("PGAPPNAME", "vertice-backup")
            .secret(password.cloned());
        match password {
            Some(password) => {
                let line = format!("*:*:*:*:{}\n", escape_pgpass(password.expose()));
                let file = private_temp_file("vertice-pgpass-", &line)?;
                tool.env("PGPASSFILE", file.path().as_os_str().to_owned())
                    .keep_alive(file);
            }
            // No password: make sure a ~/.pgpass of the machine is not used either. An empty
            // private file rather than /dev/null: libpq warns on every run that a password
            // file which is not a plain file is ignored, and that warning would head every
            // error message.
            None => {
                let file = private_temp_file("vertice-pgpass-", "")?;
                tool.env("PGPASSFILE", file.path().as_os_str().to_owned())
                    .keep_alive(file);
            }
        }
        Ok(tool)
    }

    /// A libpq connection string for `database`; values quoted so names with spaces, quotes
    /// or `=` stay one value (a bare `-d` argument containing `=` would be parsed as a
    /// connection string itself).
    fn conninfo(&self, database: &str) -> String {
        format!(
            "host={} port={} user={} dbname={} connect_timeout={}",
            quote_conninfo(&self.config.host),
            self.config.port,
            quote_conninfo(&self.config.user),
            quote_conninfo(database),
            self.config.connect_timeout_seconds
        )
    }
}

/// `/usr/lib/postgresql/<major>/bin`, newest major first: pg_dump must be at least as new as
/// the server, so the newest installed is the best default.
fn postgres_bin_dirs() -> Vec<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// Quotes a PostgreSQL identifier: inside double quotes, a double quote is doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a libpq connection-string value: single quotes, with `\` and `'` escaped by `\`.
fn quote_conninfo(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Escapes a password for a .pgpass line, where `:` and `\` are escaped by `\`.
fn escape_pgpass(value: &str) -> String {
    value.replace('\\', "\\\\").replace(':', "\\:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_double_their_quotes() {
        assert_eq!(quote_ident(r#"a"b; DROP"#), r#""a""b; DROP""#);
    }

    #[test]
    fn conninfo_values_are_quoted() {
        assert_eq!(quote_conninfo(r"it's\x y=1"), r"'it\'s\\x y=1'");
    }

    #[test]
    fn pgpass_escapes_colons_and_backslashes() {
        assert_eq!(escape_pgpass(r"a:b\c"), r"a\:b\\c");
    }

    #[test]
    fn staging_names_fit_postgres_identifiers() {
        assert!(staging_name().len() < 63);
    }
}
