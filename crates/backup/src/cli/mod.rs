//! The data-path subcommands of `vertice-backup`: `backup`, `restore`, `verify`, `drill`,
//! `list`, `prune`, `rekey`, `runner` and `history` (runs from the operator's history
//! database). They work with no cluster at all; the operator's Job
//! calls `runner` with one run's spec.
//!
//! Flags are named as the custom resource's fields will be (`compressionLevel` →
//! `--compression-level`). Secrets never come from flags: key and credential flags name files or
//! environment variables. Progress goes to stderr only when it is a terminal; results go to
//! stdout as text or, with `--output json`, as one JSON document.
//!
//! Exit codes: 0 ok · 1 internal error · 2 usage · 3 invalid configuration · 4 database
//! (source or target) failed · 5 object store failed · 6 integrity (corrupted or missing data,
//! wrong key, unknown format) · 7 backup not found · 8 refused to overwrite (backup or restore
//! target exists) · 9 drill counts differ · 130 cancelled.

pub mod args;
pub mod commands;
pub mod history;
pub mod output;
pub mod reports;
pub mod runner;
pub mod snapshot_args;
pub mod spec_error;

use std::process::ExitCode;

use clap::Subcommand;

use crate::error::BackupError;
use output::{Output, OutputFormat};

/// The data-path subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Back up a database (or a file/stdin) into a store.
    Backup(Box<commands::BackupArgs>),
    /// Restore a backup into a new database (or a file/stdout); verifies everything first.
    Restore(commands::RestoreArgs),
    /// Re-read a backup and check every hash (and, with a key, every tag) without restoring.
    Verify(commands::VerifyArgs),
    /// Restore into a scratch database, compare counts with the manifest, report the duration.
    Drill(commands::DrillArgs),
    /// List the backups in a store (only those with a manifest).
    List(commands::ListArgs),
    /// Delete backups by a retention policy (`--dry-run` prints the plan and why).
    Prune(commands::PruneArgs),
    /// Re-wrap a backup's data key with a new key-encryption key (rewrites only the manifest).
    Rekey(commands::RekeyArgs),
    /// Run one backup/restore/verify/drill from a spec (what the operator's Job calls).
    Runner(runner::RunnerArgs),
    /// List finished backup and restore runs from the operator's history database.
    History(history::HistoryArgs),
}

/// Runs a data-path subcommand and turns its outcome into an exit code.
pub fn run(command: DataCommand) -> ExitCode {
    let format = match &command {
        DataCommand::Backup(args) => args.common.output,
        DataCommand::Restore(args) => args.common.output,
        DataCommand::Verify(args) => args.common.output,
        DataCommand::Drill(args) => args.common.output,
        DataCommand::List(args) => args.common.output,
        DataCommand::Prune(args) => args.common.output,
        DataCommand::Rekey(args) => args.common.output,
        DataCommand::Runner(args) => args.output,
        DataCommand::History(args) => args.output.into(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return Output::new(format).error(&BackupError::Internal(format!("tokio: {error}")));
        }
    };
    let out = Output::new(format);
    let result = runtime.block_on(async move {
        match command {
            DataCommand::Backup(args) => commands::backup(*args).await,
            DataCommand::Restore(args) => commands::restore(args).await,
            DataCommand::Verify(args) => commands::verify(args).await,
            DataCommand::Drill(args) => commands::drill(args).await,
            DataCommand::List(args) => commands::list(args).await,
            DataCommand::Prune(args) => commands::prune(args).await,
            DataCommand::Rekey(args) => commands::rekey(args).await,
            DataCommand::Runner(args) => runner::run(args).await,
            DataCommand::History(args) => history::history(args).await,
        }
    });
    let code = match result {
        Ok(report) => out.success(&report),
        Err(error) => out.error(&error),
    };
    // Dropping the runtime would wait for every blocking task, and a `--from-file -` backup
    // leaves one blocked reading stdin after a cancel: the process would hang after printing
    // "cancelled" until the writer closed the pipe. The command is done, so do not wait.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    code
}

/// How long finished commands wait for leftover blocking tasks before the process exits.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Default for `--output`.
pub fn default_output() -> OutputFormat {
    OutputFormat::Text
}
