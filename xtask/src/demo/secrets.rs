//! The Secrets the examples refer to, created by the demo with fresh random values (nothing
//! secret is in the example files or printed).

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::Context;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

/// The database login's password (key `password`).
pub const DATABASE: &str = "shop-db";
/// The S3 credentials (keys `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
pub const STORE: &str = "backup-store";
/// The key-encryption key (key `key`, 64 hex digits = 32 bytes).
pub const KEY: &str = "backup-key";
/// The failure webhook's URL (key `url`; it is a Secret because real webhook URLs carry tokens).
pub const WEBHOOK: &str = "ops-webhook";
/// The credentials the project backup copies the uploads bucket with (keys like [`STORE`]'s).
/// In production this is a read-and-list-only identity; the demo's S3 server has one identity,
/// so it holds the same keys as [`STORE`].
pub const UPLOADS_READER: &str = "uploads-reader";
/// Every Secret the demo creates.
pub const NAMES: [&str; 5] = [DATABASE, STORE, KEY, WEBHOOK, UPLOADS_READER];

/// The values of the demo's Secrets.
pub struct SecretValues {
    /// Password of the database login.
    pub database_password: String,
    /// S3 access key id.
    pub s3_access_key: String,
    /// S3 secret access key.
    pub s3_secret_key: String,
    /// The key-encryption key, hex.
    pub encryption_key_hex: String,
    /// Where failure notifications go.
    pub webhook_url: String,
}

/// Creates the Secrets of [`NAMES`] in `namespace`.
///
/// Errors: the apiserver refused one (e.g. it exists already).
pub async fn create(
    client: &kube::Client,
    namespace: &str,
    values: &SecretValues,
) -> anyhow::Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let s3_keys = vec![
        ("AWS_ACCESS_KEY_ID", &values.s3_access_key),
        ("AWS_SECRET_ACCESS_KEY", &values.s3_secret_key),
    ];
    let secrets = [
        (DATABASE, vec![("password", &values.database_password)]),
        (STORE, s3_keys.clone()),
        (UPLOADS_READER, s3_keys),
        (KEY, vec![("key", &values.encryption_key_hex)]),
        (WEBHOOK, vec![("url", &values.webhook_url)]),
    ];
    for (name, entries) in secrets {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            string_data: Some(
                entries
                    .into_iter()
                    .map(|(key, value)| (key.to_owned(), value.clone()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        };
        api.create(&PostParams::default(), &secret)
            .await
            .with_context(|| format!("creating Secret {name}"))?;
    }
    Ok(())
}

/// `bytes` random bytes from the kernel, as lowercase hex.
///
/// Errors: `/dev/urandom` cannot be read.
pub fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buffer = vec![0_u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut buffer))
        .context("reading /dev/urandom")?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_has_the_length_asked_and_differs_each_time() {
        let first = random_hex(32).unwrap_or_else(|e| panic!("{e:#}"));
        let second = random_hex(32).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(first.len(), 64);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(first, second);
    }
}
