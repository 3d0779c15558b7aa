//! Reading the operator process from outside: counters from its `/metrics` text and memory
//! figures from `/proc/<pid>/status`.

use anyhow::Context;

/// The sum of every sample of the counter `name` (all label sets) in OpenMetrics/Prometheus
/// text, e.g. `vertice_reconcile_total`. Zero when it has no samples yet.
pub fn counter_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Fetches `url` (the operator's `/metrics`).
///
/// Errors: no answer or not a success status.
pub async fn fetch(url: &str) -> anyhow::Result<String> {
    let response = reqwest::get(url)
        .await
        .with_context(|| format!("fetching {url}"))?
        .error_for_status()?;
    Ok(response.text().await?)
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`), if the process still exists.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&text, field)
}

fn parse_status_kib(text: &str, field: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|line| line.split(':').next() == Some(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_over_label_sets_and_skip_lookalikes() {
        let text = "\
# HELP vertice_reconcile_total Finished reconciles.
# TYPE vertice_reconcile_total counter
vertice_reconcile_total{controller=\"VerticeBackup\",result=\"success\"} 1000
vertice_reconcile_total{controller=\"BackupRequest\",result=\"requeue\"} 25.0
vertice_reconcile_total_created{controller=\"x\"} 1700000000
vertice_reconcile_errors_total{controller=\"x\",reason=\"y\"} 3
# EOF
";
        assert_eq!(counter_sum(text, "vertice_reconcile_total"), 1025.0);
        assert_eq!(counter_sum(text, "vertice_reconcile_errors_total"), 3.0);
        assert_eq!(counter_sum(text, "vertice_missing_total"), 0.0);
        assert_eq!(counter_sum("plain_total 7\n", "plain_total"), 7.0);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let text = "Name:\tvertice-backup\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(parse_status_kib(text, "VmHWM"), Some(51234));
        assert_eq!(parse_status_kib(text, "VmRSS"), Some(40000));
        assert_eq!(parse_status_kib(text, "VmSwap"), None);
    }
}
