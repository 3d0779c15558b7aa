//! Collecting copied bytes no backup needs any more. Deleting a backup deletes its own objects
//! only (its index among them); the bytes it copied stay in `.copied-objects/<backup>/`,
//! because later backups may reference them. This collector deletes a copied object only when
//! no backup in the store references it — "never delete data it was not told to delete".
//!
//! It deletes nothing (and says why) when it cannot be sure:
//! - a manifest or an index it cannot read (that backup may reference anything);
//! - a run in progress: a folder without a manifest whose newest object is younger than the
//!   partial grace. A run reserves its name before it reads the previous copy's index, so a
//!   run that could reference bytes this collection is about to delete is always seen here.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;

use super::layout::copied_root;
use super::previous::read_index;
use crate::error::BackupError;
use crate::format::bucket_copy::copied_object_name;
use crate::store::BackupStore;

/// What a collection found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopiedObjectsOutcome {
    /// Copied objects no backup references: deleted (or, in a dry run, to delete).
    pub unreferenced: u64,
    /// Their bytes.
    pub unreferenced_bytes: u64,
    /// Copied objects a backup references: kept.
    pub referenced: u64,
    /// Why nothing was deleted this time, if so (the next prune tries again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred: Option<String>,
}

/// Finds the copied objects in `store` that no backup references and, unless `dry_run`,
/// deletes them. `now` and `partial_grace` tell a run in progress from an interrupted one (as
/// [`crate::prune`] does). Errors: `Store` when listing or a deletion fails.
pub async fn collect_copied_objects(
    store: &BackupStore,
    now: DateTime<Utc>,
    partial_grace: Duration,
    dry_run: bool,
) -> Result<CopiedObjectsOutcome, BackupError> {
    let root = copied_root(store);
    let depth = root.parts().count();
    let copied: Vec<_> = store.object_store().list(Some(&root)).try_collect().await?;
    if copied.is_empty() {
        return Ok(CopiedObjectsOutcome::default());
    }
    let (referenced, deferred) = referenced_objects(store, now, partial_grace).await?;
    let mut outcome = CopiedObjectsOutcome {
        deferred,
        ..CopiedObjectsOutcome::default()
    };
    for meta in copied {
        let parts: Vec<_> = meta.location.parts().collect();
        let is_referenced = parts.len() == depth + 2
            && referenced.contains(&(
                parts[depth].as_ref().to_string(),
                parts[depth + 1].as_ref().to_string(),
            ));
        if is_referenced {
            outcome.referenced += 1;
            continue;
        }
        outcome.unreferenced += 1;
        outcome.unreferenced_bytes += meta.size;
        if dry_run || outcome.deferred.is_some() {
            continue;
        }
        match store.object_store().delete(&meta.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(outcome)
}

/// `(holder, object name)` of every copied object a backup in the store references, and the
/// reason to delete nothing, if there is one.
async fn referenced_objects(
    store: &BackupStore,
    now: DateTime<Utc>,
    partial_grace: Duration,
) -> Result<(BTreeSet<(String, String)>, Option<String>), BackupError> {
    let mut referenced = BTreeSet::new();
    for folder in store.backup_folders().await? {
        if !folder.has_manifest {
            let age = now
                .signed_duration_since(folder.newest)
                .to_std()
                .unwrap_or(Duration::ZERO);
            if age < partial_grace {
                let reason = format!("a run is writing backup {:?}", folder.name);
                return Ok((referenced, Some(reason)));
            }
            continue;
        }
        let manifest = match store.read_manifest(&folder.name).await {
            Ok(manifest) => manifest,
            Err(error) => {
                let reason = format!("the manifest of {:?} is unreadable: {error}", folder.name);
                return Ok((referenced, Some(reason)));
            }
        };
        let Some(record) = &manifest.bucket_copy else {
            continue;
        };
        match read_index(store, &folder.name, record).await {
            Ok(index) => {
                for entry in index.objects {
                    referenced.insert((entry.holder, copied_object_name(&entry.key)));
                }
            }
            Err(error) => {
                let reason = format!(
                    "the objects index of {:?} is unreadable: {error}",
                    folder.name
                );
                return Ok((referenced, Some(reason)));
            }
        }
    }
    Ok((referenced, None))
}
