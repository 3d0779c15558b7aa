//! Reads runs back for `vertice-backup history`: backups and restores together, newest first.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Client;

use super::{HistoryError, HistoryUrl, SCHEMA};

/// One run as listed.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedRun {
    /// `backup` or `restore`.
    pub kind: String,
    /// The run object's UID.
    pub uid: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its project.
    pub project: String,
    /// Its environment (empty when the run had none).
    pub environment: String,
    /// `Succeeded` or `Failed`.
    pub phase: String,
    /// The backup made (or restored).
    pub backup_name: Option<String>,
    /// Bytes stored (backups) or restored (restores, dump bytes).
    pub bytes: Option<i64>,
    /// Why it failed, by kind.
    pub error_kind: Option<String>,
    /// When it finished.
    pub completed_at: Option<DateTime<Utc>>,
    /// Seconds from start to completion.
    pub duration_seconds: Option<f64>,
}

/// Which runs to list.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Only this project's runs.
    pub project: Option<String>,
    /// At most this many (newest first).
    pub limit: i64,
}

const LIST: &str = "
SELECT kind, uid, namespace, name, project, environment, phase, backup_name, bytes,
       error_kind, completed_at, duration_seconds
FROM (
    SELECT 'backup' AS kind, uid, namespace, name, project, environment, phase, backup_name,
           stored_bytes AS bytes, error_kind, completed_at, duration_seconds
    FROM vertice_history.backup_runs
    UNION ALL
    SELECT 'restore', uid, namespace, name, project, environment, phase, backup_name,
           raw_bytes, error_kind, completed_at, duration_seconds
    FROM vertice_history.restore_runs
) AS runs
WHERE $1::text IS NULL OR project = $1
ORDER BY completed_at DESC NULLS LAST, name
LIMIT $2";

/// The runs matching `query`, newest first. Errors: [`HistoryError::NotMigrated`] when the
/// database has no history schema, [`HistoryError::Query`].
pub async fn list(
    client: &Client,
    url: &HistoryUrl,
    query: &ListQuery,
) -> Result<Vec<ListedRun>, HistoryError> {
    let fail = |error: tokio_postgres::Error| HistoryError::query(&error, url);
    let migrated = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{SCHEMA}.backup_runs")],
        )
        .await
        .map_err(fail)?;
    if !migrated.try_get::<_, bool>(0).map_err(fail)? {
        return Err(HistoryError::NotMigrated);
    }
    let rows = client
        .query(LIST, &[&query.project, &query.limit.max(0)])
        .await
        .map_err(fail)?;
    rows.iter()
        .map(|row| {
            Ok(ListedRun {
                kind: row.try_get(0)?,
                uid: row.try_get(1)?,
                namespace: row.try_get(2)?,
                name: row.try_get(3)?,
                project: row.try_get(4)?,
                environment: row.try_get(5)?,
                phase: row.try_get(6)?,
                backup_name: row.try_get(7)?,
                bytes: row.try_get(8)?,
                error_kind: row.try_get(9)?,
                completed_at: row.try_get(10)?,
                duration_seconds: row.try_get(11)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(fail)
}
