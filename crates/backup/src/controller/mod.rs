//! The backup operator's controllers: `VerticeBackup` (schedules, retention, verification),
//! `BackupRequest` (one run, executed as a Job or in process) and `RestoreRequest`.
//!
//! [`run`] is what `vertice-backup run` calls; tests call [`operator`] to get the same
//! [`Operator`] with their own client, clock and shutdown token.

use vertice_core::{Operator, OperatorError};

pub mod job;
pub mod labels;
mod options;
pub mod resolve;
pub mod restore_resolve;

pub use options::OperatorArgs;

/// Builds the backup operator with every controller registered. Does not start it.
pub fn operator(args: &OperatorArgs) -> Operator {
    Operator::new("backup", args.run.clone())
}

/// Runs the backup operator until SIGTERM/SIGINT or lost leadership.
pub async fn run(args: OperatorArgs) -> Result<(), OperatorError> {
    operator(&args).run().await
}
