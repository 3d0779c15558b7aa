//! Google Cloud Storage. Credentials: `--credentials-file` (a service account JSON), else
//! `GOOGLE_SERVICE_ACCOUNT`/`GOOGLE_APPLICATION_CREDENTIALS` and the metadata server.
//! `--endpoint` points at another GCS-compatible server (e.g. fake-gcs-server, where OAuth is
//! disabled).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::gcp::GoogleCloudStorageBuilder;

use super::StoreConfig;
use crate::error::BackupError;

/// Opens a GCS bucket.
pub fn open(config: &StoreConfig) -> Result<(Arc<dyn ObjectStore>, String), BackupError> {
    let bucket = config
        .bucket
        .clone()
        .ok_or_else(|| BackupError::Config("the gcs store needs --bucket".into()))?;
    let mut builder = GoogleCloudStorageBuilder::from_env().with_bucket_name(&bucket);
    if let Some(path) = &config.credentials_file {
        builder = builder.with_service_account_path(path.to_string_lossy());
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_base_url(endpoint);
        if config.credentials_file.is_none() {
            // An emulator: no OAuth.
            builder = builder.with_service_account_key(
                r#"{"disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}"#,
            );
        }
    }
    let store = builder
        .build()
        .map_err(|error| BackupError::Config(format!("gcs store: {error}")))?;
    let where_ = match &config.endpoint {
        Some(endpoint) => format!("gs://{bucket} at {endpoint}"),
        None => format!("gs://{bucket}"),
    };
    Ok((Arc::new(store), where_))
}
