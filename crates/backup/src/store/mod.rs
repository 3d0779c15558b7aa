//! Where backups live: one object store (local filesystem, S3, GCS or Azure, all through the
//! `object_store` crate) under a prefix, with the layout `<prefix>/<backup-name>/`.
//! Credentials come from the environment or from files, never from flags.

pub mod azure;
pub mod error;
pub mod folders;
pub mod gcs;
pub mod local;
pub mod naming;
pub mod reservation;
pub mod s3;

use std::path::PathBuf;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::BackupError;
use crate::format::{MANIFEST_NAME, data_object_name};
use crate::manifest::Manifest;
use crate::names::{check_backup_name, check_prefix};
pub use error::{StoreError, StoreErrorKind};
pub(crate) use s3::named_value;

/// Which kind of object store.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
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

/// Where a store's credentials may come from.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum CredentialsSource {
    /// `credentialsFile`, else whatever the cloud's SDKs find: environment variables
    /// (`AWS_*`, `AZURE_*`, `GOOGLE_*`), default credential files and instance metadata. What
    /// a person running the CLI on their own machine or VM expects (the default).
    #[default]
    Environment,
    /// Only what the config names (`credentialsFile`, `account`, `endpoint`, `region`): no
    /// environment variable, default credential file or instance metadata is read, so a store
    /// opened by the operator for a tenant never runs under the operator's own cloud identity.
    /// Without `credentialsFile` requests are anonymous (unsigned): a public bucket answers, a
    /// private one refuses (`Forbidden`), which says exactly what is missing.
    Explicit,
}

/// Where to store backups: the fields the custom resource's `storage` section will have.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, clap::Args,
)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Kind of store.
    #[arg(long = "store", value_enum, default_value_t = StoreKind::Local)]
    pub store: StoreKind,
    /// Local store: the root directory.
    #[arg(long = "path")]
    pub path: Option<PathBuf>,
    /// S3/GCS bucket, or Azure container: the name alone, checked by that cloud's naming rules
    /// (S3: 3–63 of a–z 0–9 . -; GCS: a–z 0–9 - _ .; Azure: 3–63 of a–z 0–9 -). A folder
    /// inside it is --prefix, never part of this name.
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
    /// account JSON. Without it, the cloud's usual environment variables are used (unless
    /// --credentials explicit).
    #[arg(long)]
    pub credentials_file: Option<PathBuf>,
    /// Where credentials may come from: `environment` (the default: --credentials-file, else
    /// the cloud's environment variables, default files and instance metadata) or `explicit`
    /// (only --credentials-file; without it requests are anonymous).
    #[arg(long = "credentials", value_enum, default_value_t = CredentialsSource::Environment)]
    pub credentials: CredentialsSource,
    /// Folder inside the bucket (or local root) that holds the backups: segments separated by
    /// /, each 1–200 characters of A–Z a–z 0–9 . _ - (not starting with . or -), e.g.
    /// team/prod. The bucket or container name itself never holds a /.
    #[arg(long, default_value = "")]
    pub prefix: String,
}

/// A store opened for backups.
#[derive(Clone, Debug)]
pub struct BackupStore {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    description: String,
    /// The local store's root directory, where staged uploads are found (`None` elsewhere).
    local_root: Option<PathBuf>,
}

