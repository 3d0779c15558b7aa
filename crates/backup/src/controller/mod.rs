//! The backup operator's controllers: `VerticeBackup` (schedules, retention, verification),
//! `BackupRequest` (one run, executed as a Job or in process) and `RestoreRequest`.
//!
//! [`run`] is what `vertice-backup run` calls; tests call [`operator`] to get the same
//! [`Operator`] with their own client, clock and shutdown token.

use vertice_core::{Operator, OperatorError};

pub mod history;
mod options;
pub mod policy_error;
pub mod policy_metrics;
pub mod policy_status;
pub mod retention;
pub mod retention_step;
pub mod scheduling;
pub mod store_access;
pub mod verification;
pub mod vertice_backup;

pub use options::{DEFAULT_MAX_DELETE_PERCENT, DEFAULT_RETENTION_INTERVAL, OperatorArgs};

/// Builds the backup operator with every controller registered. Does not start it.
pub fn operator(args: &OperatorArgs) -> Operator {
    Operator::new("backup", args.run.clone()).controller(vertice_backup::controller(args))
}

/// Runs the backup operator until SIGTERM/SIGINT or lost leadership.
pub async fn run(args: OperatorArgs) -> Result<(), OperatorError> {
    operator(&args).run().await
}
