//! Opening a VerticeBackup's store inside the operator, for retention and `deletionPolicy:
//! Delete`: the store settings of its `storage` section with the credentials read from its
//! Secret — never from the operator's environment, so a tenant cannot borrow the operator's
//! own cloud identity. Secret values are passed to the store client and nowhere else: no log,
//! Event, status or error message holds them.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use vertice_core::Context;

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
        field: &'static str,
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
    /// The store client refused the settings (the message names no credential).
    #[error("the {store} store settings are invalid: {message}")]
    Settings {
        /// The store kind.
        store: &'static str,
        /// object_store's explanation.
        message: String,
    },
}

/// The S3 region used when the spec names none (S3-compatible servers accept any).
const DEFAULT_S3_REGION: &str = "us-east-1";

/// Opens the store `storage` names in `namespace`, with its Secret's credentials.
pub async fn open_store(
    ctx: &Context,
    namespace: &str,
    storage: &StorageSpec,
) -> Result<BackupStore, StoreAccessError> {
    let prefix = storage.prefix.clone().unwrap_or_default();
    let (inner, description): (Arc<dyn ObjectStore>, String) = match storage.store {
        StoreKind::Local => return Err(StoreAccessError::LocalStore),
        StoreKind::S3 => s3(ctx, namespace, storage).await?,
        StoreKind::Azure => azure(ctx, namespace, storage).await?,
        StoreKind::Gcs => gcs(ctx, namespace, storage).await?,
    };
    Ok(BackupStore::from_object_store(inner, &prefix, description))
}

async fn s3(
    ctx: &Context,
    namespace: &str,
    storage: &StorageSpec,
) -> Result<(Arc<dyn ObjectStore>, String), StoreAccessError> {
    let bucket = need(storage.bucket.as_ref(), "s3", "bucket")?;
    let secret = read_secret(ctx, namespace, storage).await?;
    let access = required(&secret, "s3", "AWS_ACCESS_KEY_ID")?;
    let secret_key = required(&secret, "s3", "AWS_SECRET_ACCESS_KEY")?;
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(storage.region.as_deref().unwrap_or(DEFAULT_S3_REGION))
        .with_access_key_id(access)
        .with_secret_access_key(secret_key)
        .with_virtual_hosted_style_request(
            !storage.path_style.unwrap_or(storage.endpoint.is_some()),
        );
    if let Some(token) = key(&secret, "AWS_SESSION_TOKEN") {
        builder = builder.with_token(token);
    }
    if let Some(endpoint) = &storage.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    let store = builder.build().map_err(|error| settings("s3", &error))?;
    let description = match &storage.endpoint {
        Some(endpoint) => format!("s3://{bucket} at {endpoint}"),
        None => format!("s3://{bucket}"),
    };
    Ok((Arc::new(store), description))
}

async fn azure(
    ctx: &Context,
    namespace: &str,
    storage: &StorageSpec,
) -> Result<(Arc<dyn ObjectStore>, String), StoreAccessError> {
    let container = need(storage.bucket.as_ref(), "azure", "bucket")?;
    let account = need(storage.account.as_ref(), "azure", "account")?;
    let secret = read_secret(ctx, namespace, storage).await?;
    let access_key = required(&secret, "azure", "AZURE_STORAGE_ACCOUNT_KEY")?;
    let mut builder = MicrosoftAzureBuilder::new()
        .with_container_name(container)
        .with_account(account)
        .with_access_key(access_key.trim());
    if let Some(endpoint) = &storage.endpoint {
        builder = builder
            .with_endpoint(endpoint.clone())
            .with_allow_http(endpoint.starts_with("http://"));
    }
    let store = builder.build().map_err(|error| settings("azure", &error))?;
    Ok((Arc::new(store), format!("azure container {container}")))
}

async fn gcs(
    ctx: &Context,
    namespace: &str,
    storage: &StorageSpec,
) -> Result<(Arc<dyn ObjectStore>, String), StoreAccessError> {
    let bucket = need(storage.bucket.as_ref(), "gcs", "bucket")?;
    let secret = read_secret(ctx, namespace, storage).await?;
    let account_key = required(&secret, "gcs", "service-account.json")?;
    let mut builder = GoogleCloudStorageBuilder::new()
        .with_bucket_name(bucket)
        .with_service_account_key(account_key);
    if let Some(endpoint) = &storage.endpoint {
        builder = builder.with_base_url(endpoint);
    }
    let store = builder.build().map_err(|error| settings("gcs", &error))?;
    Ok((Arc::new(store), format!("gs://{bucket}")))
}

fn need<'a>(
    value: Option<&'a String>,
    store: &'static str,
    field: &'static str,
) -> Result<&'a String, StoreAccessError> {
    value.ok_or(StoreAccessError::Missing { store, field })
}

/// The Secret key `name`, or which key is missing (the name only, never a value).
fn required(
    secret: &Secret,
    store: &'static str,
    name: &'static str,
) -> Result<String, StoreAccessError> {
    key(secret, name).ok_or(StoreAccessError::Missing { store, field: name })
}

/// object_store's build errors name settings, not their values; still, only its kind of
/// message is kept, truncated, so nothing long and unexpected reaches a condition.
fn settings(store: &'static str, error: &object_store::Error) -> StoreAccessError {
    let mut message = error.to_string();
    message.truncate(200);
    StoreAccessError::Settings { store, message }
}

async fn read_secret(
    ctx: &Context,
    namespace: &str,
    storage: &StorageSpec,
) -> Result<Secret, StoreAccessError> {
    let name = storage
        .credentials_secret_ref
        .as_ref()
        .map(|reference| reference.name.clone())
        .ok_or(StoreAccessError::Missing {
            store: "cloud",
            field: "credentialsSecretRef",
        })?;
    match ctx.api::<Secret>(namespace).get_opt(&name).await {
        Ok(Some(secret)) => Ok(secret),
        Ok(None) => Err(StoreAccessError::SecretNotFound(name)),
        Err(source) => Err(StoreAccessError::SecretRead { name, source }),
    }
}

/// The value of `name` in the Secret (`data`, else `stringData`), as text.
fn key(secret: &Secret, name: &str) -> Option<String> {
    let from_data = secret
        .data
        .as_ref()
        .and_then(|data| data.get(name))
        .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok());
    from_data
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|data| data.get(name).cloned())
        })
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}
