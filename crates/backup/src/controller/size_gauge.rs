//! `vertice_backup_size_bytes{namespace,backup,project,environment}`: the stored bytes of the
//! newest successful run (by completion time) of each backup — its VerticeBackup, or the
//! BackupRequest itself for an inline run.
//!
//! Finished runs leave the BackupRequest cache (`finished.rs`), so the gauge keeps its own
//! small map, one entry per series: the BackupRequest controller offers every successful run
//! it sees finish or finds finished, and its start-up pass offers every run finished before.
//! A deleted VerticeBackup's series go with it ([`RunSizes::forget`]); a deleted inline run's
//! series stays until the operator restarts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::metrics::backup_label;
use super::policy_status::to_chrono;
use super::project::{environment_of, project_of};
use crate::api::BackupRequest;
use crate::api::run::RunPhase;

/// (namespace, backup, project, environment).
type Key = (String, String, String, String);
/// A series' run: its completion time and stored bytes.
type Newest = (Option<DateTime<Utc>>, i64);

/// The newest successful run's size per series; cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct RunSizes {
    newest: Arc<Mutex<BTreeMap<Key, Newest>>>,
}

impl RunSizes {
    /// A map registered as the `size_bytes` gauge of `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let sizes = Self::default();
        registry.register_collector(Box::new(sizes.clone()));
        sizes
    }

    /// Takes `request`'s stored size if it succeeded, has a size, and completed no earlier
    /// than the run its series shows now.
    pub fn observe(&self, request: &BackupRequest) {
        let Some(status) = &request.status else {
            return;
        };
        if status.phase != RunPhase::Succeeded {
            return;
        }
        let Some(size) = status.result.as_ref().and_then(|result| result.stored_size) else {
            return;
        };
        let completed = status.times.completion_time.as_ref().and_then(to_chrono);
        let key = (
            request.namespace().unwrap_or_default(),
            backup_label(request),
            project_of(request),
            environment_of(request).unwrap_or_default(),
        );
        let mut newest = self.newest.lock().unwrap_or_else(PoisonError::into_inner);
        match newest.get(&key) {
            Some((time, _)) if *time > completed => {}
            _ => {
                newest.insert(key, (completed, size));
            }
        }
    }

    /// Drops the series of the backup `backup` in `namespace` (every project and environment).
    pub fn forget(&self, namespace: &str, backup: &str) {
        self.newest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(ns, name, _, _), _| ns != namespace || name != backup);
    }

    fn samples(&self) -> Vec<(Key, i64)> {
        let newest = self.newest.lock().unwrap_or_else(PoisonError::into_inner);
        newest
            .iter()
            .map(|(key, (_, size))| (key.clone(), *size))
            .collect()
    }
}

impl Collector for RunSizes {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "size",
            "Stored bytes of the newest successful backup run, by namespace, backup, project and environment",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        for ((namespace, backup, project, environment), size) in self.samples() {
            let labels = [
                ("namespace", namespace),
                ("backup", backup),
                ("project", project),
                ("environment", environment),
            ];
            #[allow(clippy::cast_precision_loss)] // sizes below 2^53 bytes are exact
            ConstGauge::new(size as f64).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use serde_json::json;

    fn run(name: &str, backup: &str, completed: &str, size: i64, phase: &str) -> BackupRequest {
        let mut request: BackupRequest = serde_json::from_value(json!({
            "apiVersion": "backup.vertice.dev/v1alpha1",
            "kind": "BackupRequest",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"backupRef": {"name": backup}},
        }))
        .unwrap();
        request.status = serde_json::from_value(json!({
            "phase": phase,
            "completionTime": completed,
            "result": {"storedSize": size},
        }))
        .unwrap();
        request
    }

    fn scrape(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn the_newest_success_wins_whatever_the_order_and_forget_drops_the_backup() {
        let mut registry = Registry::with_prefix("vertice_backup");
        let sizes = RunSizes::register(&mut registry);
        sizes.observe(&run("a-2", "a", "2026-11-02T03:00:00Z", 200, "Succeeded"));
        // Older, offered later (a start-up pass lists in name order): ignored.
        sizes.observe(&run("a-1", "a", "2026-11-01T03:00:00Z", 100, "Succeeded"));
        // Newer but failed: ignored.
        sizes.observe(&run("a-3", "a", "2026-11-03T03:00:00Z", 300, "Failed"));
        sizes.observe(&run("b-1", "b", "2026-11-01T03:00:00Z", 7, "Succeeded"));
        let text = scrape(&registry);
        let series = |backup: &str, value: &str| {
            format!(
                r#"vertice_backup_size_bytes{{namespace="ns",backup="{backup}",project="ns",environment=""}} {value}"#
            )
        };
        assert!(text.contains(&series("a", "200")), "{text}");
        assert!(text.contains(&series("b", "7")), "{text}");
        sizes.forget("ns", "a");
        let text = scrape(&registry);
        assert!(!text.contains(r#"backup="a""#), "{text}");
        assert!(text.contains(&series("b", "7")), "{text}");
    }
}
