//! Helpers for the pipeline tests: deterministic pseudo-random dumps, stores, keys, and
//! backup/restore wrappers. Include with `#[path = "common/pipeline.rs"] mod pipeline;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vertice_backup::backup::{BackupOptions, DumpInput, run_backup};
use vertice_backup::error::BackupError;
use vertice_backup::keys::{KeyEncryptionKey, KeyRing};
use vertice_backup::manifest::Manifest;
use vertice_backup::manifest_seal::ManifestSealKey;
use vertice_backup::pipeline::upload::UploadLimits;
use vertice_backup::progress::Progress;
use vertice_backup::restore::VerifiedBackup;
use vertice_backup::source::{DumpStream, SourceError};
use vertice_backup::store::{BackupStore, StoreConfig, StoreKind};
use vertice_backup::verify::OpenedBackup;
use vertice_testkit::services::S3Server;

/// `len` bytes that compress a little (half random, half repetitive), reproducibly.
pub fn dump_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if (out.len() / 4096) % 2 == 0 {
            out.extend_from_slice(&state.to_le_bytes());
        } else {
            out.extend_from_slice(b"INSERT 42\n");
        }
    }
    out.truncate(len);
    out
}

/// A local store in a temp dir.
pub fn local_store(dir: &std::path::Path) -> BackupStore {
    BackupStore::open(&StoreConfig {
        store: StoreKind::Local,
        path: Some(dir.to_path_buf()),
        prefix: "team/app".into(),
        ..StoreConfig::default()
    })
    .unwrap()
}

/// A bucket on testkit's S3 server, with the server's credentials in a file under `dir`.
pub fn s3_store(server: &S3Server, bucket: &str, dir: &std::path::Path) -> BackupStore {
    s3_store_at(server, &server.endpoint(), bucket, dir)
}

/// A bucket on testkit's S3 server reached at `endpoint` (the server's, or a proxy's).
pub fn s3_store_at(
    server: &S3Server,
    endpoint: &str,
    bucket: &str,
    dir: &std::path::Path,
) -> BackupStore {
    let credentials = dir.join("s3-credentials");
    std::fs::write(&credentials, server.credentials_file()).unwrap();
    BackupStore::open(&StoreConfig {
        store: StoreKind::S3,
        bucket: Some(bucket.into()),
        endpoint: Some(endpoint.to_string()),
        region: Some(server.region().into()),
        credentials_file: Some(credentials),
        prefix: "team/app".into(),
        ..StoreConfig::default()
    })
    .unwrap()
}

/// A key from a byte.
pub fn key(byte: u8) -> KeyEncryptionKey {
    KeyEncryptionKey::from_material(&[byte; 32], None).unwrap()
}

/// Seals an edited manifest again, as only a holder of the key-encryption key `kek` can: the
/// tests use it to reach the checks that stand behind the seal.
pub fn reseal(manifest: &mut Manifest, kek: &KeyEncryptionKey) {
    let backup_id = manifest.backup_id_bytes().unwrap();
    let data_key = kek
        .unwrap_key(&backup_id, manifest.encryption.as_ref().unwrap())
        .unwrap();
    ManifestSealKey::derive(&data_key).seal(manifest).unwrap();
}

/// Small chunks and objects, so a few MB spread over many chunks and several objects.
pub fn small_options(name: &str, key: Option<KeyEncryptionKey>) -> BackupOptions {
    let mut options = BackupOptions::new(name, key);
    options.chunk_size = 64 * 1024;
    options.upload = UploadLimits {
        part_size: 5 * 1024 * 1024,
        concurrency: 2,
        max_object_size: 1024 * 1024,
    };
    options
}

/// Backs up `data`.
pub async fn backup_bytes(
    store: &BackupStore,
    options: &BackupOptions,
    data: Vec<u8>,
) -> Result<Manifest, BackupError> {
    backup_input(store, options, DumpInput::plain(std::io::Cursor::new(data))).await
}

/// A dump that streams what `reader` yields and then reports that its tool failed, the way a
/// `pg_dump` that loses its server mid-dump does.
pub fn failing_dump(reader: impl tokio::io::AsyncRead + Send + 'static) -> DumpInput {
    DumpInput {
        stream: DumpStream {
            reader: Box::pin(reader),
            completion: Box::pin(async {
                Err(SourceError::Tool {
                    tool: "pg_dump".into(),
                    message: "server closed the connection unexpectedly".into(),
                })
            }),
        },
        source: None,
        databases: Vec::new(),
        counts: None,
        properties: None,
    }
}

/// Backs up `input`, never cancelled.
pub async fn backup_input(
    store: &BackupStore,
    options: &BackupOptions,
    input: DumpInput,
) -> Result<Manifest, BackupError> {
    run_backup(
        store,
        options,
        input,
        Progress::new(),
        CancellationToken::new(),
    )
    .await
}

/// Verifies, then restores into a Vec; the Vec stays empty when verification fails.
pub async fn restore_bytes(
    store: &BackupStore,
    name: &str,
    keys: &KeyRing,
    sink: &mut Vec<u8>,
) -> Result<(), BackupError> {
    let progress = Arc::new(Progress::default());
    let opened = OpenedBackup::open(store, name, keys, 2).await?;
    let verified = VerifiedBackup::verify(opened, &progress).await?;
    verified.write_to(sink, &progress).await?;
    Ok(())
}
