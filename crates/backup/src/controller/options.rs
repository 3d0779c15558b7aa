//! The backup operator's command-line flags: the shared `run` flags plus its own.

use vertice_core::cli::RunArgs;

/// `vertice-backup run` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct OperatorArgs {
    /// The flags every Vértice operator has (client, admin server, leader election, logging).
    #[command(flatten)]
    pub run: RunArgs,
    /// The image of run Jobs (`vertice-backup runner`) when a run's `executor.image` names
    /// none: the operator's own image.
    #[arg(long, env = "RUNNER_IMAGE", default_value = concat!("ghcr.io/vertice-dev/vertice-backup:", env!("CARGO_PKG_VERSION")))]
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
}
