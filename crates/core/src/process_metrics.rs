//! The standard process metrics (the names every Prometheus client library exports, so the
//! memory and CPU alerts and dashboards written for other exporters work unchanged), read from
//! Linux `/proc/self` on every scrape, never cached:
//!
//! - `process_resident_memory_bytes` — gauge, resident set size in bytes (`stat` field `rss` ×
//!   the page size);
//! - `process_cpu_seconds_total` — counter, user + system CPU time in seconds (`utime + stime`
//!   over the clock-tick rate, so it moves in steps of one tick, usually 10 ms);
//! - `process_start_time_seconds` — gauge, Unix seconds when the process started (boot time
//!   from `/proc/stat` plus `stat` field `starttime`);
//! - `process_open_fds` — gauge, open file descriptors (entries of `/proc/self/fd`).
//!
//! A value whose file cannot be read is left out of that scrape (logged at debug level), so a
//! restricted `/proc` never breaks `/metrics`. On systems other than Linux the collector exports
//! nothing. Registered by [`Operator::new`](crate::Operator::new), so every operator has them.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};

/// One reading of the process's resources. Every field is `None` when its source could not be
/// read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessSample {
    /// Resident set size, bytes.
    pub resident_memory_bytes: Option<f64>,
    /// User + system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Process start, Unix seconds.
    pub start_time_seconds: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<f64>,
}

impl ProcessSample {
    /// Reads `/proc/self` now.
    #[cfg(target_os = "linux")]
    #[allow(clippy::cast_precision_loss)] // tick, page and fd counts stay far below 2^53
    pub fn read() -> Self {
        let process = match procfs::process::Process::myself() {
            Ok(process) => process,
            Err(error) => {
                tracing::debug!(%error, "cannot open /proc/self; no process metrics");
                return Self::default();
            }
        };
        let stat = process
            .stat()
            .inspect_err(|error| tracing::debug!(%error, "cannot read /proc/self/stat"))
            .ok();
        let ticks = procfs::ticks_per_second() as f64;
        let boot_time = procfs::boot_time_secs()
            .inspect_err(|error| tracing::debug!(%error, "cannot read the boot time"))
            .ok();
        let open_fds = process
            .fd_count()
            .inspect_err(|error| tracing::debug!(%error, "cannot list /proc/self/fd"))
            .ok();
        Self {
            resident_memory_bytes: stat
                .as_ref()
                .map(|stat| (stat.rss * procfs::page_size()) as f64),
            cpu_seconds: stat
                .as_ref()
                .map(|stat| (stat.utime + stat.stime) as f64 / ticks),
            start_time_seconds: stat
                .as_ref()
                .zip(boot_time)
                .map(|(stat, boot)| boot as f64 + stat.starttime as f64 / ticks),
            open_fds: open_fds.map(|count| count as f64),
        }
    }

    /// No `/proc` to read: nothing is exported.
    #[cfg(not(target_os = "linux"))]
    pub fn read() -> Self {
        Self::default()
    }
}

/// The collector of the `process_*` metrics; reads [`ProcessSample::read`] on every encode.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessMetrics;

impl ProcessMetrics {
    /// Registers the collector in `registry`, which must be unprefixed: the names are the
    /// standard `process_*` ones.
    pub fn register(registry: &mut Registry) {
        registry.register_collector(Box::new(Self));
    }
}

impl Collector for ProcessMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sample = ProcessSample::read();
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory size",
                Some(Unit::Bytes),
                sample.resident_memory_bytes,
            ),
            (
                "process_start_time",
                "Start time of the process since the Unix epoch",
                Some(Unit::Seconds),
                sample.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                None,
                sample.open_fds,
            ),
        ];
        for (name, help, unit, value) in gauges {
            if let Some(value) = value {
                let metric =
                    encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
                ConstGauge::new(value).encode(metric)?;
            }
        }
        if let Some(seconds) = sample.cpu_seconds {
            let metric = encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?;
            ConstCounter::new(seconds).encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_read_and_plausible() {
        let sample = ProcessSample::read();
        let rss = sample.resident_memory_bytes.unwrap_or_default();
        // A running Rust test binary maps at least its code: more than a page, under 64 GiB.
        assert!(
            rss > 4096.0 && rss < 64.0 * 1024.0 * 1024.0 * 1024.0,
            "{sample:?}"
        );
        assert!(
            sample.cpu_seconds.is_some_and(|cpu| cpu >= 0.0),
            "{sample:?}"
        );
        // stdin, stdout, stderr at least.
        assert!(sample.open_fds.is_some_and(|fds| fds >= 3.0), "{sample:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs_f64())
            .unwrap_or_default();
        let start = sample.start_time_seconds.unwrap_or_default();
        // Started before now (one tick of rounding) and within the last day.
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "{start} vs {now}"
        );
    }

    #[test]
    fn encodes_the_standard_names_and_types() -> Result<(), std::fmt::Error> {
        let mut registry = Registry::default();
        ProcessMetrics::register(&mut registry);
        let text = crate::metrics::encode(&registry)?;
        for (family, kind, sample) in [
            (
                "process_resident_memory_bytes",
                "gauge",
                "process_resident_memory_bytes ",
            ),
            (
                "process_cpu_seconds",
                "counter",
                "process_cpu_seconds_total ",
            ),
            (
                "process_start_time_seconds",
                "gauge",
                "process_start_time_seconds ",
            ),
            ("process_open_fds", "gauge", "process_open_fds "),
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} {kind}\n")),
                "{text}"
            );
            assert!(text.contains(&format!("\n{sample}")), "{text}");
        }
        Ok(())
    }
}