impl BackupStore {
    /// Opens the store a config names (no request is made yet), reading credentials only
    /// from where `config.credentials` allows.
    pub fn open(config: &StoreConfig) -> Result<Self, BackupError> {
        check_prefix(&config.prefix)?;
        naming::check_store_names(config)?;
        let (inner, description) = match config.store {
            StoreKind::Local => local::open(config)?,
            StoreKind::S3 => s3::open(config)?,
            StoreKind::Gcs => gcs::open(config)?,
            StoreKind::Azure => azure::open(config)?,
        };
        let mut store = Self::from_object_store(inner, &config.prefix, description);
        if config.store == StoreKind::Local {
            store.local_root = config.path.clone();
        }
        Ok(store)
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
            local_root: None,
        }
    }

    /// The object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// Opens the store a config names with explicit credentials only (see
    /// [`CredentialsSource::Explicit`]), whatever `config.credentials` says: what the operator
    /// calls for a tenant's store.
    pub fn open_explicit(config: &StoreConfig) -> Result<Self, BackupError> {
        Self::open(&StoreConfig {
            credentials: CredentialsSource::Explicit,
            ..config.clone()
        })
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

    /// Writes the manifest of a new backup, create-only: if a manifest of that name exists
    /// (another run won the name), nothing is written and the result is
    /// [`BackupError::AlreadyExists`].
    pub async fn create_manifest(&self, manifest: &Manifest) -> Result<(), BackupError> {
        let path = self.manifest_path(&manifest.name)?;
        match self
            .inner
            .put_opts(
                &path,
                PutPayload::from(manifest.to_json()?),
                PutMode::Create.into(),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                Err(BackupError::AlreadyExists(manifest.name.clone()))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Rewrites an existing backup's manifest (a key rotation).
    pub async fn write_manifest(&self, manifest: &Manifest) -> Result<(), BackupError> {
        let path = self.manifest_path(&manifest.name)?;
        self.inner
            .put(&path, PutPayload::from(manifest.to_json()?))
            .await?;
        Ok(())
    }

    /// The names of every backup under the prefix (folders with a manifest), sorted.
    pub async fn list_backup_names(&self) -> Result<Vec<String>, BackupError> {
        Ok(self
            .backup_folders()
            .await?
            .into_iter()
            .filter(|folder| folder.has_manifest)
            .map(|folder| folder.name)
            .collect())
    }

    /// Deletes backup `name`: its own objects only (see [`folders`]), the manifest first so a
    /// half-deleted backup no longer looks like one. Backups in folders below it are untouched.
    pub async fn delete_backup(&self, name: &str) -> Result<(), BackupError> {
        self.delete_own_objects(name).await
    }

    /// Deletes what a failed or interrupted run of backup `name` left: the same own objects as
    /// [`BackupStore::delete_backup`], never anything in a folder below.
    pub async fn delete_folder(&self, name: &str) -> Result<(), BackupError> {
        self.delete_own_objects(name).await
    }
}

pub use crate::format::VERIFICATION_NAME;

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
/// A directory (a mounted Kubernetes Secret: one file per key) reads as `KEY=VALUE` lines, one
/// per file; hidden entries (the volume's `..data` links) are skipped.
pub(crate) fn read_credentials_file(path: &std::path::Path) -> Result<Vec<String>, BackupError> {
    if path.is_dir() {
        return read_credentials_dir(path);
    }
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

/// `KEY=VALUE` lines from a directory of one file per key (see [`read_credentials_file`]).
fn read_credentials_dir(path: &std::path::Path) -> Result<Vec<String>, BackupError> {
    let unreadable = |error: std::io::Error| {
        BackupError::Config(format!(
            "cannot read the credentials directory {}: {error}",
            path.display()
        ))
    };
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(path).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_file() {
            continue;
        }
        let value = std::fs::read_to_string(entry.path()).map_err(unreadable)?;
        lines.push(format!("{name}={}", value.trim()));
    }
    lines.sort();
    Ok(lines)
}

#[cfg(test)]
mod credentials_dir_tests {
    #[test]
    fn a_mounted_secret_directory_reads_as_key_value_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("AWS_SECRET_ACCESS_KEY"), "s3cr3t\n").unwrap();
        std::fs::write(dir.path().join("AWS_ACCESS_KEY_ID"), "AKID").unwrap();
        std::fs::create_dir(dir.path().join("..data")).unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        let lines = super::read_credentials_file(dir.path()).unwrap();
        assert_eq!(
            lines,
            ["AWS_ACCESS_KEY_ID=AKID", "AWS_SECRET_ACCESS_KEY=s3cr3t"]
        );
    }
}
