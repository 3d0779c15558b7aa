//! Amazon S3 and S3-compatible servers (custom endpoint, path-style addressing, region).
//! Credentials: `--credentials-file`, else the usual `AWS_*` environment variables (and the
//! instance/web-identity providers object_store supports).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

use super::{StoreConfig, read_credentials_file};
use crate::error::BackupError;

/// Opens an S3 bucket.
pub fn open(config: &StoreConfig) -> Result<(Arc<dyn ObjectStore>, String), BackupError> {
    let bucket = config
        .bucket
        .clone()
        .ok_or_else(|| BackupError::Config("the s3 store needs --bucket".into()))?;
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
    if let Some(region) = &config.region {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    let path_style = config.path_style.unwrap_or(config.endpoint.is_some());
    builder = builder.with_virtual_hosted_style_request(!path_style);
    if let Some(path) = &config.credentials_file {
        let (pairs, bare) = read_credentials_file(path)?;
        let find = |names: &[&str]| {
            pairs
                .iter()
                .find(|(key, _)| names.iter().any(|name| key.eq_ignore_ascii_case(name)))
                .map(|(_, value)| value.clone())
        };
        let access = find(&["AWS_ACCESS_KEY_ID", "accessKeyId", "access_key_id"])
            .or_else(|| bare.first().cloned());
        let secret = find(&[
            "AWS_SECRET_ACCESS_KEY",
            "secretAccessKey",
            "secret_access_key",
        ])
        .or_else(|| bare.get(1).cloned());
        match (access, secret) {
            (Some(access), Some(secret)) => {
                builder = builder
                    .with_access_key_id(access)
                    .with_secret_access_key(secret);
            }
            _ => {
                return Err(BackupError::Config(format!(
                    "the credentials file {} holds no access key id and secret access key",
                    path.display()
                )));
            }
        }
        if let Some(token) = find(&["AWS_SESSION_TOKEN", "sessionToken"]) {
            builder = builder.with_token(token);
        }
    }
    let store = builder
        .build()
        .map_err(|error| BackupError::Config(format!("s3 store: {error}")))?;
    let where_ = match &config.endpoint {
        Some(endpoint) => format!("s3://{bucket} at {endpoint}"),
        None => format!("s3://{bucket}"),
    };
    Ok((Arc::new(store), where_))
}
