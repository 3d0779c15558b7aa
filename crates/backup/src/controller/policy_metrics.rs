//! The per-VerticeBackup gauges of issue 7 §5, computed from the controller's cache on every
//! scrape (core's `cache_gauge`), so a deleted VerticeBackup leaves no series:
//! - `vertice_backup_last_success_timestamp_seconds{namespace,backup}`: Unix seconds of the
//!   newest successful backup (`status.lastSuccessfulBackup.time`);
//! - `vertice_backup_expected_interval_seconds{namespace,backup}`: seconds between two
//!   consecutive slots of the schedule around the next one (for freshness alerts: "no success
//!   for 2× the expected interval");
//! - `vertice_backup_verification_last_success_timestamp_seconds{namespace,backup}`: Unix
//!   seconds of the newest passed restore drill (`status.lastVerifiedTime`).

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use vertice_core::ControllerBuilder;
use vertice_core::Reconciler;
use vertice_core::metrics::GaugeLabels;

use crate::api::VerticeBackup;

use super::policy_status::to_chrono;
use super::scheduling::schedule_of;

/// Name (without the `vertice_backup_` prefix) of the newest-success gauge.
pub const LAST_SUCCESS: &str = "last_success_timestamp_seconds";
/// Name of the expected-interval gauge.
pub const EXPECTED_INTERVAL: &str = "expected_interval_seconds";
/// Name of the newest-passed-drill gauge.
pub const VERIFICATION_LAST_SUCCESS: &str = "verification_last_success_timestamp_seconds";

fn labels(backup: &VerticeBackup) -> GaugeLabels {
    vec![
        ("namespace", backup.namespace().unwrap_or_default()),
        ("backup", backup.name_any()),
    ]
}

/// Seconds between the two slots following `from` (the next slot and the one after), `None`
/// for a schedule that cannot be used or has no two more slots.
pub fn expected_interval(backup: &VerticeBackup, from: DateTime<Utc>) -> Option<f64> {
    let schedule = schedule_of(backup).ok()?;
    let first = schedule.next_after(from)?;
    let second = schedule.next_after(first)?;
    // Whole seconds: the gap of a cron schedule always is.
    Some((second - first).num_seconds() as f64)
}

/// Adds the three gauges to the VerticeBackup controller.
pub fn register<R: Reconciler<VerticeBackup>>(
    builder: ControllerBuilder<VerticeBackup, R>,
) -> ControllerBuilder<VerticeBackup, R> {
    builder
        .cache_gauge(
            LAST_SUCCESS,
            "Unix time of the newest successful backup of each VerticeBackup",
            |backup| {
                let at = backup
                    .status
                    .as_ref()
                    .and_then(|status| status.last_successful_backup.as_ref())
                    .and_then(|record| to_chrono(&record.time));
                at.map(|at| vec![(labels(backup), at.timestamp() as f64)])
                    .unwrap_or_default()
            },
        )
        .cache_gauge(
            EXPECTED_INTERVAL,
            "Seconds between two scheduled backups of each VerticeBackup",
            |backup| {
                // From the status's slot times, not the wall clock: the value is the same at
                // every scrape between two reconciles.
                let from = backup.status.as_ref().and_then(|status| {
                    status
                        .last_schedule_time
                        .as_ref()
                        .or(status.next_schedule_time.as_ref())
                        .and_then(to_chrono)
                });
                let from = from.or_else(|| {
                    backup
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .and_then(to_chrono)
                });
                from.and_then(|from| expected_interval(backup, from))
                    .map(|seconds| vec![(labels(backup), seconds)])
                    .unwrap_or_default()
            },
        )
        .cache_gauge(
            VERIFICATION_LAST_SUCCESS,
            "Unix time of the newest passed restore drill of each VerticeBackup",
            |backup| {
                let at = backup
                    .status
                    .as_ref()
                    .and_then(|status| status.last_verified_time.as_ref())
                    .and_then(to_chrono);
                at.map(|at| vec![(labels(backup), at.timestamp() as f64)])
                    .unwrap_or_default()
            },
        )
}
