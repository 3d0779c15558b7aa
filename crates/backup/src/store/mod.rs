//! Where backups live: one object store (local filesystem, S3, GCS or Azure, all through the
//! `object_store` crate) under a prefix, with the layout `<prefix>/<backup-name>/`.
//! Credentials come from the environment or from files, never from flags.

pub mod azure;
pub mod gcs;
pub mod local;
pub mod s3;

use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::BackupError;
use crate::format::{MANIFEST_NAME, data_object_name};
use crate::manifest::Manifest;
use crate::names::{check_backup_name, check_prefix};

/// Which kind of object store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A directory on the local filesystem (the default).
    #[default]
    Local,
    /// Amazon S3 or any S3-compatible server.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

/// Where to store backups: the fields the custom resource's `storage` section will have.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Kind of store.
    #[arg(long = "store", value_enum, default_value_t = StoreKind::Local)]
    pub store: StoreKind,
    /// Local store: the root directory.
    #[arg(long = "path")]
    pub path: Option<PathBuf>,
    /// S3/GCS bucket, or Azure container.
    #[arg(long)]
    pub bucket: Option<String>,
    /// Custom endpoint (S3-compatible servers, emulators), e.g. `http://127.0.0.1:9000`.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// S3 region.
    #[arg(long)]
    pub region: Option<String>,
    /// S3: address buckets as `endpoint/bucket` (path style) instead of `bucket.endpoint`.
    /// On by default whenever an endpoint is given.
    #[arg(long)]
    pub path_style: Option<bool>,
    /// Azure storage account (default from `AZURE_STORAGE_ACCOUNT_NAME`).
    #[arg(long)]
    pub account: Option<String>,
    /// A file holding the store's credentials: for S3 two lines `ACCESS_KEY_ID` and
    /// `SECRET_ACCESS_KEY` (or `KEY=VALUE` lines); for Azure the account key; for GCS a service
    /// account JSON. Without it, the cloud's usual environment variables are used.
    #[arg(long)]
    pub credentials_file: Option<PathBuf>,
    /// Folder inside the bucket (or local root) that holds the backups.
    #[arg(long, default_value = "")]
    pub prefix: String,
}

/// A store opened for backups.
#[derive(Clone, Debug)]
pub struct BackupStore {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    description: String,
}

impl BackupStore {
    /// Opens the store a config names (no request is made yet).
    pub fn open(config: &StoreConfig) -> Result<Self, BackupError> {
        check_prefix(&config.prefix)?;
        let (inner, description) = match config.store {
            StoreKind::Local => local::open(config)?,
            StoreKind::S3 => s3::open(config)?,
            StoreKind::Gcs => gcs::open(config)?,
            StoreKind::Azure => azure::open(config)?,
        };
        Ok(Self::from_object_store(inner, &config.prefix, description))
    }

    /// Wraps an already built object store.
    pub fn from_object_store(
        inner: Arc<dyn ObjectStore>,
        prefix: &str,
        description: String,
    ) -> Self {
        let prefix = Path::from_iter(prefix.split('/').filter(|segment| !segment.is_empty()));
        BackupStore {
            inner,
            prefix,
            description,
        }
    }

    /// The object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// Where the store is, for messages (no credentials).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The folder of backup `name`.
    pub fn backup_dir(&self, name: &str) -> Result<Path, BackupError> {
        check_backup_name(name)?;
        Ok(self.prefix.clone().join(name))
    }

    /// Path of a data object.
    pub fn data_path(&self, name: &str, object: u32) -> Result<Path, BackupError> {
        Ok(self
            .backup_dir(name)?
            .join(data_object_name(object).as_str()))
    }

    /// Path of a manifest.
    pub fn manifest_path(&self, name: &str) -> Result<Path, BackupError> {
        Ok(self.backup_dir(name)?.join(MANIFEST_NAME))
    }

    /// Whether backup `name` exists (has a manifest).
    pub async fn exists(&self, name: &str) -> Result<bool, BackupError> {
        match self.inner.head(&self.manifest_path(name)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Reads and validates backup `name`'s manifest.
    pub async fn read_manifest(&self, name: &str) -> Result<Manifest, BackupError> {
        let bytes = match self.inner.get(&self.manifest_path(name)?).await {
            Ok(result) => result.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BackupError::NotFound(name.into()));
            }
            Err(error) => return Err(error.into()),
        };
        let manifest = Manifest::from_json(&bytes)?;
        if manifest.name != name {
            return Err(BackupError::Integrity(format!(
                "the manifest in {name:?} belongs to backup {:?}",
                manifest.name
            )));
        }
        Ok(manifest)
    }

    /// Writes a manifest: the last step of a backup, or a key rotation.
    pub async fn write_manifest(&self, manifest: &Manifest) -> Result<(), BackupError> {
        let path = self.manifest_path(&manifest.name)?;
        self.inner
            .put(&path, PutPayload::from(manifest.to_json()?))
            .await?;
        Ok(())
    }

    /// The names of every backup under the prefix (folders with a manifest), sorted.
    pub async fn list_backup_names(&self) -> Result<Vec<String>, BackupError> {
        let prefix = if self.prefix.as_ref().is_empty() {
            None
        } else {
            Some(&self.prefix)
        };
        let depth = self.prefix.parts().count();
        let mut names: Vec<String> = self
            .inner
            .list(prefix)
            .try_filter_map(|meta| async move {
                let parts: Vec<_> = meta.location.parts().collect();
                let is_manifest = parts.len() == depth + 2
                    && parts
                        .last()
                        .is_some_and(|part| part.as_ref() == MANIFEST_NAME);
                Ok(is_manifest
                    .then(|| parts[depth].as_ref().to_string())
                    .filter(|name| check_backup_name(name).is_ok()))
            })
            .try_collect()
            .await?;
        names.sort();
        Ok(names)
    }

    /// Deletes backup `name`: the manifest first (so a half-deleted backup no longer looks
    /// like one), then every other object in its folder.
    pub async fn delete_backup(&self, name: &str) -> Result<(), BackupError> {
        match self.inner.delete(&self.manifest_path(name)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        self.delete_folder(name).await
    }

    /// Deletes every object in backup `name`'s folder (data objects of a failed run).
    pub async fn delete_folder(&self, name: &str) -> Result<(), BackupError> {
        let dir = self.backup_dir(name)?;
        let objects: Vec<Path> = self
            .inner
            .list(Some(&dir))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        for object in objects {
            match self.inner.delete(&object).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

/// Name of the object that records a backup's last successful verification or drill.
pub const VERIFICATION_NAME: &str = "verification.json";

impl BackupStore {
    /// Records that backup `name` passed a verify or a drill (read by retention).
    pub async fn write_verification(
        &self,
        name: &str,
        record: &serde_json::Value,
    ) -> Result<(), BackupError> {
        let path = self.backup_dir(name)?.join(VERIFICATION_NAME);
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|error| BackupError::Internal(format!("cannot serialize: {error}")))?;
        self.inner.put(&path, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Whether backup `name` has a recorded successful verification.
    pub async fn is_verified(&self, name: &str) -> Result<bool, BackupError> {
        let path = self.backup_dir(name)?.join(VERIFICATION_NAME);
        match self.inner.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }
}

/// The meaningful lines of a credentials file: trimmed, without blank lines and `#` comments.
pub(crate) fn read_credentials_file(path: &std::path::Path) -> Result<Vec<String>, BackupError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        BackupError::Config(format!(
            "cannot read the credentials file {}: {error}",
            path.display()
        ))
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(String::from)
        .collect())
}
