//! A backup's folder and its own objects: finding every folder under the prefix that holds
//! backup objects (with or without a manifest), and deleting exactly one backup's own objects.
//!
//! A backup's own objects are the objects directly in `PREFIX/NAME/` whose names are those
//! [`is_own_object_name`] knows. Nothing deeper is ever touched: `PREFIX/NAME` may also be the
//! prefix of another store configuration with backups of its own below it (a store with prefix
//! `team` holding a backup `app`, and one with prefix `team/app` holding `nightly-1`).
//!
//! The local store stages a multipart upload as `<object>#<n>` beside the object and renames it
//! into place on completion; object_store's listing hides such files. A run killed mid-upload
//! leaves them behind, so on the local store they count as own objects too (found and removed
//! through the filesystem).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::BackupStore;
use crate::error::BackupError;
use crate::format::{MANIFEST_NAME, RESERVATION_NAME, is_own_object_name};
use crate::names::check_backup_name;

/// One folder under the prefix that holds backup objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupFolder {
    /// The folder's name (the backup's name).
    pub name: String,
    /// Whether it holds a manifest (a backup) or not (what an interrupted run left).
    pub has_manifest: bool,
    /// Number of own objects in it (staged uploads of the local store included).
    pub objects: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// When the newest of them was last written: a writer that is still running keeps this
    /// recent.
    pub newest: DateTime<Utc>,
}

impl BackupStore {
    /// Every folder directly under the prefix that holds own objects of a backup, sorted by
    /// name. One listing of the prefix (plus, on the local store, a look at each folder's
    /// staged uploads).
    pub async fn backup_folders(&self) -> Result<Vec<BackupFolder>, BackupError> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let depth = self.prefix.parts().count();
        let mut folders: BTreeMap<String, BackupFolder> = BTreeMap::new();
        let mut listing = self.inner.list(prefix);
        while let Some(meta) = listing.try_next().await? {
            let parts: Vec<_> = meta.location.parts().collect();
            if parts.len() != depth + 2 || !is_own_object_name(parts[depth + 1].as_ref()) {
                continue;
            }
            let name = parts[depth].as_ref();
            if check_backup_name(name).is_err() {
                continue;
            }
            let folder = folders
                .entry(name.to_string())
                .or_insert_with(|| BackupFolder {
                    name: name.to_string(),
                    has_manifest: false,
                    objects: 0,
                    bytes: 0,
                    newest: meta.last_modified,
                });
            folder.has_manifest |= parts[depth + 1].as_ref() == MANIFEST_NAME;
            folder.objects += 1;
            folder.bytes += meta.size;
            folder.newest = folder.newest.max(meta.last_modified);
        }
        if self.local_root.is_some() {
            for (name, staged) in self.staged_uploads_under_prefix().await? {
                let folder = folders.entry(name.clone()).or_insert_with(|| BackupFolder {
                    name,
                    has_manifest: false,
                    objects: 0,
                    bytes: 0,
                    newest: staged.modified,
                });
                folder.objects += 1;
                folder.bytes += staged.size;
                folder.newest = folder.newest.max(staged.modified);
            }
        }
        Ok(folders.into_values().collect())
    }

    /// Deletes backup `name`'s own objects: the manifest first (so a half-deleted backup no
    /// longer looks like one), then its data objects and records, the reservation last (so
    /// the name is not free while objects of the old run remain). Objects in folders below
    /// the backup's folder are never touched.
    pub(crate) async fn delete_own_objects(&self, name: &str) -> Result<(), BackupError> {
        let dir = self.backup_dir(name)?;
        self.delete_quietly(&dir.clone().join(MANIFEST_NAME))
            .await?;
        let listing = self.inner.list_with_delimiter(Some(&dir)).await?;
        let mut reservation = None;
        for meta in listing.objects {
            let Some(file) = meta.location.filename() else {
                continue;
            };
            if file == RESERVATION_NAME {
                reservation = Some(meta.location.clone());
            } else if is_own_object_name(file) && meta.location.prefix_matches(&dir) {
                self.delete_quietly(&meta.location).await?;
            }
        }
        for staged in self.staged_uploads(name).await? {
            match tokio::fs::remove_file(&staged.path).await {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error.into()),
            }
        }
        if let Some(reservation) = reservation {
            self.delete_quietly(&reservation).await?;
        }
        Ok(())
    }

    async fn delete_quietly(&self, path: &Path) -> Result<(), BackupError> {
        match self.inner.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// The local store's staged uploads of own objects in backup `name`'s folder.
    async fn staged_uploads(&self, name: &str) -> Result<Vec<StagedUpload>, BackupError> {
        let Some(root) = &self.local_root else {
            return Ok(Vec::new());
        };
        let dir = self
            .backup_dir(name)?
            .parts()
            .fold(root.clone(), |dir, part| dir.join(part.as_ref()));
        staged_in(dir).await
    }

    /// Staged uploads in every folder directly under the prefix, by folder name.
    async fn staged_uploads_under_prefix(
        &self,
    ) -> Result<Vec<(String, StagedUpload)>, BackupError> {
        let Some(root) = &self.local_root else {
            return Ok(Vec::new());
        };
        let base = self
            .prefix
            .parts()
            .fold(root.clone(), |dir, part| dir.join(part.as_ref()));
        let mut entries = match tokio::fs::read_dir(&base).await {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error.into()),
        };
        let mut found = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if check_backup_name(&name).is_err() || !entry.file_type().await?.is_dir() {
                continue;
            }
            for staged in staged_in(entry.path()).await? {
                found.push((name.clone(), staged));
            }
        }
        Ok(found)
    }
}

/// A local store's staged multipart upload: `<own object name>#<digits>`.
struct StagedUpload {
    path: PathBuf,
    size: u64,
    modified: DateTime<Utc>,
}

async fn staged_in(dir: PathBuf) -> Result<Vec<StagedUpload>, BackupError> {
    let mut entries = match tokio::fs::read_dir(&dir).await {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    let mut staged = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let Some(file) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let is_staged = file.split_once('#').is_some_and(|(object, suffix)| {
            is_own_object_name(object)
                && !suffix.is_empty()
                && suffix.bytes().all(|b| b.is_ascii_digit())
        });
        if !is_staged {
            continue;
        }
        let metadata = entry.metadata().await?;
        if !metadata.is_file() {
            continue;
        }
        staged.push(StagedUpload {
            path: entry.path(),
            size: metadata.len(),
            modified: metadata.modified().map(DateTime::<Utc>::from)?,
        });
    }
    Ok(staged)
}
