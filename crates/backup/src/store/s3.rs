//! Amazon S3 and S3-compatible servers (custom endpoint, path-style addressing, region).
//! Credentials: `--credentials-file`, else the usual `AWS_*` environment variables (and the
//! instance/web-identity providers object_store supports) — or, with explicit credentials
//! ([`super::CredentialsSource::Explicit`]), the file only, and unsigned requests without one.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

use super::{CredentialsSource, StoreConfig, read_credentials_file};
use crate::error::BackupError;

/// Opens an S3 bucket.
pub fn open(config: &StoreConfig) -> Result<(Arc<dyn ObjectStore>, String), BackupError> {
    let bucket = config
        .bucket
        .clone()
        .ok_or_else(|| BackupError::Config("the s3 store needs --bucket".into()))?;
    let explicit = config.credentials == CredentialsSource::Explicit;
    // `new()` reads no environment; without keys it would still ask instance metadata, which
    // the unsigned mode below rules out.
    let builder = if explicit {
        AmazonS3Builder::new()
    } else {
        AmazonS3Builder::from_env()
    };
    let mut builder = builder.with_bucket_name(&bucket);
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
        let lines = read_credentials_file(path)?;
        let (access, secret) = access_and_secret(&lines);
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
        if let Some(token) = named_value(&lines, &SESSION_TOKEN_NAMES) {
            builder = builder.with_token(token);
        }
    } else if explicit {
        builder = builder.with_skip_signature(true);
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

const ACCESS_KEY_NAMES: [&str; 3] = ["AWS_ACCESS_KEY_ID", "accessKeyId", "access_key_id"];
const SECRET_KEY_NAMES: [&str; 3] = [
    "AWS_SECRET_ACCESS_KEY",
    "secretAccessKey",
    "secret_access_key",
];
const SESSION_TOKEN_NAMES: [&str; 3] = ["AWS_SESSION_TOKEN", "sessionToken", "session_token"];

/// The access key id and secret access key of a credentials file: from `NAME=VALUE` lines when
/// the file names them, else the first two lines as they are. Deciding on the known names, not
/// on the mere presence of `=`, keeps a bare secret that contains `=` intact.
fn access_and_secret(lines: &[String]) -> (Option<String>, Option<String>) {
    let access = named_value(lines, &ACCESS_KEY_NAMES);
    let secret = named_value(lines, &SECRET_KEY_NAMES);
    if access.is_some() || secret.is_some() {
        (access, secret)
    } else {
        (lines.first().cloned(), lines.get(1).cloned())
    }
}

/// The value of the first `NAME=VALUE` line whose name is one of `names` (any case).
pub(crate) fn named_value(lines: &[String], names: &[&str]) -> Option<String> {
    lines.iter().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        names
            .iter()
            .any(|known| name.trim().eq_ignore_ascii_case(known))
            .then(|| value.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn named_lines_are_found_in_any_order_and_case() {
        let file = lines("aws_secret_access_key = s3cr=t\nAWS_ACCESS_KEY_ID=AKID\nREGION=x");
        assert_eq!(
            access_and_secret(&file),
            (Some("AKID".into()), Some("s3cr=t".into()))
        );
    }

    #[test]
    fn bare_lines_are_taken_in_order_even_when_the_secret_holds_an_equals_sign() {
        let file = lines("AKID\nwJalr+XUtn/FEMI=K7MDENG=");
        assert_eq!(
            access_and_secret(&file),
            (Some("AKID".into()), Some("wJalr+XUtn/FEMI=K7MDENG=".into()))
        );
    }

    #[test]
    fn a_file_naming_only_one_of_the_two_lacks_the_other() {
        let file = lines("AWS_ACCESS_KEY_ID=AKID\nsomething");
        assert_eq!(access_and_secret(&file), (Some("AKID".into()), None));
    }

    #[test]
    fn a_session_token_is_optional() {
        assert_eq!(
            named_value(&lines("AKID\nsecret"), &SESSION_TOKEN_NAMES),
            None
        );
        assert_eq!(
            named_value(&lines("sessionToken=tok"), &SESSION_TOKEN_NAMES),
            Some("tok".into())
        );
    }
}
