//! Writes run rows: one transaction per run that upserts the run by UID and recomputes its
//! project's totals from the run tables, so writing a run twice (a retry, a restart, a second
//! replica) leaves exactly the rows and totals of writing it once.

use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::record::{BackupRun, RestoreRun, RunCommon, RunRecord};
use super::{HistoryError, HistoryUrl};

/// The advisory lock class of per-project totals (the second key is the project's hash), so
/// two writers of one project recompute its totals one after the other.
const TOTALS_LOCK_CLASS: i32 = 0x7668_6973; // "vhis"

/// The columns both run tables have, in the order of [`common_params`] ($1…$14); `uid` first,
/// the key a rewrite updates by.
const COMMON_COLUMNS: [&str; 14] = [
    "uid",
    "namespace",
    "name",
    "project",
    "environment",
    "phase",
    "reason",
    "message",
    "error_kind",
    "error_message",
    "attempts",
    "started_at",
    "completed_at",
    "duration_seconds",
];

/// `backup_runs`' own columns, in the order of [`backup_params`].
const BACKUP_COLUMNS: [&str; 5] = [
    "policy",
    "backup_name",
    "location",
    "raw_bytes",
    "stored_bytes",
];

/// `restore_runs`' own columns, in the order of [`restore_params`].
const RESTORE_COLUMNS: [&str; 4] = ["backup_name", "target", "raw_bytes", "verification"];

/// The upsert of one row of `table` with [`COMMON_COLUMNS`] and then `own` columns as $1…$n:
/// insert, or update every column of the row with the same `uid` and stamp `recorded_at`.
/// Table and column names are this module's constants, never input.
fn upsert_statement(table: &str, own: &[&str]) -> String {
    let columns: Vec<&str> = COMMON_COLUMNS.iter().chain(own).copied().collect();
    let placeholders: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
    let updates: Vec<String> = columns[1..]
        .iter()
        .map(|column| format!("{column} = EXCLUDED.{column}"))
        .collect();
    format!(
        "INSERT INTO {table} AS runs ({}) VALUES ({}) ON CONFLICT (uid) DO UPDATE SET {}, recorded_at = now()",
        columns.join(", "),
        placeholders.join(", "),
        updates.join(", ")
    )
}

/// Recomputes one (project, environment)'s totals from the run tables ($1 project,
/// $2 environment); deletes the line when neither table has a run of it any more.
const RECOMPUTE_TOTALS: &str = "
WITH b AS (
    SELECT count(*) FILTER (WHERE phase = 'Succeeded') AS ok,
           count(*) FILTER (WHERE phase = 'Failed') AS failed,
           coalesce(sum(stored_bytes) FILTER (WHERE phase = 'Succeeded'), 0)::bigint AS bytes,
           max(completed_at) FILTER (WHERE phase = 'Succeeded') AS last_ok,
           max(completed_at) FILTER (WHERE phase = 'Failed') AS last_failed
    FROM vertice_history.backup_runs WHERE project = $1 AND environment = $2
), r AS (
    SELECT count(*) FILTER (WHERE phase = 'Succeeded') AS ok,
           count(*) FILTER (WHERE phase = 'Failed') AS failed,
           max(completed_at) AS last
    FROM vertice_history.restore_runs WHERE project = $1 AND environment = $2
)
INSERT INTO vertice_history.project_totals
    (project, environment, backups_succeeded, backups_failed, restores_succeeded,
     restores_failed, stored_bytes_total, last_backup_success_at, last_backup_failure_at,
     last_restore_at, updated_at)
SELECT $1, $2, b.ok, b.failed, r.ok, r.failed, b.bytes, b.last_ok, b.last_failed, r.last, now()
FROM b, r
ON CONFLICT (project, environment) DO UPDATE SET
    backups_succeeded = EXCLUDED.backups_succeeded, backups_failed = EXCLUDED.backups_failed,
    restores_succeeded = EXCLUDED.restores_succeeded,
    restores_failed = EXCLUDED.restores_failed,
    stored_bytes_total = EXCLUDED.stored_bytes_total,
    last_backup_success_at = EXCLUDED.last_backup_success_at,
    last_backup_failure_at = EXCLUDED.last_backup_failure_at,
    last_restore_at = EXCLUDED.last_restore_at, updated_at = now()";

