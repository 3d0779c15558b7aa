//! The `list` action: the backups in a store (folders with a manifest), each as its
//! manifest's summary.

use super::selector::LabelSelector;
use crate::error::BackupError;
use crate::manifest::BackupListing;
use crate::store::BackupStore;

/// One backup found in the store.
#[derive(Debug)]
pub enum ListEntry {
    /// Its manifest's summary (name, engine, times, sizes, key id, labels).
    Backup(BackupListing),
    /// A manifest that could not be read or parsed; never hidden, a person looks at it.
    Unreadable {
        /// The backup's name (its folder).
        name: String,
        /// Why it could not be read.
        error: BackupError,
    },
}

/// Lists the backups in `store` whose manifest labels match `selector`, by name. A manifest
/// that cannot be read is listed whatever the selector (its labels are unknown, and it is
/// never hidden). Errors: `Store` when listing fails (an unreadable manifest is an
/// [`ListEntry::Unreadable`] entry, not an error).
pub async fn list(
    store: &BackupStore,
    selector: &LabelSelector,
) -> Result<Vec<ListEntry>, BackupError> {
    let mut entries = Vec::new();
    for name in store.list_backup_names().await? {
        match store.read_manifest(&name).await {
            Ok(manifest) if selector.matches(&manifest.labels) => {
                entries.push(ListEntry::Backup(manifest.summary()));
            }
            Ok(_) => {}
            Err(error) => entries.push(ListEntry::Unreadable { name, error }),
        }
    }
    Ok(entries)
}
