//! The engine's settings (`SourceConfig`, `StoreConfig`, encryption, compression) from a run's
//! custom-resource fields, with every Secret as a mounted file (see [`Mounts`]).

use super::mounts::{LOCAL_STORE_PATH, Mounts};
use super::resolve::ResolveError;
use crate::api::object_copy::ObjectCopySpec;
use crate::api::policy::{CompressionAlgorithm, CompressionSpec, EncryptionSpec};
use crate::api::storage::{StorageSpec, StoreKind};
use crate::api::target::{EngineKind, ServerConnection};
use crate::engine::objects::ObjectCopyConfig;
use crate::engine::spec;
use crate::source::mariadb::MariadbConfig;
use crate::source::postgres::PostgresConfig;
use crate::source::redis::RedisConfig;
use crate::source::{PasswordSource, SourceConfig};
use crate::store::StoreConfig;

/// Secret keys of an S3 store's credentials Secret (the CRD's `credentialsSecretRef` doc).
const AZURE_KEY: &str = "AZURE_STORAGE_ACCOUNT_KEY";
const GCS_KEY: &str = "service-account.json";
const S3_KEYS: [&str; 2] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];

/// The engine's connection settings for `connection`, the password as a mounted file.
/// `database` is the PostgreSQL database (required for postgres), `databases` MariaDB's list.
pub fn source_config(
    connection: &ServerConnection,
    database: Option<&str>,
    databases: &[String],
    mounts: &mut Mounts,
) -> Result<SourceConfig, ResolveError> {
    let password = match &connection.password_secret_ref {
        Some(reference) => PasswordSource::File(mounts.secret_file(reference)),
        None => PasswordSource::None,
    };
    let port = |default: u16| {
        connection
            .port
            .and_then(|port| u16::try_from(port).ok())
            .unwrap_or(default)
    };
    let timeout = connection
        .connect_timeout_seconds
        .and_then(|seconds| u64::try_from(seconds).ok())
        .unwrap_or(10);
    let user = || {
        connection
            .user
            .clone()
            .ok_or_else(|| ResolveError::Unsupported("the target needs `user`".into()))
    };
    Ok(match connection.engine {
        EngineKind::Postgres => SourceConfig::Postgres(PostgresConfig {
            host: connection.host.clone(),
            port: port(5432),
            user: user()?,
            password,
            database: database
                .ok_or_else(|| {
                    ResolveError::Unsupported("a postgres target needs `database`".into())
                })?
                .to_owned(),
            maintenance_database: "postgres".into(),
            bin_dir: None,
            connect_timeout_seconds: timeout,
        }),
        EngineKind::Mariadb => SourceConfig::Mariadb(MariadbConfig {
            host: connection.host.clone(),
            port: port(3306),
            user: user()?,
            password,
            databases: databases.to_vec(),
            routines: true,
            events: true,
            bin_dir: None,
            connect_timeout_seconds: timeout,
        }),
        EngineKind::Redis => SourceConfig::Redis(RedisConfig {
            host: connection.host.clone(),
            port: port(6379),
            username: connection.user.clone(),
            password,
            bin_dir: None,
        }),
    })
}

/// The engine's store settings for `storage`, credentials as mounted files: S3 gets the
/// Secret's directory (one file per key, read as `KEY=VALUE` lines), Azure and GCS the file of
/// their one key.
pub fn store_config(storage: &StorageSpec, mounts: &mut Mounts) -> StoreConfig {
    let credentials_file = storage
        .credentials_secret_ref
        .as_ref()
        .and_then(|credentials| match storage.store {
            StoreKind::S3 => Some(mounts.secret_dir(&credentials.name)),
            StoreKind::Azure => Some(mounts.secret_dir(&credentials.name).join(AZURE_KEY)),
            StoreKind::Gcs => Some(mounts.secret_dir(&credentials.name).join(GCS_KEY)),
            StoreKind::Local => None,
        });
    let (store, path) = match storage.store {
        StoreKind::Local => {
            mounts.claim = storage
                .persistent_volume_claim
                .as_ref()
                .map(|claim| claim.name.clone());
            (
                crate::store::StoreKind::Local,
                Some(LOCAL_STORE_PATH.into()),
            )
        }
        StoreKind::S3 => (crate::store::StoreKind::S3, None),
        StoreKind::Gcs => (crate::store::StoreKind::Gcs, None),
        StoreKind::Azure => (crate::store::StoreKind::Azure, None),
    };
    StoreConfig {
        store,
        path,
        bucket: storage.bucket.clone(),
        endpoint: storage.endpoint.clone(),
        region: storage.region.clone(),
        path_style: storage.path_style,
        account: storage.account.clone(),
        credentials_file,
        // A tenant's run never falls back to the operator's own cloud identity.
        credentials: crate::store::CredentialsSource::Explicit,
        prefix: storage.prefix.clone().unwrap_or_default(),
    }
}

/// The engine's object-copy settings for an `objectStore` part: the source bucket with its
/// credentials as mounted files (like [`store_config`]), the folder, the globs and `full`.
pub fn object_copy_config(objects: &ObjectCopySpec, mounts: &mut Mounts) -> ObjectCopyConfig {
    ObjectCopyConfig {
        source: store_config(&objects.source, mounts),
        prefix: objects.prefix.clone().unwrap_or_default(),
        include: objects.include.clone(),
        exclude: objects.exclude.clone(),
        full: objects.full.unwrap_or(false),
        // The engine's default: bounded memory per run, whatever the bucket holds.
        parallelism: None,
    }
}

/// The engine's encryption settings: key files, or disabled.
pub fn encryption(encryption: &EncryptionSpec, mounts: &mut Mounts) -> spec::EncryptionSpec {
    spec::EncryptionSpec {
        key_file: encryption
            .key_secret_ref
            .as_ref()
            .map(|reference| mounts.secret_file(reference)),
        key_env: None,
        key_id: None,
        previous_key_files: encryption
            .previous_key_secret_refs
            .iter()
            .map(|reference| mounts.secret_file(reference))
            .collect(),
        disabled: encryption.disabled.unwrap_or(false),
    }
}

/// The engine's compression name and level.
pub fn compression(compression: Option<&CompressionSpec>) -> (String, Option<i32>) {
    match compression {
        None => ("zstd".into(), Some(1)),
        Some(spec) => {
            let name = match spec.algorithm {
                CompressionAlgorithm::Zstd => "zstd",
                CompressionAlgorithm::Gzip => "gzip",
                CompressionAlgorithm::None => "none",
            };
            let level = match spec.algorithm {
                CompressionAlgorithm::Zstd => Some(spec.level.unwrap_or(1)),
                CompressionAlgorithm::Gzip => spec.level,
                CompressionAlgorithm::None => None,
            };
            (name.into(), level)
        }
    }
}

/// The (secret, key) pairs of a store's credentials Secret (none without one).
pub fn store_secret_keys(storage: &StorageSpec) -> Vec<(String, String)> {
    let Some(credentials) = &storage.credentials_secret_ref else {
        return Vec::new();
    };
    let store_keys: &[&str] = match storage.store {
        StoreKind::S3 => &S3_KEYS,
        StoreKind::Azure => &[AZURE_KEY],
        StoreKind::Gcs => &[GCS_KEY],
        StoreKind::Local => &[],
    };
    store_keys
        .iter()
        .map(|key| (credentials.name.clone(), (*key).to_owned()))
        .collect()
}
