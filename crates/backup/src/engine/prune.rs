//! The `prune` action: apply a retention policy to a store's backups, and reclaim what
//! interrupted runs left (see [`crate::prune`] for the rules).

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

pub use crate::prune::{PruneOptions, PruneOutcome};

use crate::error::BackupError;
use crate::store::BackupStore;

/// Plans retention at `now` (the operator passes its injected clock's time) and, unless
/// `options.dry_run`, deletes what the plan says: each backup's manifest first, then its data.
/// When `cancel` fires it stops between store calls with `Cancelled`; a backup whose manifest
/// was deleted but not its data is a manifest-less folder the next prune reclaims.
///
/// Errors: `Store` when listing or a deletion fails, `Cancelled`.
pub async fn prune(
    store: &BackupStore,
    options: &PruneOptions,
    now: DateTime<Utc>,
    cancel: &CancellationToken,
) -> Result<PruneOutcome, BackupError> {
    tokio::select! {
        outcome = crate::prune::prune(store, options, now) => outcome,
        () = cancel.cancelled() => Err(BackupError::Cancelled),
    }
}
