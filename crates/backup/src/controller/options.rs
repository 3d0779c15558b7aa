//! The backup operator's command-line flags: the shared `run` flags plus its own.

use std::time::Duration;

use vertice_core::cli::RunArgs;

use crate::api::validation::parse_duration_seconds;
use crate::history::HistoryUrl;

/// The default of `--retention-interval`: one hour.
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// The default of `--retention-max-delete-percent`.
pub const DEFAULT_MAX_DELETE_PERCENT: u8 = 50;

/// The default `--runner-image`: the operator's own image at its version.
pub const DEFAULT_RUNNER_IMAGE: &str = concat!(
    "ghcr.io/vertice-dev/vertice-backup:",
    env!("CARGO_PKG_VERSION")
);

/// `vertice-backup run` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct OperatorArgs {
    /// The flags every Vértice operator has (client, admin server, leader election, logging).
    #[command(flatten)]
    pub run: RunArgs,
    /// The image of run Jobs (`vertice-backup runner`) when a run's `executor.image` names
    /// none: the operator's own image.
    #[arg(long, env = "RUNNER_IMAGE", default_value = DEFAULT_RUNNER_IMAGE)]
    pub runner_image: String,
    /// At most this many runs execute at once per project (label `vertice.dev/project`,
    /// default the namespace); the others wait `Queued`.
    #[arg(long, env = "MAX_CONCURRENT_RUNS_PER_PROJECT", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_runs_per_project: u16,
    /// Pod retries of a run Job after a database, store or internal failure (exit 1, 4, 5):
    /// a run makes at most this many + 1 attempts.
    #[arg(long, env = "RUN_BACKOFF_LIMIT", default_value_t = 2, value_parser = clap::value_parser!(i32).range(0..=10))]
    pub run_backoff_limit: i32,
    /// Seconds between probes of a storage location whose breaker is open (a run failed with a
    /// store error); meanwhile new runs on it fail fast with `StorageUnavailable`.
    #[arg(long, env = "STORAGE_PROBE_INTERVAL_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub storage_probe_interval_seconds: u64,
    /// How often each VerticeBackup's retention runs besides after every new successful
    /// backup, in hours, minutes and seconds (`1h`, `30m`, `1h30m`).
    #[arg(long, default_value = "1h", value_parser = parse_interval)]
    pub retention_interval: Duration,
    /// A retention sweep that would delete more than this percentage of a VerticeBackup's
    /// stored backups stops and waits for the annotation
    /// `backup.vertice.dev/allow-large-prune=true` on it. `spec.retention.maxDeletePercent`
    /// overrides it per VerticeBackup.
    #[arg(long, default_value_t = DEFAULT_MAX_DELETE_PERCENT,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub retention_max_delete_percent: u8,
    /// A PostgreSQL URL (`postgres://user:password@host:5432/db`) where every finished backup
    /// and restore run is recorded (issue 8 §4); the schema `vertice_history` is created and
    /// migrated by the operator. Off when unset. Give it through the environment from a Secret
    /// (the chart's `history.existingSecret`): it holds a password, and its value is never
    /// shown in `--help`, logs, events or status.
    #[arg(long, env = "VERTICE_HISTORY_DATABASE_URL", hide_env_values = true)]
    pub history_database_url: Option<HistoryUrl>,
}

impl OperatorArgs {
    /// The operator's flags with `run` and every other flag at its default (for tests and
    /// embedders that build the operator without a command line).
    pub fn new(run: RunArgs) -> Self {
        Self {
            run,
            runner_image: DEFAULT_RUNNER_IMAGE.to_owned(),
            max_concurrent_runs_per_project: 2,
            run_backoff_limit: 2,
            storage_probe_interval_seconds: 30,
            retention_interval: DEFAULT_RETENTION_INTERVAL,
            retention_max_delete_percent: DEFAULT_MAX_DELETE_PERCENT,
            history_database_url: None,
        }
    }
}

/// Parses `--retention-interval`: a positive duration such as `1h`, `30m` or `1h30m`.
fn parse_interval(text: &str) -> Result<Duration, String> {
    match parse_duration_seconds(text) {
        Some(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
        _ => Err(format!(
            "{text:?} is not a positive duration in hours, minutes and seconds (e.g. 1h, 30m)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_or_say_why_not() {
        assert_eq!(parse_interval("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_interval("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_interval("45s"), Ok(Duration::from_secs(45)));
        for bad in ["", "0s", "-1h", "1d", "m", "1.5h"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
