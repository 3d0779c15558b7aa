//! The `prune` action: apply a retention policy to a store's backups, and reclaim what
//! interrupted runs left (see [`crate::prune`] for the rules).

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

pub use crate::prune::{PruneOptions, PruneOutcome};

use super::selector::LabelSelector;
use crate::error::BackupError;
use crate::store::BackupStore;

/// Plans retention at `now` (the operator passes its injected clock's time) over the backups
/// whose manifest labels match `selector` (the operator: its policy's UID label) and, unless
/// `options.dry_run`, deletes what the plan says: each backup's manifest first, then its data.
/// Folders without a manifest are reclaimed after the grace period whatever the selector.
/// When `cancel` fires it stops between store calls with `Cancelled`; a backup whose manifest
/// was deleted but not its data is a manifest-less folder the next prune reclaims.
///
/// Errors: `Store` when listing or a deletion fails, `Cancelled`.
pub async fn prune(
    store: &BackupStore,
    options: &PruneOptions,
    selector: &LabelSelector,
    now: DateTime<Utc>,
    cancel: &CancellationToken,
) -> Result<PruneOutcome, BackupError> {
    tokio::select! {
        outcome = crate::prune::prune_matching(store, options, selector, now) => outcome,
        () = cancel.cancelled() => Err(BackupError::Cancelled),
    }
}
