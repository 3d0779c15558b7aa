//! Helpers for the pipeline tests: deterministic pseudo-random dumps, stores, keys, and
//! backup/restore wrappers. Include with `#[path = "common/pipeline.rs"] mod pipeline;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vertice_backup::backup::{BackupOptions, DumpInput, run_backup};
use vertice_backup::error::BackupError;
use vertice_backup::keys::{KeyEncryptionKey, KeyRing};
use vertice_backup::manifest::Manifest;
use vertice_backup::pipeline::upload::UploadLimits;
use vertice_backup::progress::Progress;
use vertice_backup::restore::VerifiedBackup;
use vertice_backup::store::{BackupStore, StoreConfig, StoreKind};
use vertice_backup::verify::OpenedBackup;

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

/// A key from a byte.
pub fn key(byte: u8) -> KeyEncryptionKey {
    KeyEncryptionKey::from_material(&[byte; 32], None).unwrap()
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
    run_backup(
        store,
        options,
        DumpInput::plain(std::io::Cursor::new(data)),
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
