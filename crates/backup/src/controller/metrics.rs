//! The backup operator's run metrics (names fixed by issue 7 §5; alerts and dashboards use
//! them). Registered on [`Operator::registry`](vertice_core::Operator::registry), which adds the
//! prefix `vertice_backup_`; a counter's `_total` suffix is added by prometheus-client. So:
//! - `vertice_backup_runs_total{namespace,backup,project,environment,result}` — finished backup
//!   runs; `backup` is the VerticeBackup's name, or the BackupRequest's for an inline run;
//!   `project` and `environment` are the run's (issue 8 §3, `project.rs`; `environment` is
//!   empty when the run has none); `result` is `success` or `failure`. Counted once per run,
//!   when its final status is written;
//! - `vertice_backup_duration_seconds{namespace,backup,project,environment}` — histogram of
//!   finished runs' durations;
//! - `vertice_backup_size_bytes{namespace,backup,project,environment}` — stored bytes of the
//!   newest successful run (`size_gauge.rs`);
//! - `vertice_backup_restores_total{namespace,result}` — finished restores;
//! - `vertice_backup_notification_failures_total{namespace,backup,channel}` — notifications
//!   (and post hooks, channel `hook:<name>`) that failed after their retries.
//!
//! The VerticeBackup gauges (last success, expected interval, verification) live in
//! `policy_metrics.rs`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::object_metrics::ObjectMetrics;
use super::project::RunIdentity;
use crate::api::BackupRequest;

/// `result` label value of a successful run.
pub const SUCCESS: &str = "success";
/// `result` label value of a failed run.
pub const FAILURE: &str = "failure";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    namespace: String,
    backup: String,
    project: String,
    environment: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackupLabels {
    namespace: String,
    backup: String,
    project: String,
    environment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RestoreLabels {
    namespace: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    namespace: String,
    backup: String,
    channel: String,
}

fn duration_histogram() -> Histogram {
    // 1 s … ~9 h: a small database's dump to a large one's.
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// The run metrics. Cheap to clone (shared series).
#[derive(Clone)]
pub struct RunMetrics {
    runs: Family<RunLabels, Counter>,
    duration: Family<BackupLabels, Histogram, fn() -> Histogram>,
    restores: Family<RestoreLabels, Counter>,
    notification_failures: Family<NotificationLabels, Counter>,
    /// The object-copy counters (`object_metrics.rs`).
    pub objects: ObjectMetrics,
    /// `vertice_backup_snapshot_duration_seconds` (issue 8, its own file).
    pub snapshots: super::snapshot_metrics::SnapshotMetrics,
    /// `vertice_backup_size_bytes` (its own file).
    pub sizes: super::size_gauge::RunSizes,
}

impl std::fmt::Debug for RunMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunMetrics").finish_non_exhaustive()
    }
}

impl RunMetrics {
    /// Registers the metrics in `registry` (the operator's prefixed registry).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            runs: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            restores: Family::default(),
            notification_failures: Family::default(),
            objects: ObjectMetrics::register(registry),
            snapshots: super::snapshot_metrics::SnapshotMetrics::register(registry),
            sizes: super::size_gauge::RunSizes::register(registry),
        };
        registry.register(
            "runs",
            "Finished backup runs by namespace, backup (VerticeBackup, or BackupRequest for inline runs), project, environment and result",
            metrics.runs.clone(),
        );
        registry.register_with_unit(
            "duration",
            "Duration of finished backup runs",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register(
            "restores",
            "Finished restores by namespace and result",
            metrics.restores.clone(),
        );
        registry.register(
            "notification_failures",
            "Notifications and post hooks that failed after their retries",
            metrics.notification_failures.clone(),
        );
        metrics
    }

    /// Counts one finished backup run of `identity`'s project and environment.
    pub fn run_finished(
        &self,
        namespace: &str,
        backup: &str,
        identity: &RunIdentity,
        success: bool,
        seconds: f64,
    ) {
        let result = if success { SUCCESS } else { FAILURE };
        self.runs
            .get_or_create(&RunLabels {
                namespace: namespace.to_owned(),
                backup: backup.to_owned(),
                project: identity.project.clone(),
                environment: identity.environment_label().to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.duration
            .get_or_create(&BackupLabels {
                namespace: namespace.to_owned(),
                backup: backup.to_owned(),
                project: identity.project.clone(),
                environment: identity.environment_label().to_owned(),
            })
            .observe(seconds.max(0.0));
    }

    /// Counts one finished restore (for the RestoreRequest controller).
    pub fn restore_finished(&self, namespace: &str, success: bool) {
        let result = if success { SUCCESS } else { FAILURE };
        self.restores
            .get_or_create(&RestoreLabels {
                namespace: namespace.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts one notification (or post hook) that failed.
    pub fn notification_failed(&self, namespace: &str, backup: &str, channel: &str) {
        self.notification_failures
            .get_or_create(&NotificationLabels {
                namespace: namespace.to_owned(),
                backup: backup.to_owned(),
                channel: channel.to_owned(),
            })
            .inc();
    }
}

/// The `backup` label of a run: its VerticeBackup, else its own name.
pub fn backup_label(request: &BackupRequest) -> String {
    request
        .spec
        .backup_ref
        .as_ref()
        .map(|reference| reference.name.clone())
        .or_else(|| request.metadata.name.clone())
        .unwrap_or_default()
}
