//! One [`RunSpec`] run end to end: what `vertice-backup runner` (the operator's Job) and the
//! operator's in-process executor call.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::backup::{BackupReport, BackupRun, backup};
use super::drill::{DrillRun, drill};
use super::restore::{RestoreOutcome, RestoreRun, restore};
use super::spec::{Action, RunSpec};
use super::verify::{VerifyRun, verify};
use crate::drill::DrillReport;
use crate::error::BackupError;
use crate::progress::Progress;
use crate::store::BackupStore;
use crate::verify::VerifyReport;

/// What a run produced, per action.
#[derive(Debug)]
pub enum RunOutcome {
    /// A new backup (its manifest; boxed, it is the largest by far).
    Backup(Box<BackupReport>),
    /// A committed restore.
    Restore(RestoreOutcome),
    /// A verified backup.
    Verify(VerifyReport),
    /// A drill's findings (it may not have passed: see [`DrillReport::passed`]).
    Drill(DrillReport),
}

/// Runs `spec`: checks it, opens its store, runs its action. Errors: those of the action
/// (see [`backup()`], [`restore()`], [`verify()`], [`drill()`]), and `Config` for a spec that
/// lacks what its action needs.
pub async fn run(
    spec: &RunSpec,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<RunOutcome, BackupError> {
    match spec.action {
        Action::Backup => {
            let run = BackupRun::from_spec(spec)?;
            let store = BackupStore::open(&spec.storage)?;
            backup(&store, &run, progress, cancel)
                .await
                .map(|report| RunOutcome::Backup(Box::new(report)))
        }
        Action::Restore => {
            let run = RestoreRun::from_spec(spec)?;
            let store = BackupStore::open(&spec.storage)?;
            restore(&store, &run, progress, cancel)
                .await
                .map(RunOutcome::Restore)
        }
        Action::Verify => {
            let run = VerifyRun::from_spec(spec)?;
            let store = BackupStore::open(&spec.storage)?;
            verify(&store, &run, progress, cancel)
                .await
                .map(RunOutcome::Verify)
        }
        Action::Drill => {
            let run = DrillRun::from_spec(spec)?;
            let store = BackupStore::open(&spec.storage)?;
            drill(&store, &run, progress, cancel)
                .await
                .map(RunOutcome::Drill)
        }
    }
}
