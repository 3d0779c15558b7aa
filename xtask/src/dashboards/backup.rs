//! The backup operator's dashboard (`dashboards/backup.json`): how often backups run and
//! fail, how long they take, how big they are, how old the newest good backup and the newest
//! passed restore drill are, restores and failed notifications. Metric names: issue 7 §5,
//! defined in `crates/backup/src/controller/metrics.rs` and `policy_metrics.rs`.

use super::model::{Dashboard, Kind, Panel, Query, Row, Variable, query};

/// Label matchers of every per-backup series, bound to the dashboard's variables.
const SELECT: &str = r#"namespace=~"$namespace", backup=~"$backup""#;

fn panel(
    title: &'static str,
    description: &'static str,
    kind: Kind,
    unit: &'static str,
    width: u32,
    queries: Vec<Query>,
) -> Panel {
    Panel {
        title,
        description,
        kind,
        unit,
        width,
        queries,
    }
}

/// The dashboard.
pub fn dashboard() -> Dashboard {
    Dashboard {
        uid: "vertice-backup",
        title: "Vértice / Backup",
        description: "Backups, restores and restore drills of the Vértice backup operator",
        tags: vec!["vertice", "backup"],
        variables: vec![
            Variable::LabelValues {
                name: "namespace",
                display: "Namespace",
                metric: "vertice_backup_runs_total",
            },
            Variable::LabelValues {
                name: "backup",
                display: "Backup",
                metric: r#"vertice_backup_runs_total{namespace=~"$namespace"}"#,
            },
        ],
        links: vec![("Vértice / Overview", super::overview::UID)],
        rows: vec![
            runs(),
            duration_and_size(),
            freshness(),
            restores(),
            projects_and_objects(),
            snapshots(),
            history(),
        ],
    }
}

fn runs() -> Row {
    Row {
        title: "Runs",
        panels: vec![
            panel(
                "Backup runs per hour",
                "Finished backup runs per hour, by backup (the VerticeBackup, or the BackupRequest of an inline run).",
                Kind::TimeSeries,
                "short",
                12,
                vec![query(
                    format!(
                        "3600 * sum by (namespace, backup) (rate(vertice_backup_runs_total{{{SELECT}}}[$__rate_interval]))"
                    ),
                    "{{namespace}}/{{backup}}",
                )],
            ),
            panel(
                "Success vs failure",
                "Finished runs in each interval, by result. Failures page as BackupFailed.",
                Kind::TimeSeries,
                "short",
                12,
                vec![query(
                    format!(
                        "sum by (result) (increase(vertice_backup_runs_total{{{SELECT}}}[$__rate_interval]))"
                    ),
                    "{{result}}",
                )],
            ),
        ],
    }
}

fn duration_and_size() -> Row {
    let quantile = |q: &str| {
        format!(
            "histogram_quantile({q}, sum by (le, namespace, backup) (rate(vertice_backup_duration_seconds_bucket{{{SELECT}}}[$__rate_interval])))"
        )
    };
    Row {
        title: "Duration and size",
        panels: vec![
            panel(
                "Run duration p95 / p99",
                "Duration of finished runs (dump, compression, encryption and upload), 95th and 99th percentile. Empty between runs: a quantile needs runs in the interval.",
                Kind::TimeSeries,
                "s",
                8,
                vec![
                    query(quantile("0.95"), "p95 {{namespace}}/{{backup}}"),
                    query(quantile("0.99"), "p99 {{namespace}}/{{backup}}"),
                ],
            ),
            panel(
                "Mean run duration",
                "Total run time divided by runs finished in the interval.",
                Kind::TimeSeries,
                "s",
                8,
                vec![query(
                    format!(
                        "sum by (namespace, backup) (rate(vertice_backup_duration_seconds_sum{{{SELECT}}}[$__rate_interval])) / sum by (namespace, backup) (rate(vertice_backup_duration_seconds_count{{{SELECT}}}[$__rate_interval]))"
                    ),
                    "{{namespace}}/{{backup}}",
                )],
            ),
            panel(
                "Backup size",
                "Stored bytes (compressed and encrypted) of the newest successful run of each backup.",
                Kind::TimeSeries,
                "bytes",
                8,
                vec![query(
                    format!("vertice_backup_size_bytes{{{SELECT}}}"),
                    "{{namespace}}/{{backup}}",
                )],
            ),
        ],
    }
}

