//! Opening a VerticeBackup's store inside the operator, for retention and `deletionPolicy:
//! Delete`, with the one opener the runs use ([`secret_files::open_store`]: the engine's store
//! with explicit credentials from the Secret — never the operator's own cloud identity), and
//! errors a policy's condition can name. Secret values reach the store client and nowhere else.

use k8s_openapi::api::core::v1::Secret;
use vertice_core::Context;

use super::engine_config::store_secret_keys;
use super::resolve::{self, ResolveError};
use super::secret_files::{self, SecretFiles};
use crate::api::storage::{StorageSpec, StoreKind};
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
        .map_err(|error| match error {
            ResolveError::SecretNotFound(name) => StoreAccessError::SecretNotFound(name),
            ResolveError::SecretKeyMissing { key, .. } => {
                StoreAccessError::Missing { store, field: key }
            }
            ResolveError::Kube(source) => StoreAccessError::SecretRead {
                name: credentials.name.clone(),
                source,
            },
            other => StoreAccessError::Settings {
                store,
                message: other.to_string(),
            },
        })?;
    match secret_files::open_store(&secrets, storage).await {
        Ok(Some(opened)) => Ok(opened),
        Ok(None) => Err(StoreAccessError::LocalStore),
        Err(error) => Err(StoreAccessError::Settings {
            store,
            message: error.to_string(),
        }),
    }
}
