//! Creates and upgrades the history schema from the versioned SQL files in
//! `crates/backup/migrations/` (embedded at build time).
//!
//! Why our own ~100 lines instead of a migration crate: refinery and sqlx pull their own
//! PostgreSQL drivers or a second async stack, and what we need is small — ordered files, a
//! version table, one transaction per file and a lock. Each migration runs in its own
//! transaction that first takes a transaction-scoped advisory lock, so two replicas (or an
//! operator and a CLI) migrating at once run one after the other: the second finds the version
//! recorded and skips it. The version table keeps each file's BLAKE3 so an edited, already
//! applied file is reported instead of silently diverging.

use tokio_postgres::Client;

use super::{HistoryError, HistoryUrl, SCHEMA};

/// One versioned migration.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Its version: applied in increasing order, each exactly once.
    pub version: i32,
    /// Its file name without the version (for the version table and logs).
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

/// Every migration of this build, oldest first.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "history",
    sql: include_str!("../../migrations/0001_history.sql"),
}];

/// The advisory lock key every history migrator takes (`vhistory` in ASCII): one number shared
/// by all replicas and versions of the operator.
const MIGRATION_LOCK: i64 = 0x7668_6973_746f_7279;

/// The version table: `(version, name, checksum, applied_at)`.
fn version_table() -> String {
    format!("{}.schema_migrations", quote_ident(SCHEMA))
}

/// `identifier` quoted for PostgreSQL (doubled quotes inside).
pub fn quote_ident(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// The migration's checksum as recorded in the version table.
fn checksum(migration: &Migration) -> String {
    blake3::hash(migration.sql.as_bytes()).to_hex().to_string()
}

/// Applies every migration not yet applied; returns the versions it applied (empty when the
/// database was up to date). Errors: [`HistoryError::Query`] (the failed migration's
/// transaction is rolled back, earlier ones stay), [`HistoryError::MigrationChanged`].
pub async fn migrate(client: &mut Client, url: &HistoryUrl) -> Result<Vec<i32>, HistoryError> {
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        if apply_one(client, url, migration).await? {
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "history database migrated"
            );
            applied.push(migration.version);
        }
    }
    Ok(applied)
}

/// Applies `migration` in one transaction under the lock unless it is recorded; true if it ran.
async fn apply_one(
    client: &mut Client,
    url: &HistoryUrl,
    migration: &Migration,
) -> Result<bool, HistoryError> {
    let fail = |error: tokio_postgres::Error| HistoryError::query(&error, url);
    let transaction = client.transaction().await.map_err(fail)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(fail)?;
    // Under the lock, so concurrent first runs do not race on creating them.
    transaction
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {table} (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
            schema = quote_ident(SCHEMA),
            table = version_table(),
        ))
        .await
        .map_err(fail)?;
    let shipped = checksum(migration);
    let recorded = transaction
        .query_opt(
            &format!(
                "SELECT checksum FROM {} WHERE version = $1",
                version_table()
            ),
            &[&migration.version],
        )
        .await
        .map_err(fail)?;
    if let Some(row) = recorded {
        let applied: String = row.try_get(0).map_err(fail)?;
        transaction.commit().await.map_err(fail)?;
        if applied != shipped {
            return Err(HistoryError::MigrationChanged {
                version: migration.version,
                applied,
                shipped,
            });
        }
        return Ok(false);
    }
    transaction
        .batch_execute(migration.sql)
        .await
        .map_err(fail)?;
    transaction
        .execute(
            &format!(
                "INSERT INTO {} (version, name, checksum) VALUES ($1, $2, $3)",
                version_table()
            ),
            &[&migration.version, &migration.name, &shipped],
        )
        .await
        .map_err(fail)?;
    transaction.commit().await.map_err(fail)?;
    Ok(true)
}

/// The versions recorded in the version table, in order (empty if it does not exist).
pub async fn applied_versions(client: &Client, url: &HistoryUrl) -> Result<Vec<i32>, HistoryError> {
    let fail = |error: tokio_postgres::Error| HistoryError::query(&error, url);
    let exists = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&version_table()])
        .await
        .map_err(fail)?;
    if !exists.try_get::<_, bool>(0).map_err(fail)? {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            &format!("SELECT version FROM {} ORDER BY version", version_table()),
            &[],
        )
        .await
        .map_err(fail)?;
    rows.iter()
        .map(|row| row.try_get(0).map_err(fail))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_strict_version_order_and_touch_only_the_history_schema() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(
            versions.windows(2).all(|pair| pair[0] < pair[1]),
            "{versions:?}"
        );
        assert_eq!(versions.first(), Some(&1));
        for migration in MIGRATIONS {
            for line in migration.sql.lines() {
                let upper = line.trim_start().to_ascii_uppercase();
                if upper.starts_with("CREATE TABLE") || upper.starts_with("CREATE VIEW") {
                    assert!(line.contains("vertice_history."), "{line}");
                }
            }
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("vertice_history"), "\"vertice_history\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
