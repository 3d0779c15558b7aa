//! Secrets the operator itself needs as files: the in-process executor runs the same engine
//! code as a Job, which reads passwords, keys and store credentials from files (the spec
//! never holds values), and the operator opens a run's store to read its manifest or probe it.
//!
//! Why files and not values in memory: the engine's spec only names files or environment
//! variables (so a spec can be logged and put in a Job), and the in-process run must take the
//! very same path as the Job. The files live in a private temporary directory (mode 0700, each
//! file 0600, removed when [`SecretFiles`] drops), laid out like the Job's mounts
//! (`<root>/<volume>/<key>`), and their contents are never logged.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::mounts::Mounts;
use super::resolve::ResolveError;
use crate::api::storage::StorageSpec;
use crate::store::BackupStore;

/// A private directory holding Secret files; deleted on drop.
#[derive(Debug)]
pub struct SecretFiles {
    dir: tempfile::TempDir,
}

impl SecretFiles {
    /// A new empty directory (mode 0700).
    pub fn new() -> Result<Self, ResolveError> {
        let dir = tempfile::Builder::new()
            .prefix("vertice-run-")
            .tempdir()
            .map_err(ResolveError::LocalFiles)?;
        Ok(Self { dir })
    }

    /// The mount root to build a spec with ([`Mounts::new`]).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes every key of every Secret in `mounts` under its volume directory.
    /// Errors: a missing Secret ([`ResolveError::SecretNotFound`]), API or file errors.
    pub async fn write(&self, secrets: &Api<Secret>, mounts: &Mounts) -> Result<(), ResolveError> {
        for volume in &mounts.secrets {
            let secret = secrets
                .get_opt(&volume.secret)
                .await
                .map_err(ResolveError::Kube)?
                .ok_or_else(|| ResolveError::SecretNotFound(volume.secret.clone()))?;
            let dir = mounts.root().join(&volume.volume);
            std::fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(&dir)
                .map_err(ResolveError::LocalFiles)?;
            for (key, value) in secret.data.iter().flatten() {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(dir.join(key))
                    .map_err(ResolveError::LocalFiles)?;
                file.write_all(&value.0).map_err(ResolveError::LocalFiles)?;
            }
        }
        Ok(())
    }
}

/// Opens `storage` from the operator, its credentials read from their Secret into a private
/// directory kept alive by the returned [`SecretFiles`] for as long as the store is used.
/// A `local` store (a PersistentVolumeClaim) cannot be opened here: `Ok(None)`.
pub async fn open_store(
    secrets: &Api<Secret>,
    storage: &StorageSpec,
) -> Result<Option<(BackupStore, SecretFiles)>, ResolveError> {
    if storage.store == crate::api::storage::StoreKind::Local {
        return Ok(None);
    }
    let files = SecretFiles::new()?;
    let mut mounts = Mounts::new(files.root());
    let config = super::engine_config::store_config(storage, &mut mounts);
    files.write(secrets, &mounts).await?;
    let store = BackupStore::open(&config)
        .map_err(|error| ResolveError::Unsupported(format!("cannot open the store: {error}")))?;
    Ok(Some((store, files)))
}
