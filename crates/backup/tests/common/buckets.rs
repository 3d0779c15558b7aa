//! Helpers for the bucket copy tests: buckets on the real S3 server (s3s-fs), Azurite and
//! fake-gcs-server, filling them, listing them, and backup runs with an object part. Include
//! with `#[path = "common/buckets.rs"] mod buckets;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path as FsPath;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio_util::sync::CancellationToken;
use vertice_backup::engine::{
    self, BackupInput, BackupReport, BackupRun, EncryptionSpec, ObjectCopyConfig, PipelineSettings,
    Progress,
};
use vertice_backup::error::BackupError;
use vertice_backup::store::{BackupStore, StoreConfig, StoreKind};
use vertice_testkit::services::{Azurite, FakeGcs, S3Server};

/// One of the three emulated clouds, started for one test.
pub enum Cloud {
    S3(S3Server),
    Azure(Azurite),
    Gcs(FakeGcs),
}

/// Which cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    S3,
    Azure,
    Gcs,
}

pub const ALL: [Kind; 3] = [Kind::S3, Kind::Azure, Kind::Gcs];

impl Cloud {
    /// Starts the cloud's server (fails with install instructions when it is missing).
    pub async fn start(kind: Kind) -> Cloud {
        match kind {
            Kind::S3 => Cloud::S3(S3Server::start().await.unwrap()),
            Kind::Azure => Cloud::Azure(Azurite::start().await.unwrap()),
            Kind::Gcs => Cloud::Gcs(FakeGcs::start().await.unwrap()),
        }
    }

    /// Creates bucket (container) `name`.
    pub async fn create_bucket(&self, name: &str) {
        match self {
            Cloud::S3(server) => server.create_bucket(name).unwrap(),
            Cloud::Azure(server) => server.create_container(name).await.unwrap(),
            Cloud::Gcs(server) => server.create_bucket(name).await.unwrap(),
        }
    }

    /// The store config of bucket `name` with prefix `prefix`, its credentials written to a
    /// file in `dir`.
    pub fn config(&self, name: &str, prefix: &str, dir: &FsPath) -> StoreConfig {
        let file = dir.join(format!("credentials-{}", rand_suffix()));
        let mut config = match self {
            Cloud::S3(server) => {
                std::fs::write(&file, server.credentials_file()).unwrap();
                StoreConfig {
                    store: StoreKind::S3,
                    endpoint: Some(server.endpoint()),
                    region: Some(server.region().into()),
                    ..StoreConfig::default()
                }
            }
            Cloud::Azure(server) => {
                std::fs::write(&file, server.account_key()).unwrap();
                StoreConfig {
                    store: StoreKind::Azure,
                    endpoint: Some(server.endpoint()),
                    account: Some(server.account().into()),
                    ..StoreConfig::default()
                }
            }
            Cloud::Gcs(server) => {
                std::fs::write(&file, server.service_account_key()).unwrap();
                StoreConfig {
                    store: StoreKind::Gcs,
                    endpoint: Some(server.endpoint()),
                    ..StoreConfig::default()
                }
            }
        };
        config.bucket = Some(name.into());
        config.credentials_file = Some(file);
        config.prefix = prefix.into();
        config
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The bucket of `config` (its prefix ignored), opened.
pub fn bucket(config: &StoreConfig) -> BackupStore {
    BackupStore::open(&StoreConfig {
        prefix: String::new(),
        ..config.clone()
    })
    .unwrap()
}

/// Puts every `(key, bytes)` into `bucket`, 32 at a time; panics naming every key that failed.
pub async fn put_all(bucket: &BackupStore, objects: &BTreeMap<String, Vec<u8>>) {
    let failed: Vec<String> = futures::stream::iter(objects.iter())
        .map(|(key, bytes)| async move {
            bucket
                .object_store()
                .put(&Path::parse(key).unwrap(), PutPayload::from(bytes.clone()))
                .await
                .err()
                .map(|error| format!("{key:?}: {error}"))
        })
        .buffer_unordered(32)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    assert!(failed.is_empty(), "puts failed:\n{}", failed.join("\n"));
}

/// Every object under `prefix` (`""`: all) with its bytes, keys relative to the prefix.
pub async fn read_all(bucket: &BackupStore, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let trimmed = prefix.trim_matches('/');
    let list_prefix = (!trimmed.is_empty()).then(|| Path::parse(trimmed).unwrap());
    let metas: Vec<_> = bucket
        .object_store()
        .list(list_prefix.as_ref())
        .try_collect()
        .await
        .unwrap();
    let strip = if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    };
    futures::stream::iter(metas)
        .map(|meta| {
            let strip = strip.clone();
            async move {
                let bytes = bucket
                    .object_store()
                    .get(&meta.location)
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                let key = meta
                    .location
                    .as_ref()
                    .strip_prefix(&strip)
                    .unwrap()
                    .to_string();
                (key, bytes.to_vec())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await
}

/// The keys of every object under `prefix` in `bucket`.
pub async fn keys_under(bucket: &BackupStore, prefix: &str) -> Vec<String> {
    let path = Path::parse(prefix).unwrap();
    let mut keys: Vec<String> = bucket
        .object_store()
        .list(Some(&path))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

/// Backs up `objects` (no database part) into `store` as backup `name`, unencrypted.
pub async fn backup_objects(
    store: &BackupStore,
    name: &str,
    objects: ObjectCopyConfig,
) -> Result<BackupReport, BackupError> {
    backup_objects_with(
        store,
        name,
        objects,
        EncryptionSpec {
            disabled: true,
            ..EncryptionSpec::default()
        },
    )
    .await
}

/// [`backup_objects`] with the given encryption.
pub async fn backup_objects_with(
    store: &BackupStore,
    name: &str,
    objects: ObjectCopyConfig,
    encryption: EncryptionSpec,
) -> Result<BackupReport, BackupError> {
    let run = BackupRun {
        name: Some(name.into()),
        input: BackupInput::Nothing,
        pipeline: PipelineSettings::default(),
        encryption,
        labels: BTreeMap::new(),
        objects: Some(objects),
    };
    engine::backup(store, &run, &Progress::new(), &CancellationToken::new()).await
}

/// An object copy of `prefix` in the bucket `source` names.
pub fn copy_of(source: &StoreConfig, prefix: &str) -> ObjectCopyConfig {
    ObjectCopyConfig {
        source: source.clone(),
        prefix: prefix.into(),
        ..ObjectCopyConfig::default()
    }
}

/// Deterministic bytes for object number `seed` of `len` bytes.
pub fn bytes_for(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
