//! The reconcile metrics every operator exports, defined once here so alerts and dashboards can
//! rely on the same names for all four operators.
//!
//! - `vertice_reconcile_total{controller, result}` — finished reconciles; `result` is `success`,
//!   `error` (transient), `waiting` (a dependency is missing), `invalid` (the spec is wrong) or
//!   `behind` (skipped until the cache holds the latest version: see
//!   [`ControllerBuilder::latest_only`](crate::ControllerBuilder::latest_only));
//! - `vertice_reconcile_errors_total{controller, reason}` — failed reconciles by error reason;
//! - `vertice_reconcile_duration_seconds{controller}` — histogram of reconcile durations;
//! - `vertice_resources{controller, ready}` — objects in the controller's cache by the status of
//!   their `Ready` condition (`True`, `False`, `Unknown`), counted at scrape time from the cache,
//!   so deleted objects can never leave a stale series behind.
//!
//! Labels are bounded: controller names and error reasons come from code, never from objects.
//! The names mirror controller-runtime's `controller_runtime_reconcile_*`, so users of Go
//! operators recognise them.
//!
//! Per-object series (`vertice_backup_last_success_timestamp_seconds{namespace,backup}`) do
//! carry object names; they come only from [`CacheGauges`], computed at scrape time from a
//! controller's cache ([`ControllerBuilder::cache_gauge`](crate::ControllerBuilder::cache_gauge)),
//! so the series of a deleted object disappears with it and the label set stays as large as the
//! set of live objects.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        MetricType,
        counter::Counter,
        family::Family,
        gauge::ConstGauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

/// Prefix of every metric defined by the core runtime.
pub const PREFIX: &str = "vertice";

/// `result` label value of a successful reconcile.
pub const RESULT_SUCCESS: &str = "success";
/// `result` label value of a reconcile skipped because the cache was behind the API server.
pub const RESULT_BEHIND: &str = "behind";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    controller: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

