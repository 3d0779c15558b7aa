//! PostgreSQL: `pg_dump -Fc -Z0` streamed from stdout, `pg_restore` from stdin, optional
//! globals (roles, tablespaces) with `pg_dumpall --globals-only`.
//!
//! Row counts consistent with the dump: a REPEATABLE READ transaction (over `tokio-postgres`)
//! exports its snapshot, `pg_dump --snapshot=<id>` imports it, and the counts run in that same
//! transaction — so they see exactly the rows the dump holds, even under concurrent writes. The
//! counts run concurrently with the dump (they are awaited separately) so they add no latency.
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

        // The exporting transaction must stay open until pg_dump has imported the snapshot;
        // the counting task holds it, and pg_dump's completion also waits for that task, so
        // the transaction lives at least as long as the dump needs it.
        let (counts_tx, counts_rx) = tokio::sync::oneshot::channel();
        let counting_password = password.clone();
        let counting = tokio::spawn(async move {
            let counts = count_tables(&client, counting_password.as_ref()).await;
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
                reader: stream.reader,
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

/// Counts the rows of every table whose data pg_dump dumps: ordinary tables (partitions
/// included; partitioned parents hold no rows of their own) outside the system schemas and not
/// owned by an extension. Keyed by schema, then table, as the catalog spells them.
async fn count_tables(
    client: &Client,
    password: Option<&Secret>,
) -> Result<ObjectCounts, SourceError> {
    let tables = client
        .query(
            "SELECT n.nspname::text, c.relname::text \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_toast%' \
               AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                               WHERE d.classid = 'pg_catalog.pg_class'::regclass \
                                 AND d.objid = c.oid AND d.deptype = 'e') \
             ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|e| pg_error("listing tables", &e, password))?;
    let mut counts: TableRows = BTreeMap::new();
    for row in tables {
        let schema: String = row
            .try_get(0)
            .map_err(|e| pg_error("listing tables", &e, password))?;
        let table: String = row
            .try_get(1)
            .map_err(|e| pg_error("listing tables", &e, password))?;
        let sql = format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(&schema),
            quote_ident(&table)
        );
        let row = client
            .query_one(&sql, &[])
            .await
            .map_err(|e| pg_error("counting rows", &e, password))?;
        let count: i64 = row
            .try_get(0)
            .map_err(|e| pg_error("counting rows", &e, password))?;
        counts
            .entry(schema)
            .or_default()
            .insert(table, u64::try_from(count).unwrap_or(0));
    }
    Ok(ObjectCounts::Rows(counts))
}

async fn query_string(
    client: &Client,
    sql: &str,
    password: Option<&Secret>,
) -> Result<String, SourceError> {
    let row = client
        .query_one(sql, &[])
        .await
        .map_err(|e| pg_error(sql, &e, password))?;
    row.try_get(0).map_err(|e| pg_error(sql, &e, password))
}

async fn database_exists(
    admin: &Client,
    database: &str,
    password: Option<&Secret>,
) -> Result<bool, SourceError> {
    let rows = admin
        .query(
            "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .map_err(|e| pg_error("looking up the database", &e, password))?;
    Ok(!rows.is_empty())
}

/// Renames the restored staging database to the target. An existing target (with
/// `overwrite`) is first renamed aside, and dropped only once the staging database carries the
/// target's name: at every instant one of the two names holds a complete database, and a
/// failed rename puts the old one back. The existence check is repeated: the target may have
/// appeared meanwhile.
async fn swap_into_place(
    admin: &Client,
    staging: &str,
    target: &str,
    overwrite: bool,
    password: Option<&Secret>,
) -> Result<(), SourceError> {
    if !database_exists(admin, target, password).await? {
        return rename_database(admin, staging, target, password).await;
    }
    if !overwrite {
        return Err(SourceError::TargetExists {
            target: target.to_owned(),
        });
    }
    let aside = super::identifier::generated_name(
        Engine::Postgres,
        "vertice_old",
        &format!("_{}", unique_suffix()),
    );
    rename_database(admin, target, &aside, password).await?;
    if let Err(error) = rename_database(admin, staging, target, password).await {
        if let Err(back) = rename_database(admin, &aside, target, password).await {
            return Err(SourceError::Other(format!(
                "{error}; the previous database could not be renamed back ({back}): it is \
                 kept as {aside:?}"
            )));
        }
        return Err(error);
    }
    if let Err(error) = admin
        .batch_execute(&format!(
            "DROP DATABASE {} WITH (FORCE)",
            quote_ident(&aside)
        ))
        .await
    {
        // The restore is in place; the old copy is only a leftover to report.
        tracing::warn!(
            database = %aside,
            error = %scrub(&error_text(&error), password),
            "could not drop the database the restore replaced"
        );
    }
    Ok(())
}

/// `ALTER DATABASE … RENAME`, after ending the sessions connected to `from` (a database in
/// use cannot be renamed). A session that connects in between makes it fail with
/// `object_in_use`; it is tried a few times.
async fn rename_database(
    admin: &Client,
    from: &str,
    to: &str,
    password: Option<&Secret>,
) -> Result<(), SourceError> {
    let mut attempt = 0;
    loop {
        admin
            .query(
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()",
                &[&from],
            )
            .await
            .map_err(|e| {
                pg_error(
                    "ending the sessions of the database to rename",
                    &e,
                    password,
                )
            })?;
        let renamed = admin
            .batch_execute(&format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(from),
                quote_ident(to)
            ))
            .await;
        match renamed {
            Ok(()) => return Ok(()),
            Err(error)
                if attempt < 5
                    && error.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(error) => {
                return Err(pg_error(
                    &format!("renaming database {from:?} to {to:?}"),
                    &error,
                    password,
                ));
            }
        }
    }
}

/// Best-effort cleanup of a staging database after a failure (the failure is what we report).
async fn drop_database(admin: &Client, database: &str) {
    let _ = admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(database)
        ))
        .await;
}

/// A staging database name that no user database has: lowercase, unique per process and
/// moment, and within PostgreSQL's 63 bytes.
fn staging_name() -> String {
    super::identifier::generated_name(
        Engine::Postgres,
        "vertice_restore",
        &format!("_{}", unique_suffix()),
    )
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

fn pg_error(what: &str, error: &tokio_postgres::Error, password: Option<&Secret>) -> SourceError {
    let message = scrub(&format!("{what}: {}", error_text(error)), password);
    if error.is_closed() || error.as_db_error().is_none() && error.code().is_none() {
        // Not an SQL error: the connection broke.
        SourceError::Connect {
            engine: Engine::Postgres,
            message,
        }
    } else {
        SourceError::Other(message)
    }
}

/// The error with its causes: tokio-postgres' Display alone often says just "db error".
fn error_text(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
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