fn freshness() -> Row {
    Row {
        title: "Freshness",
        panels: vec![
            panel(
                "Time since last successful backup",
                "Age of the newest successful backup of each VerticeBackup.",
                Kind::Stat,
                "s",
                8,
                vec![query(
                    format!("time() - vertice_backup_last_success_timestamp_seconds{{{SELECT}}}"),
                    "{{namespace}}/{{backup}}",
                )],
            ),
            panel(
                "Backup age in schedule intervals",
                "Age of the newest successful backup divided by the schedule's interval: above 2, two slots in a row brought no good backup.",
                Kind::TimeSeries,
                "short",
                8,
                vec![query(
                    format!(
                        "(time() - vertice_backup_last_success_timestamp_seconds{{{SELECT}}}) / vertice_backup_expected_interval_seconds{{{SELECT}}}"
                    ),
                    "{{namespace}}/{{backup}}",
                )],
            ),
            panel(
                "Time since last passed restore drill",
                "Age of the newest passed restore drill (spec.verification) of each VerticeBackup; BackupVerificationStale pages when it grows too old.",
                Kind::Stat,
                "s",
                8,
                vec![query(
                    format!(
                        "time() - vertice_backup_verification_last_success_timestamp_seconds{{{SELECT}}}"
                    ),
                    "{{namespace}}/{{backup}}",
                )],
            ),
        ],
    }
}

/// Issue 8: runs by project and environment, and the object copies of runs with an
/// `objectStore` part (`object_metrics.rs`).
fn projects_and_objects() -> Row {
    Row {
        title: "Projects and object copies",
        panels: vec![
            panel(
                "Runs by project and environment",
                "Finished backup runs in each interval by projectId, environment and result.",
                Kind::TimeSeries,
                "short",
                12,
                vec![query(
                    format!(
                        "sum by (project, environment, result) (increase(vertice_backup_runs_total{{{SELECT}}}[$__rate_interval]))"
                    ),
                    "{{project}} {{environment}} {{result}}",
                )],
            ),
            panel(
                "Objects copied and skipped",
                "Objects whose bytes runs copied from their objectStore source, and unchanged objects they referenced from an earlier backup instead (incremental copies), from the stored manifests.",
                Kind::TimeSeries,
                "short",
                12,
                vec![
                    query(
                        format!(
                            "sum by (namespace, backup) (increase(vertice_backup_objects_copied_total{{{SELECT}}}[$__rate_interval]))"
                        ),
                        "copied {{namespace}}/{{backup}}",
                    ),
                    query(
                        format!(
                            "sum by (namespace, backup) (increase(vertice_backup_objects_skipped_total{{{SELECT}}}[$__rate_interval]))"
                        ),
                        "skipped {{namespace}}/{{backup}}",
                    ),
                ],
            ),
        ],
    }
}

fn restores() -> Row {
    Row {
        title: "Restores and notifications",
        panels: vec![
            panel(
                "Restores by result",
                "Finished RestoreRequests (restore drills included) in each interval, by result.",
                Kind::TimeSeries,
                "short",
                12,
                vec![query(
                    r#"sum by (namespace, result) (increase(vertice_backup_restores_total{namespace=~"$namespace"}[$__rate_interval]))"#,
                    "{{namespace}} {{result}}",
                )],
            ),
            panel(
                "Failed notifications and post hooks",
                "Notifications (and post hooks, channel hook:<name>) that failed after their retries.",
                Kind::TimeSeries,
                "short",
                12,
                vec![query(
                    format!(
                        "sum by (namespace, backup, channel) (increase(vertice_backup_notification_failures_total{{{SELECT}}}[$__rate_interval]))"
                    ),
                    "{{namespace}}/{{backup}} {{channel}}",
                )],
            ),
        ],
    }
}

/// The history database's archival (issue 8 §4, `controller/history_metrics.rs`).
fn history() -> Row {
    Row {
        title: "History database",
        panels: vec![panel(
            "History archival lag",
            "Age of the oldest finished backup or restore run not yet recorded in the history database (--history-database-url); 0 when caught up or when history is off. It grows while the history database is unreachable; runs are never held up by it.",
            Kind::TimeSeries,
            "s",
            24,
            vec![query("max(vertice_backup_history_lag_seconds)", "lag")],
        )],
    }
}

/// Managed-database snapshots (issue 8 §2): `vertice_backup_snapshot_duration_seconds`,
/// defined in `crates/backup/src/controller/snapshot_metrics.rs`.
fn snapshots() -> Row {
    Row {
        title: "Managed-database snapshots",
        panels: vec![
            panel(
                "Snapshot duration (p95)",
                "How long successful runs' RDS snapshots took to become available, by project (95th percentile).",
                Kind::TimeSeries,
                "s",
                12,
                vec![query(
                    r#"histogram_quantile(0.95, sum by (le, namespace, project) (rate(vertice_backup_snapshot_duration_seconds_bucket{namespace=~"$namespace"}[$__rate_interval])))"#,
                    "{{namespace}}/{{project}}",
                )],
            ),
            panel(
                "Snapshots by project",
                "Successful runs with a managed-database snapshot in each interval, by project.",
                Kind::TimeSeries,
                "short",
                12,
                vec![query(
                    r#"sum by (namespace, project) (increase(vertice_backup_snapshot_duration_seconds_count{namespace=~"$namespace"}[$__rate_interval]))"#,
                    "{{namespace}}/{{project}}",
                )],
            ),
        ],
    }
}
