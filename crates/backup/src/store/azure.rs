//! Azure Blob Storage. `--bucket` is the container, `--account` the storage account.
//! Credentials: `--credentials-file` (the account key), else the `AZURE_*` environment
//! variables (account key, SAS, service principal, workload identity) — or, with explicit
//! credentials ([`super::CredentialsSource::Explicit`]), the file only, and unsigned
//! (anonymous) requests without one; `--account` is then required.
//! `--endpoint` is the account's blob URL, e.g. Azurite's `http://127.0.0.1:10000/devstoreaccount1`.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::azure::MicrosoftAzureBuilder;

use super::{CredentialsSource, StoreConfig};
use crate::error::BackupError;

/// Opens an Azure container.
pub fn open(config: &StoreConfig) -> Result<(Arc<dyn ObjectStore>, String), BackupError> {
    let container = config.bucket.clone().ok_or_else(|| {
        BackupError::Config("the azure store needs --bucket (the container)".into())
    })?;
    let explicit = config.credentials == CredentialsSource::Explicit;
    let builder = if explicit {
        MicrosoftAzureBuilder::new()
    } else {
        MicrosoftAzureBuilder::from_env()
    };
    let mut builder = builder.with_container_name(&container);
    if explicit && config.account.is_none() {
        return Err(BackupError::Config(
            "the azure store needs --account (explicit credentials read no AZURE_* variable)"
                .into(),
        ));
    }
    if let Some(account) = &config.account {
        builder = builder.with_account(account);
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder
            .with_endpoint(endpoint.clone())
            .with_allow_http(endpoint.starts_with("http://"));
    }
    if let Some(path) = &config.credentials_file {
        let key = std::fs::read_to_string(path).map_err(|error| {
            BackupError::Config(format!(
                "cannot read the credentials file {}: {error}",
                path.display()
            ))
        })?;
        builder = builder.with_access_key(key.trim());
    } else if explicit {
        // Without a key "auto" credentials would end at the instance's managed identity.
        builder = builder.with_skip_signature(true);
    }
    let store = builder
        .build()
        .map_err(|error| BackupError::Config(format!("azure store: {error}")))?;
    let where_ = match &config.endpoint {
        Some(endpoint) => format!("azure container {container} at {endpoint}"),
        None => format!("azure container {container}"),
    };
    Ok((Arc::new(store), where_))
}