fn duration_histogram() -> Histogram {
    // 10 ms … ~82 s: covers a cheap status-only pass as well as a slow external call.
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

/// The shared reconcile metrics. Cheap to clone (the families are reference-counted).
#[derive(Clone)]
pub struct ReconcileMetrics {
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ReasonLabels, Counter>,
    duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
}

impl ReconcileMetrics {
    /// Creates the metrics and registers them under the `vertice_` prefix in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
        };
        let registry = registry.sub_registry_with_prefix(PREFIX);
        registry.register(
            "reconcile",
            "Reconciles finished, by controller and result (success, error, waiting, invalid)",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by controller and error reason",
            metrics.errors.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Time one reconcile took, by controller",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        metrics
    }

    /// Starts timing one reconcile of `controller`; the duration is recorded when the guard drops,
    /// so early returns and errors are measured too.
    pub fn start(&self, controller: &str) -> ReconcileTimer {
        ReconcileTimer {
            histogram: self
                .duration
                .get_or_create(&ControllerLabels {
                    controller: controller.to_owned(),
                })
                .clone(),
            started: Instant::now(),
        }
    }

    /// Counts one finished reconcile with `result` (see the module docs for the values).
    pub fn record_result(&self, controller: &str, result: &str) {
        self.reconciles
            .get_or_create(&ResultLabels {
                controller: controller.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts one failed reconcile with the error's `reason`.
    pub fn record_error(&self, controller: &str, reason: &str) {
        self.errors
            .get_or_create(&ReasonLabels {
                controller: controller.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    controller: String,
    ready: String,
}

/// Counts the objects of one controller by `Ready` status (`True`/`False`/`Unknown` → count).
pub type ReadyCounts = Box<dyn Fn() -> BTreeMap<&'static str, i64> + Send + Sync>;

/// The `vertice_resources` gauge: computed on every scrape from the controllers' caches.
#[derive(Clone, Default)]
pub struct ResourceGauges {
    sources: Arc<Mutex<Vec<(String, ReadyCounts)>>>,
}

impl std::fmt::Debug for ResourceGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceGauges").finish_non_exhaustive()
    }
}

impl ResourceGauges {
    /// Registers the gauge (as `vertice_resources`) in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let gauges = Self::default();
        registry.register_collector(Box::new(gauges.clone()));
        gauges
    }

    /// Adds the counts of `controller`, read on every scrape.
    pub fn add(&self, controller: &str, counts: ReadyCounts) {
        self.lock().push((controller.to_owned(), counts));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, ReadyCounts)>> {
        // Only pushes happen under the lock; a poisoned list is still a valid list.
        self.sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Collector for ResourceGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sources = self.lock();
        let mut family = encoder.encode_descriptor(
            RESOURCES_NAME,
            "Objects in the controller's cache by the status of their Ready condition",
            None,
            MetricType::Gauge,
        )?;
        for (controller, counts) in sources.iter() {
            let mut counts = counts();
            // Always export all three, so a status dropping to zero shows as 0, not as a gap.
            for ready in ["True", "False", "Unknown"] {
                counts.entry(ready).or_insert(0);
            }
            for (ready, count) in counts {
                let labels = ResourceLabels {
                    controller: controller.clone(),
                    ready: ready.to_owned(),
                };
                ConstGauge::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

const RESOURCES_NAME: &str = "vertice_resources";

/// The labels of one series of a cache gauge: `(name, value)` pairs, names from code, values
/// from the object (e.g. `[("namespace", ns), ("backup", name)]`).
pub type GaugeLabels = Vec<(&'static str, String)>;

/// Computes every series of one cache gauge from one controller's cache.
pub type GaugeSamples = Box<dyn Fn() -> Vec<(GaugeLabels, f64)> + Send + Sync>;

struct CacheGauge {
    help: String,
    sources: Vec<GaugeSamples>,
}

/// Gauges whose series are computed on every scrape from the controllers' caches. Registered
/// once per operator under its prefix; the controllers add their sources when they start.
#[derive(Clone, Default)]
pub struct CacheGauges {
    gauges: Arc<Mutex<BTreeMap<String, CacheGauge>>>,
}

impl std::fmt::Debug for CacheGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheGauges").finish_non_exhaustive()
    }
}

impl CacheGauges {
    /// Registers the collector in `registry`; gauge names get the registry's prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let gauges = Self::default();
        registry.register_collector(Box::new(gauges.clone()));
        gauges
    }

    /// Adds `samples` to the gauge `name` (created with `help` if new; sources of the same name
    /// are exported as one family).
    pub fn add(&self, name: &str, help: &str, samples: GaugeSamples) {
        self.lock()
            .entry(name.to_owned())
            .or_insert_with(|| CacheGauge {
                help: help.to_owned(),
                sources: Vec::new(),
            })
            .sources
            .push(samples);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, CacheGauge>> {
        // Only inserts happen under the lock; a poisoned map is still a valid map.
        self.gauges
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Collector for CacheGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauges = self.lock();
        for (name, gauge) in gauges.iter() {
            let mut family =
                encoder.encode_descriptor(name, &gauge.help, None, MetricType::Gauge)?;
            for source in &gauge.sources {
                for (labels, value) in source() {
                    ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

/// Records the reconcile duration when dropped.
pub struct ReconcileTimer {
    histogram: Histogram,
    started: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

/// The metric-name prefix an operator's own metrics get: `vertice_<operator>`, with `-` turned
/// into `_` because Prometheus names allow no dashes (`db-provision` → `vertice_db_provision`).
pub fn operator_prefix(operator: &str) -> String {
    format!("{PREFIX}_{}", operator.replace('-', "_"))
}

/// The registry as OpenMetrics text, as served on `/metrics`.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_the_shared_names() -> Result<(), std::fmt::Error> {
        let mut registry = Registry::default();
        let metrics = ReconcileMetrics::register(&mut registry);
        metrics.record_result("sample", RESULT_SUCCESS);
        metrics.record_error("sample", "InvalidSpec");
        drop(metrics.start("sample"));
        let text = encode(&registry)?;
        assert!(
            text.contains(r#"vertice_reconcile_total{controller="sample",result="success"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"vertice_reconcile_errors_total{controller="sample",reason="InvalidSpec"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"vertice_reconcile_duration_seconds_count{controller="sample"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        Ok(())
    }

    #[test]
    fn resources_gauge_counts_by_ready_status() -> Result<(), std::fmt::Error> {
        let mut registry = Registry::default();
        let gauges = ResourceGauges::register(&mut registry);
        gauges.add("sample", Box::new(|| BTreeMap::from([("True", 2)])));
        let text = encode(&registry)?;
        assert!(
            text.contains(r#"vertice_resources{controller="sample",ready="True"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vertice_resources{controller="sample",ready="False"} 0"#),
            "{text}"
        );
        Ok(())
    }

    #[test]
    fn cache_gauges_export_every_source_under_the_prefix() -> Result<(), std::fmt::Error> {
        let mut registry = Registry::default();
        let gauges = CacheGauges::register(registry.sub_registry_with_prefix("vertice_backup"));
        gauges.add(
            "last_success_timestamp_seconds",
            "When the last backup succeeded",
            Box::new(|| {
                vec![
                    (
                        vec![("namespace", "a".to_owned()), ("backup", "x".to_owned())],
                        1.5,
                    ),
                    (
                        vec![("namespace", "b".to_owned()), ("backup", "y".to_owned())],
                        2.0,
                    ),
                ]
            }),
        );
        gauges.add(
            "last_success_timestamp_seconds",
            "ignored: the first help wins",
            Box::new(|| vec![(vec![("namespace", "c".to_owned())], 3.0)]),
        );
        gauges.add("empty", "No series", Box::new(Vec::new));
        let text = encode(&registry)?;
        let family = "vertice_backup_last_success_timestamp_seconds";
        assert_eq!(
            text.matches(&format!("# TYPE {family} gauge")).count(),
            1,
            "{text}"
        );
        assert!(
            text.contains(&format!(r#"{family}{{namespace="a",backup="x"}} 1.5"#)),
            "{text}"
        );
        assert!(
            text.contains(&format!(r#"{family}{{namespace="b",backup="y"}} 2.0"#)),
            "{text}"
        );
        assert!(
            text.contains(&format!(r#"{family}{{namespace="c"}} 3.0"#)),
            "{text}"
        );
        assert!(text.contains("# TYPE vertice_backup_empty gauge"), "{text}");
        Ok(())
    }

    #[test]
    fn operator_prefix_has_no_dashes() {
        assert_eq!(operator_prefix("db-provision"), "vertice_db_provision");
    }
}
