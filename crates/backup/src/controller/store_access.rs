//! Opening a VerticeBackup's store inside the operator, for retention and `deletionPolicy:
//! Delete`, with the one opener the runs use ([`secret_files::open_store`]: the engine's store
//! with explicit credentials from the Secret — never the operator's own cloud identity), the
//! same for its snapshot part's RDS credentials ([`snapshot_access`], so deleting a backup
//! deletes its snapshot), and errors a policy's condition can name. Secret values reach the
//! store and RDS clients and nowhere else.

use k8s_openapi::api::core::v1::Secret;
use vertice_core::Context;

use super::engine_config::store_secret_keys;
use super::mounts::Mounts;
use super::resolve::{self, ResolveError};
use super::secret_files::{self, SecretFiles};
use super::snapshot_config::{snapshot_config, snapshot_secret_keys};
use crate::api::snapshot::SnapshotTarget;
use crate::api::storage::{StorageSpec, StoreKind};
use crate::snapshot::SnapshotAccess;
use crate::store::BackupStore;

/// Why the operator cannot open a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreAccessError {
    /// A `local` store is a PersistentVolumeClaim that only runs mount; the operator cannot
    /// reach it.
    #[error(
        "a local store (a PersistentVolumeClaim) is only reachable from runs, not from the operator"
    )]
    LocalStore,
    /// The storage section lacks a field its store needs (admission normally prevents this).
    #[error("the {store} store needs `{field}`")]
    Missing {
        /// The store kind.
        store: &'static str,
        /// The missing field or Secret key.
        field: String,
    },
    /// The credentials Secret does not exist (yet).
    #[error("the store credentials Secret {0:?} does not exist")]
    SecretNotFound(String),
    /// Reading the Secret failed.
    #[error("reading the store credentials Secret {name:?} failed")]
    SecretRead {
        /// The Secret's name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The store refused the settings, or the credentials could not be laid out (the message
    /// names no credential).
    #[error("the {store} store settings are invalid: {message}")]
    Settings {
        /// The store kind.
        store: &'static str,
        /// The engine's explanation.
        message: String,
    },
}

/// The store kind's name in messages.
fn kind_name(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::Local => "local",
        StoreKind::S3 => "s3",
        StoreKind::Gcs => "gcs",
        StoreKind::Azure => "azure",
    }
}

/// Opens the store `storage` names in `namespace`, with its Secret's credentials. The returned
/// [`SecretFiles`] holds them for as long as the store is used.
pub async fn open_store(
    ctx: &Context,
    namespace: &str,
    storage: &StorageSpec,
) -> Result<(BackupStore, SecretFiles), StoreAccessError> {
    let store = kind_name(storage.store);
    if storage.store == StoreKind::Local {
        return Err(StoreAccessError::LocalStore);
    }
    let Some(credentials) = &storage.credentials_secret_ref else {
        return Err(StoreAccessError::Missing {
            store,
            field: "credentialsSecretRef".into(),
        });
    };
    let secrets = ctx.api::<Secret>(namespace);
    resolve::check_secrets(&secrets, &store_secret_keys(storage))
        .await
        .map_err(|error| access_error(error, store, &credentials.name))?;
    match secret_files::open_store(&secrets, storage).await {
        Ok(Some(opened)) => Ok(opened),
        Ok(None) => Err(StoreAccessError::LocalStore),
        Err(error) => Err(StoreAccessError::Settings {
            store,
            message: error.to_string(),
        }),
    }
}

/// The RDS credentials of a VerticeBackup's `snapshot` part in `namespace`, laid out as the
/// runs have them (the returned [`SecretFiles`] holds them while they are used), for deleting
/// the snapshots its backups record. Errors: as [`open_store`]'s, naming the snapshot part
/// (`snapshot` as the store kind); an unsupported provider is `Settings`.
pub async fn snapshot_access(
    ctx: &Context,
    namespace: &str,
    snapshot: &SnapshotTarget,
) -> Result<(SnapshotAccess, SecretFiles), StoreAccessError> {
    const PART: &str = "snapshot";
    let secret = &snapshot.credentials_secret_ref.name;
    let secrets = ctx.api::<Secret>(namespace);
    resolve::check_secrets(&secrets, &snapshot_secret_keys(snapshot))
        .await
        .map_err(|error| access_error(error, PART, secret))?;
    let settings = |error: ResolveError| access_error(error, PART, secret);
    let files = SecretFiles::new().map_err(settings)?;
    let mut mounts = Mounts::new(files.root());
    let config = snapshot_config(snapshot, &mut mounts).map_err(settings)?;
    files.write(&secrets, &mounts).await.map_err(settings)?;
    Ok((SnapshotAccess::from(&config), files))
}

/// A [`ResolveError`] from reading `secret` for `store` as a [`StoreAccessError`].
fn access_error(error: ResolveError, store: &'static str, secret: &str) -> StoreAccessError {
    match error {
        ResolveError::SecretNotFound(name) => StoreAccessError::SecretNotFound(name),
        ResolveError::SecretKeyMissing { key, .. } => {
            StoreAccessError::Missing { store, field: key }
        }
        ResolveError::Kube(source) => StoreAccessError::SecretRead {
            name: secret.to_owned(),
            source,
        },
        other => StoreAccessError::Settings {
            store,
            message: other.to_string(),
        },
    }
}