/// Writes `record` (insert, or update the row of the same UID) and its project's totals in one
/// transaction. A run that moved to another project or environment (its labels changed) has
/// its old project's totals recomputed too. Errors: [`HistoryError::Query`].
pub async fn upsert(
    client: &mut Client,
    url: &HistoryUrl,
    record: &RunRecord,
) -> Result<(), HistoryError> {
    let fail = |error: tokio_postgres::Error| HistoryError::query(&error, url);
    let common = record.common();
    let transaction = client.transaction().await.map_err(fail)?;
    let (table, own, params) = match record {
        RunRecord::Backup(run) => (
            "vertice_history.backup_runs",
            &BACKUP_COLUMNS[..],
            backup_params(run),
        ),
        RunRecord::Restore(run) => (
            "vertice_history.restore_runs",
            &RESTORE_COLUMNS[..],
            restore_params(run),
        ),
    };
    // The row's project before this write: a run whose labels moved it to another project or
    // environment leaves the old one's totals to recompute too.
    let previous = transaction
        .query_opt(
            &format!("SELECT project, environment FROM {table} WHERE uid = $1 FOR UPDATE"),
            &[&common.uid],
        )
        .await
        .map_err(fail)?;
    transaction
        .execute(&upsert_statement(table, own), &params)
        .await
        .map_err(fail)?;
    let mut projects = vec![(common.project.clone(), common.environment.clone())];
    if let Some(row) = previous {
        let old: (String, String) = (row.try_get(0).map_err(fail)?, row.try_get(1).map_err(fail)?);
        if !projects.contains(&old) {
            projects.push(old);
        }
    }
    projects.sort();
    for (project, environment) in &projects {
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&TOTALS_LOCK_CLASS, project],
            )
            .await
            .map_err(fail)?;
        transaction
            .execute(RECOMPUTE_TOTALS, &[project, environment])
            .await
            .map_err(fail)?;
    }
    transaction.commit().await.map_err(fail)
}

/// The parameters $1…$14 both run tables share ([`COMMON_COLUMNS`]).
fn common_params(common: &RunCommon) -> Vec<&(dyn ToSql + Sync)> {
    vec![
        &common.uid,
        &common.namespace,
        &common.name,
        &common.project,
        &common.environment,
        &common.phase,
        &common.reason,
        &common.message,
        &common.error_kind,
        &common.error_message,
        &common.attempts,
        &common.started_at,
        &common.completed_at,
        &common.duration_seconds,
    ]
}

fn backup_params(run: &BackupRun) -> Vec<&(dyn ToSql + Sync)> {
    let mut params = common_params(&run.common);
    params.extend([
        &run.policy as &(dyn ToSql + Sync),
        &run.backup_name,
        &run.location,
        &run.raw_bytes,
        &run.stored_bytes,
    ]);
    params
}

fn restore_params(run: &RestoreRun) -> Vec<&(dyn ToSql + Sync)> {
    let mut params = common_params(&run.common);
    params.extend([
        &run.backup_name as &(dyn ToSql + Sync),
        &run.target,
        &run.raw_bytes,
        &run.verification,
    ]);
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_upsert_binds_every_column_once_and_updates_all_but_the_key() {
        for (own, params) in [(&BACKUP_COLUMNS[..], 19), (&RESTORE_COLUMNS[..], 18)] {
            let sql = upsert_statement("vertice_history.t", own);
            assert!(sql.contains(&format!("${params})")), "{sql}");
            assert!(!sql.contains(&format!("${}", params + 1)), "{sql}");
            assert!(!sql.contains("uid = EXCLUDED.uid"), "{sql}");
            for column in COMMON_COLUMNS[1..].iter().chain(own) {
                assert!(
                    sql.contains(&format!("{column} = EXCLUDED.{column}")),
                    "{sql}"
                );
            }
        }
    }
}
