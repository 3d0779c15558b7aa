//! The object-copy counters of issue 8 (names fixed by the issue), counted from the stored
//! manifest's `bucketCopy` record when a run's final status is written — the store's word, not
//! the runner's log:
//! - `vertice_backup_objects_copied_total{namespace,backup,project,environment}` — objects
//!   whose bytes successful runs copied;
//! - `vertice_backup_objects_skipped_total{namespace,backup,project,environment}` — unchanged
//!   objects successful runs referenced from an earlier backup instead of copying them.
//!
//! Labels as the run metrics (`metrics.rs`). Every successful run adds to both, 0 for a run
//! without an object part, so each backup's series exists from its first success on and
//! `increase()` works from the start.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::project::RunIdentity;
use crate::api::backup_request::BackupResult;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CopyLabels {
    namespace: String,
    backup: String,
    project: String,
    environment: String,
}

/// The two counters. Cheap to clone (shared series).
#[derive(Clone, Debug, Default)]
pub struct ObjectMetrics {
    copied: Family<CopyLabels, Counter>,
    skipped: Family<CopyLabels, Counter>,
}

impl ObjectMetrics {
    /// Registers the counters in `registry` (the operator's `vertice_backup_` registry).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "objects_copied",
            "Objects whose bytes successful backup runs copied from their objectStore source, by namespace, backup, project and environment",
            metrics.copied.clone(),
        );
        registry.register(
            "objects_skipped",
            "Unchanged objects successful backup runs referenced from an earlier backup instead of copying, by namespace, backup, project and environment",
            metrics.skipped.clone(),
        );
        metrics
    }

    /// Counts a successful run's copy from its `result` (read from the manifest).
    pub fn run_succeeded(
        &self,
        namespace: &str,
        backup: &str,
        identity: &RunIdentity,
        result: &BackupResult,
    ) {
        let labels = CopyLabels {
            namespace: namespace.to_owned(),
            backup: backup.to_owned(),
            project: identity.project.clone(),
            environment: identity.environment_label().to_owned(),
        };
        let count = |value: Option<i64>| value.and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
        self.copied
            .get_or_create(&labels)
            .inc_by(count(result.objects_copied));
        self.skipped
            .get_or_create(&labels)
            .inc_by(count(result.objects_skipped));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_come_from_the_result_and_a_dump_only_run_adds_zero() {
        let mut registry = Registry::with_prefix("vertice_backup");
        let metrics = ObjectMetrics::register(&mut registry);
        let identity = RunIdentity {
            project: "shop".into(),
            environment: Some("prod".into()),
        };
        let copy = BackupResult {
            objects_copied: Some(7),
            objects_skipped: Some(3),
            ..BackupResult::default()
        };
        metrics.run_succeeded("ns", "docs", &identity, &copy);
        metrics.run_succeeded("ns", "docs", &identity, &copy);
        metrics.run_succeeded("ns", "db", &identity, &BackupResult::default());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .unwrap_or_else(|e| panic!("{e}"));
        let series = |name: &str, backup: &str| {
            format!(
                r#"vertice_backup_{name}_total{{namespace="ns",backup="{backup}",project="shop",environment="prod"}} "#
            )
        };
        for (name, backup, value) in [
            ("objects_copied", "docs", "14"),
            ("objects_skipped", "docs", "6"),
            ("objects_copied", "db", "0"),
            ("objects_skipped", "db", "0"),
        ] {
            let line = format!("{}{value}", series(name, backup));
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
