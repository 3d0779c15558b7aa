//! Google Cloud Storage. Credentials: `--credentials-file` (a service account JSON), else
//! `GOOGLE_SERVICE_ACCOUNT`/`GOOGLE_APPLICATION_CREDENTIALS`, the gcloud default credentials
//! file and the metadata server — or, with explicit credentials
//! ([`super::CredentialsSource::Explicit`]), the file only, and anonymous requests without one.
//! `--endpoint` points at another GCS-compatible server (e.g. fake-gcs-server, where OAuth is
//! disabled).
//!
//! Reads, lists and deletes go through object_store; writes through Google's JSON API
//! ([`store::GcsStore`]), because object_store writes with the XML API, which GCS emulators
//! lack (fake-gcs-server#331).

pub(crate) mod error;
mod json_api;
mod resumable;
mod store;

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::StaticCredentialProvider;
use object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder, GoogleConfigKey};

use super::{CredentialsSource, StoreConfig};
use crate::error::BackupError;

/// Where Google serves GCS (object_store's default too).
const GOOGLE_BASE_URL: &str = "https://storage.googleapis.com";

/// Opens a GCS bucket.
pub fn open(config: &StoreConfig) -> Result<(Arc<dyn ObjectStore>, String), BackupError> {
    let bucket = config
        .bucket
        .clone()
        .ok_or_else(|| BackupError::Config("the gcs store needs --bucket".into()))?;
    let explicit = config.credentials == CredentialsSource::Explicit;
    let builder = if explicit {
        GoogleCloudStorageBuilder::new()
    } else {
        GoogleCloudStorageBuilder::from_env()
    };
    let mut builder = builder.with_bucket_name(&bucket);
    if let Some(path) = &config.credentials_file {
        builder = builder.with_service_account_path(path.to_string_lossy());
    } else if explicit && config.endpoint.is_none() {
        // Anonymous: an empty token (our JSON client then sends no Authorization header) and
        // unsigned reads. Naming a credential also keeps object_store from reading the gcloud
        // default credentials file in the home directory, and from the metadata server.
        builder = builder
            .with_credentials(Arc::new(StaticCredentialProvider::new(GcpCredential {
                bearer: String::new(),
            })))
            .with_skip_signature(true);
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_base_url(endpoint);
        let has_account = builder
            .get_config_value(&GoogleConfigKey::ServiceAccount)
            .is_some()
            || builder
                .get_config_value(&GoogleConfigKey::ServiceAccountKey)
                .is_some();
        if !has_account {
            // An emulator: no OAuth.
            builder = builder.with_service_account_key(
                r#"{"disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}"#,
            );
        }
    }
    let base_url = base_url(&builder)?;
    let inner = builder
        .build()
        .map_err(|error| BackupError::Config(format!("gcs store: {error}")))?;
    let api = json_api::JsonApi::new(&base_url, &bucket, Arc::clone(inner.credentials()))
        .map_err(|error| BackupError::Config(format!("gcs store: {error}")))?;
    let where_ = match &config.endpoint {
        Some(endpoint) => format!("gs://{bucket} at {endpoint}"),
        None => format!("gs://{bucket}"),
    };
    Ok((Arc::new(store::GcsStore::new(inner, api)), where_))
}

/// The URL object_store will send requests to, found the way its builder finds it: the
/// configured base URL, else the service account's `gcs_base_url`, else Google's. Writes
/// must go to the same server as reads.
fn base_url(builder: &GoogleCloudStorageBuilder) -> Result<String, BackupError> {
    if let Some(url) = builder.get_config_value(&GoogleConfigKey::BaseUrl) {
        return Ok(url);
    }
    let account = match (
        builder.get_config_value(&GoogleConfigKey::ServiceAccountKey),
        builder.get_config_value(&GoogleConfigKey::ServiceAccount),
    ) {
        (Some(key), _) => Some(key),
        (None, Some(path)) => Some(std::fs::read_to_string(&path).map_err(|error| {
            BackupError::Config(format!(
                "cannot read the GCS service account file {path}: {error}"
            ))
        })?),
        (None, None) => None,
    };
    let from_account = account
        .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
        .and_then(|json| {
            json.get("gcs_base_url")
                .and_then(|url| url.as_str())
                .map(str::to_string)
        });
    Ok(from_account.unwrap_or_else(|| GOOGLE_BASE_URL.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_resolve_like_object_store() {
        let plain = GoogleCloudStorageBuilder::new();
        assert_eq!(base_url(&plain).unwrap(), GOOGLE_BASE_URL);

        let key = r#"{"gcs_base_url": "http://127.0.0.1:4443", "disable_oauth": true}"#;
        let from_key = GoogleCloudStorageBuilder::new().with_service_account_key(key);
        assert_eq!(base_url(&from_key).unwrap(), "http://127.0.0.1:4443");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("account.json");
        std::fs::write(&file, key).unwrap();
        let from_file =
            GoogleCloudStorageBuilder::new().with_service_account_path(file.to_string_lossy());
        assert_eq!(base_url(&from_file).unwrap(), "http://127.0.0.1:4443");

        let explicit = from_file.with_base_url("http://127.0.0.1:9999");
        assert_eq!(base_url(&explicit).unwrap(), "http://127.0.0.1:9999");
    }
}
