//! `vertice_backup_history_lag_seconds` (issue 8 §4): how far the history database is behind,
//! as the age of the oldest finished run not yet recorded in it — 0 when caught up, and when
//! history is off. Computed at each scrape from the archive's queue, so it grows second by
//! second during an outage without anything ticking.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::history_archive::HistoryArchive;

/// The collector behind the gauge.
#[derive(Debug)]
pub struct HistoryLag {
    archive: HistoryArchive,
}

impl HistoryLag {
    /// Registers the gauge on the operator's registry (prefix `vertice_backup_`).
    pub fn register(registry: &mut Registry, archive: HistoryArchive) {
        registry.register_collector(Box::new(Self { archive }));
    }
}

impl Collector for HistoryLag {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let lag = self.archive.lag_seconds(chrono::Utc::now());
        let family = encoder.encode_descriptor(
            "history_lag",
            "Age of the oldest finished backup or restore run not yet recorded in the history database; 0 when caught up or when history is off",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        ConstGauge::new(lag).encode(family)
    }
}
