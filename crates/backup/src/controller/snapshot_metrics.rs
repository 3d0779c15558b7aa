//! `vertice_backup_snapshot_duration_seconds{namespace,project}` (issue 8): histogram of how
//! long successful runs' managed-database snapshots took to become `available`, read from the
//! stored manifest's snapshot record when the run's final status is written. Registered with
//! the run metrics ([`super::metrics::RunMetrics`]), which add the `vertice_backup_` prefix.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The metric's name without the prefix and the unit suffix.
pub const SNAPSHOT_DURATION: &str = "snapshot_duration";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SnapshotLabels {
    namespace: String,
    project: String,
}

fn snapshot_histogram() -> Histogram {
    // 5 s … ~11 h: a small instance's first snapshot to a multi-terabyte one.
    Histogram::new(exponential_buckets(5.0, 2.0, 14))
}

/// The snapshot histogram. Cheap to clone (shared series).
#[derive(Clone)]
pub struct SnapshotMetrics {
    durations: Family<SnapshotLabels, Histogram, fn() -> Histogram>,
}

impl std::fmt::Debug for SnapshotMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotMetrics").finish_non_exhaustive()
    }
}

impl SnapshotMetrics {
    /// Registers the histogram in `registry` (the operator's prefixed registry).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            durations: Family::new_with_constructor(snapshot_histogram),
        };
        registry.register_with_unit(
            SNAPSHOT_DURATION,
            "Seconds successful runs' managed-database snapshots took to become available, by namespace and project",
            Unit::Seconds,
            metrics.durations.clone(),
        );
        metrics
    }

    /// Records one snapshot of a run of `project` in `namespace` that took `seconds`.
    pub fn snapshot_taken(&self, namespace: &str, project: &str, seconds: f64) {
        self.durations
            .get_or_create(&SnapshotLabels {
                namespace: namespace.to_owned(),
                project: project.to_owned(),
            })
            .observe(seconds);
    }
}
