//! The overview dashboard (`dashboards/overview.json`): one place for every Vértice operator —
//! up, reconcile rate and errors, reconcile latency, objects by Ready, memory and CPU. The
//! reconcile metrics are core's (`crates/core/src/metrics.rs`), the same names in every
//! operator, so the panels need no change per operator: an operator joins the overview by one
//! entry in [`OPERATORS`] (its scrape job, offered by the `job` variable, and a link to its
//! own dashboard).

use super::model::{Dashboard, Kind, Panel, Row, Variable, query};

/// The overview's stable uid.
pub const UID: &str = "vertice-overview";

/// One operator as the overview knows it.
pub struct Operator {
    /// The Prometheus `job` label of its scrape target: the chart's metrics Service name
    /// (a ServiceMonitor names the job after the Service).
    pub job: &'static str,
    /// Its own dashboard: title and uid.
    pub dashboard: (&'static str, &'static str),
}

/// Every operator on the overview. A new operator adds one entry here.
pub const OPERATORS: &[Operator] = &[Operator {
    job: "vertice-backup",
    dashboard: ("Vértice / Backup", "vertice-backup"),
}];

const JOB: &str = r#"job=~"$job""#;

fn panel(
    title: &'static str,
    description: &'static str,
    kind: Kind,
    unit: &'static str,
    width: u32,
    expr: String,
    legend: &'static str,
) -> Panel {
    Panel {
        title,
        description,
        kind,
        unit,
        width,
        queries: vec![query(expr, legend)],
    }
}

/// The dashboard.
pub fn dashboard() -> Dashboard {
    Dashboard {
        uid: UID,
        title: "Vértice / Overview",
        description: "Every Vértice operator: up, reconciles, errors, latency, objects, memory and CPU",
        tags: vec!["vertice"],
        variables: vec![Variable::Custom {
            name: "job",
            display: "Operator",
            values: OPERATORS.iter().map(|o| o.job.to_owned()).collect(),
        }],
        links: OPERATORS.iter().map(|o| o.dashboard).collect(),
        rows: vec![health(), reconciles(), resources()],
    }
}

fn health() -> Row {
    Row {
        title: "Operators",
        panels: vec![
            panel(
                "Operators up",
                "Scrape targets of each operator that answer (1 per healthy replica; only the leader reconciles).",
                Kind::Stat,
                "short",
                8,
                format!("sum by (job) (up{{{JOB}}})"),
                "{{job}}",
            ),
            panel(
                "Objects by Ready",
                "Objects each controller watches, by the status of their Ready condition.",
                Kind::TimeSeries,
                "short",
                16,
                format!("sum by (job, controller, ready) (vertice_resources{{{JOB}}})"),
                "{{controller}} Ready={{ready}}",
            ),
        ],
    }
}

fn reconciles() -> Row {
    Row {
        title: "Reconciles",
        panels: vec![
            panel(
                "Reconcile rate",
                "Finished reconciles per second by controller and result (success, error, waiting, invalid).",
                Kind::TimeSeries,
                "ops",
                8,
                format!(
                    "sum by (job, controller, result) (rate(vertice_reconcile_total{{{JOB}}}[$__rate_interval]))"
                ),
                "{{controller}} {{result}}",
            ),
            panel(
                "Reconcile errors by reason",
                "Failed reconciles per second by controller and error reason.",
                Kind::TimeSeries,
                "ops",
                8,
                format!(
                    "sum by (job, controller, reason) (rate(vertice_reconcile_errors_total{{{JOB}}}[$__rate_interval]))"
                ),
                "{{controller}} {{reason}}",
            ),
            panel(
                "Reconcile duration p99",
                "99th percentile of one reconcile's duration, by controller.",
                Kind::TimeSeries,
                "s",
                8,
                format!(
                    "histogram_quantile(0.99, sum by (le, job, controller) (rate(vertice_reconcile_duration_seconds_bucket{{{JOB}}}[$__rate_interval])))"
                ),
                "{{controller}}",
            ),
        ],
    }
}

fn resources() -> Row {
    Row {
        title: "Resources",
        panels: vec![
            panel(
                "Memory (resident)",
                "Resident memory of each operator process; OperatorHighMemory pages near the limit.",
                Kind::TimeSeries,
                "bytes",
                12,
                format!("process_resident_memory_bytes{{{JOB}}}"),
                "{{job}} {{instance}}",
            ),
            panel(
                "CPU",
                "CPU time per second (cores) of each operator process.",
                Kind::TimeSeries,
                "short",
                12,
                format!("rate(process_cpu_seconds_total{{{JOB}}}[$__rate_interval])"),
                "{{job}} {{instance}}",
            ),
            panel(
                "Uptime",
                "Time since each operator process started; a drop is a restart (OperatorPodRestarting).",
                Kind::TimeSeries,
                "s",
                12,
                format!("time() - process_start_time_seconds{{{JOB}}}"),
                "{{job}} {{instance}}",
            ),
            panel(
                "Open file descriptors",
                "File descriptors (sockets to the API server and databases included) each operator process holds.",
                Kind::TimeSeries,
                "short",
                12,
                format!("process_open_fds{{{JOB}}}"),
                "{{job}} {{instance}}",
            ),
        ],
    }
}
