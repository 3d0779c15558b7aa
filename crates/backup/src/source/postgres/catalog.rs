//! Queries against PostgreSQL's catalog (row counts, lookups) and their errors, with the
//! password masked in every message.

use super::*;

/// Counts the rows of every table whose data pg_dump dumps: ordinary tables (partitions
/// included; partitioned parents hold no rows of their own) outside the system schemas and not
/// owned by an extension. Keyed by schema, then table, as the catalog spells them.
pub(super) async fn count_tables(
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

pub(super) async fn query_string(
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

pub(super) async fn database_exists(
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

pub(super) fn pg_error(
    what: &str,
    error: &tokio_postgres::Error,
    password: Option<&Secret>,
) -> SourceError {
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
pub(super) fn error_text(error: &tokio_postgres::Error) -> String {
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
