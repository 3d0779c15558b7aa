//! The whole pipeline against the local filesystem store: round trips, every compression, key
//! rotation, and the failures a restore must catch before writing anything.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "common/pipeline.rs"]
mod pipeline;

use std::path::PathBuf;

use pipeline::*;
use tokio_util::sync::CancellationToken;
use vertice_backup::backup::{DumpInput, run_backup};
use vertice_backup::error::BackupError;
use vertice_backup::format::FORMAT_VERSION;
use vertice_backup::keys::{KeyEncryptionKey, KeyRing};
use vertice_backup::manifest::Manifest;
use vertice_backup::pipeline::compress::Compression;
use vertice_backup::progress::Progress;
use vertice_backup::rekey::rekey_manifest;
use vertice_backup::source::ObjectCounts;

fn data_path(root: &std::path::Path, name: &str, object: u32) -> PathBuf {
    root.join("team/app")
        .join(name)
        .join(format!("data-{object:06}.vbk"))
}

fn manifest_path(root: &std::path::Path, name: &str) -> PathBuf {
    root.join("team/app").join(name).join("manifest.json")
}

#[tokio::test]
async fn round_trips_with_every_compression_and_many_objects() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let data = dump_bytes(3 * 1024 * 1024 + 12345, 1);
    for (index, compression) in [
        Compression::Zstd { level: 3 },
        Compression::Gzip { level: 1 },
        Compression::None,
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("b{index}");
        let mut options = small_options(&name, Some(key(1)));
        options.compression = compression;
        let manifest = backup_bytes(&store, &options, data.clone()).await.unwrap();
        assert_eq!(manifest.raw_size, data.len() as u64);
        assert_eq!(manifest.chunks.len(), data.len().div_ceil(64 * 1024));
        assert!(
            manifest.objects.len() > 1,
            "{compression:?}: one object only"
        );
        if compression != Compression::None {
            assert!(manifest.stored_size < manifest.raw_size, "{compression:?}");
        }
        let mut restored = Vec::new();
        restore_bytes(&store, &name, &KeyRing::new(vec![key(1)]), &mut restored)
            .await
            .unwrap();
        assert!(restored == data, "{compression:?}: restored bytes differ");
    }
    assert_eq!(store.list_backup_names().await.unwrap(), ["b0", "b1", "b2"]);
}

#[tokio::test]
async fn empty_and_unencrypted_dumps_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    backup_bytes(&store, &small_options("empty", Some(key(1))), Vec::new())
        .await
        .unwrap();
    let mut restored = vec![];
    restore_bytes(&store, "empty", &KeyRing::new(vec![key(1)]), &mut restored)
        .await
        .unwrap();
    assert!(restored.is_empty());

    let data = dump_bytes(200_000, 2);
    let manifest = backup_bytes(&store, &small_options("clear", None), data.clone())
        .await
        .unwrap();
    assert!(manifest.encryption.is_none());
    let mut restored = vec![];
    restore_bytes(&store, "clear", &KeyRing::default(), &mut restored)
        .await
        .unwrap();
    assert_eq!(restored, data);
}

#[tokio::test]
async fn the_stored_bytes_are_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let mut options = small_options("secret", Some(key(1)));
    options.compression = Compression::None;
    let marker = b"CREDIT-CARD-4111111111111111".repeat(5000);
    backup_bytes(&store, &options, marker.clone())
        .await
        .unwrap();
    let stored = std::fs::read(data_path(dir.path(), "secret", 0)).unwrap();
    assert!(!stored.windows(28).any(|window| window == &marker[..28]));
    let manifest = std::fs::read_to_string(manifest_path(dir.path(), "secret")).unwrap();
    assert!(manifest.contains(key(1).id()));
}

#[tokio::test]
async fn wrong_key_fails_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    backup_bytes(
        &store,
        &small_options("b", Some(key(1))),
        dump_bytes(300_000, 3),
    )
    .await
    .unwrap();
    let mut sink = Vec::new();
    let error = restore_bytes(&store, "b", &KeyRing::new(vec![key(2)]), &mut sink)
        .await
        .unwrap_err();
    assert!(matches!(error, BackupError::WrongKey(_)), "{error}");
    assert_eq!(error.exit_code(), 6);
    assert!(!error.to_string().contains(&format!("{:?}", [1u8; 32])));
    let error = restore_bytes(&store, "b", &KeyRing::default(), &mut sink)
        .await
        .unwrap_err();
    assert!(matches!(error, BackupError::WrongKey(_)), "{error}");
    assert!(sink.is_empty());
}

#[tokio::test]
async fn a_flipped_byte_anywhere_fails_verification_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let manifest = backup_bytes(
        &store,
        &small_options("b", Some(key(1))),
        dump_bytes(2_500_000, 4),
    )
    .await
    .unwrap();
    let path = data_path(dir.path(), "b", 1);
    let original = std::fs::read(&path).unwrap();
    // The header, the first chunk, a middle byte, the last byte (a tag).
    for position in [3, 40, original.len() / 2, original.len() - 1] {
        let mut corrupted = original.clone();
        corrupted[position] ^= 0x20;
        std::fs::write(&path, &corrupted).unwrap();
        let mut sink = Vec::new();
        let error = restore_bytes(&store, "b", &KeyRing::new(vec![key(1)]), &mut sink)
            .await
            .unwrap_err();
        assert!(
            matches!(error, BackupError::Integrity(_)),
            "byte {position}: {error}"
        );
        assert!(sink.is_empty(), "byte {position}: the target was written");
    }
    std::fs::write(&path, &original).unwrap();
    assert!(manifest.objects.len() >= 2);
}

#[tokio::test]
async fn missing_chunks_and_missing_objects_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let manifest = backup_bytes(
        &store,
        &small_options("b", Some(key(1))),
        dump_bytes(2_500_000, 5),
    )
    .await
    .unwrap();
    let keys = KeyRing::new(vec![key(1)]);
    // A chunk cut out of the middle of an object.
    let path = data_path(dir.path(), "b", 0);
    let original = std::fs::read(&path).unwrap();
    let chunk = &manifest.chunks[1];
    let mut cut = original[..chunk.offset as usize].to_vec();
    cut.extend_from_slice(&original[(chunk.offset + chunk.stored_size) as usize..]);
    std::fs::write(&path, &cut).unwrap();
    let mut sink = Vec::new();
    let error = restore_bytes(&store, "b", &keys, &mut sink)
        .await
        .unwrap_err();
    assert!(matches!(error, BackupError::Integrity(_)), "{error}");
    // A truncated object.
    std::fs::write(&path, &original[..original.len() - 10]).unwrap();
    let error = restore_bytes(&store, "b", &keys, &mut sink)
        .await
        .unwrap_err();
    assert!(matches!(error, BackupError::Integrity(_)), "{error}");
    std::fs::write(&path, &original).unwrap();
    // A whole object gone.
    std::fs::remove_file(data_path(dir.path(), "b", 1)).unwrap();
    let error = restore_bytes(&store, "b", &keys, &mut sink)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("missing"), "{error}");
    assert!(sink.is_empty());
}

fn edit_manifest(root: &std::path::Path, name: &str, edit: impl FnOnce(&mut Manifest)) {
    let path = manifest_path(root, name);
    let mut manifest: Manifest = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
}

/// Edits a manifest as only a holder of the key-encryption key `kek` could — sealing it again
/// afterwards — so that what is tested is the chunk authentication behind the seal.
fn edit_and_reseal(
    root: &std::path::Path,
    name: &str,
    kek: &KeyEncryptionKey,
    edit: impl FnOnce(&mut Manifest),
) {
    edit_manifest(root, name, |manifest| {
        edit(manifest);
        reseal(manifest, kek);
    });
}

#[tokio::test]
async fn tampered_manifests_are_caught_by_the_authenticated_format() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let mut options = small_options("b", Some(key(1)));
    options.upload.max_object_size = u64::MAX;
    // The reordering below swaps two chunks of equal stored size: equal raw chunks stored
    // alike, so one fixed level (an adaptive one may change between them).
    options.adaptive_compression = false;
    let manifest = backup_bytes(&store, &options, dump_bytes(640 * 1024, 6))
        .await
        .unwrap();
    let keys = KeyRing::new(vec![key(1)]);
    let mut sink = Vec::new();

    // Truncation: drop the last chunk from the list and the object (the new last chunk does
    // not carry the final flag, so it fails authentication).
    let path = data_path(dir.path(), "b", 0);
    let original = std::fs::read(&path).unwrap();
    let last = manifest.chunks.last().unwrap().clone();
    std::fs::write(&path, &original[..last.offset as usize]).unwrap();
    edit_and_reseal(dir.path(), "b", &key(1), |m| {
        let dropped = m.chunks.pop().unwrap();
        m.objects[0].size -= dropped.stored_size;
        m.stored_size -= dropped.stored_size;
        m.raw_size -= dropped.raw_size;
        // Whoever truncates would also fix the raw hash; the tag check comes first anyway.
    });
    let error = restore_bytes(&store, "b", &keys, &mut sink)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("authentication"), "{error}");
    std::fs::write(&path, &original).unwrap();
    std::fs::write(manifest_path(dir.path(), "b"), manifest.to_json().unwrap()).unwrap();

    // Reordering: swap two chunks (and their hashes) — positions are authenticated.
    let (a, b) = (manifest.chunks[1].clone(), manifest.chunks[2].clone());
    assert_eq!(a.stored_size, b.stored_size, "pick equal-size chunks");
    let mut swapped = original.clone();
    let (a_range, b_range) = (
        a.offset as usize..(a.offset + a.stored_size) as usize,
        b.offset as usize..(b.offset + b.stored_size) as usize,
    );
    let a_bytes = original[a_range.clone()].to_vec();
    swapped[a_range].copy_from_slice(&original[b_range.clone()]);
    swapped[b_range].copy_from_slice(&a_bytes);
    std::fs::write(&path, &swapped).unwrap();
    edit_and_reseal(dir.path(), "b", &key(1), |m| {
        let (hash_a, hash_b) = (m.chunks[1].blake3.clone(), m.chunks[2].blake3.clone());
        m.chunks[1].blake3 = hash_b;
        m.chunks[2].blake3 = hash_a;
    });
    let error = restore_bytes(&store, "b", &keys, &mut sink)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("authentication"), "{error}");
    std::fs::write(&path, &original).unwrap();
    std::fs::write(manifest_path(dir.path(), "b"), manifest.to_json().unwrap()).unwrap();
    restore_bytes(&store, "b", &keys, &mut sink).await.unwrap();
    sink.clear();

    // Without the key, any edit of the manifest — here the dump-time counts a drill compares
    // against — breaks its seal.
    edit_manifest(dir.path(), "b", |m| {
        m.counts = Some(ObjectCounts::Keys(1));
    });
    let error = restore_bytes(&store, "b", &keys, &mut sink)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, BackupError::Integrity(message) if message.contains("altered")),
        "{error}"
    );
    assert!(sink.is_empty());
    std::fs::write(manifest_path(dir.path(), "b"), manifest.to_json().unwrap()).unwrap();

    // An unknown format version.
    edit_manifest(dir.path(), "b", |m| m.format_version = FORMAT_VERSION + 1);
    let error = restore_bytes(&store, "b", &keys, &mut sink)
        .await
        .unwrap_err();
    assert!(
        matches!(error, BackupError::UnsupportedFormat { found, .. } if found == FORMAT_VERSION + 1),
        "{error}"
    );
    assert!(sink.is_empty());
}

#[tokio::test]
async fn a_failed_dump_leaves_nothing_that_looks_like_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let input = failing_dump(std::io::Cursor::new(dump_bytes(3_000_000, 7)));
    let error = backup_input(&store, &small_options("failed", Some(key(1))), input)
        .await
        .unwrap_err();
    assert!(matches!(error, BackupError::Source(_)), "{error}");
    assert_eq!(error.exit_code(), 4);
    assert!(store.list_backup_names().await.unwrap().is_empty());
    let folder = dir.path().join("team/app/failed");
    let left: Vec<_> = std::fs::read_dir(&folder)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn a_cancelled_backup_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let (writer, reader) = tokio::io::duplex(64 * 1024);
    let feeder = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut writer = writer;
        for seed in 0..1000 {
            if writer
                .write_all(&dump_bytes(64 * 1024, seed))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let error = run_backup(
        &store,
        &small_options("cancelled", Some(key(1))),
        DumpInput::plain(reader),
        Progress::new(),
        cancel,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, BackupError::Cancelled), "{error}");
    feeder.abort();
    assert!(!store.exists("cancelled").await.unwrap());
}

#[tokio::test]
async fn backups_are_never_overwritten_and_names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    backup_bytes(&store, &small_options("b", Some(key(1))), vec![1, 2, 3])
        .await
        .unwrap();
    let error = backup_bytes(&store, &small_options("b", Some(key(1))), vec![4])
        .await
        .unwrap_err();
    assert!(matches!(error, BackupError::AlreadyExists(_)), "{error}");
    for hostile in ["../escape", "a/b", "", ".."] {
        let error = backup_bytes(&store, &small_options(hostile, None), vec![4])
            .await
            .unwrap_err();
        assert!(
            matches!(error, BackupError::Config(_)),
            "{hostile:?}: {error}"
        );
    }
    assert!(!dir.path().join("team/escape").exists());
}

#[tokio::test]
async fn rekeying_rewraps_without_touching_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let data = dump_bytes(300_000, 8);
    let manifest = backup_bytes(&store, &small_options("b", Some(key(1))), data.clone())
        .await
        .unwrap();
    let before = std::fs::read(data_path(dir.path(), "b", 0)).unwrap();
    let mut rekeyed = store.read_manifest("b").await.unwrap();
    rekey_manifest(&mut rekeyed, &KeyRing::new(vec![key(1)]), &key(2)).unwrap();
    store.write_manifest(&rekeyed).await.unwrap();
    let mut restored = Vec::new();
    restore_bytes(&store, "b", &KeyRing::new(vec![key(2)]), &mut restored)
        .await
        .unwrap();
    assert_eq!(restored, data);
    let error = restore_bytes(&store, "b", &KeyRing::new(vec![key(1)]), &mut Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(error, BackupError::WrongKey(_)));
    assert_eq!(
        std::fs::read(data_path(dir.path(), "b", 0)).unwrap(),
        before
    );
    assert_eq!(rekeyed.chunks, manifest.chunks);
}

#[tokio::test]
async fn delete_removes_the_manifest_first_and_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    backup_bytes(&store, &small_options("a", None), dump_bytes(2_000_000, 9))
        .await
        .unwrap();
    backup_bytes(&store, &small_options("b", None), vec![1])
        .await
        .unwrap();
    store.delete_backup("a").await.unwrap();
    assert_eq!(store.list_backup_names().await.unwrap(), ["b"]);
    assert!(!dir.path().join("team/app/a/data-000000.vbk").exists());
}

/// Format 1 (the manifest hashed each whole data object) is still read, and its object hashes
/// still checked; this build writes format 2 without them.
#[tokio::test]
async fn format_1_backups_restore_and_their_object_hashes_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let mut options = small_options("old", None);
    options.compression = Compression::None;
    options.upload.max_object_size = 300 * 1024;
    let data = dump_bytes(700 * 1024, 9);
    let manifest = backup_bytes(&store, &options, data.clone()).await.unwrap();
    assert_eq!(manifest.format_version, FORMAT_VERSION);
    assert!(manifest.objects.len() >= 2, "{:?}", manifest.objects);
    assert!(
        manifest
            .objects
            .iter()
            .all(|object| object.blake3.is_none())
    );

    // What a format 1 writer made of the same backup: version 1 in every header, and the hash
    // of every whole object in the manifest.
    let mut hashes = Vec::new();
    for index in 0..manifest.objects.len() {
        let path = data_path(dir.path(), "old", index as u32);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&1u32.to_be_bytes());
        std::fs::write(&path, &bytes).unwrap();
        hashes.push(blake3::hash(&bytes).to_hex().to_string());
    }
    edit_manifest(dir.path(), "old", |m| {
        m.format_version = 1;
        for (object, hash) in m.objects.iter_mut().zip(&hashes) {
            object.blake3 = Some(hash.clone());
        }
    });
    let mut restored = Vec::new();
    restore_bytes(&store, "old", &KeyRing::default(), &mut restored)
        .await
        .unwrap();
    assert!(restored == data, "the format 1 backup restored other bytes");

    // A format 1 object hash that does not match is refused, naming the object.
    edit_manifest(dir.path(), "old", |m| {
        m.objects[1].blake3 = Some(blake3::hash(b"other").to_hex().to_string());
    });
    let mut sink = Vec::new();
    let error = restore_bytes(&store, "old", &KeyRing::default(), &mut sink)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, BackupError::Integrity(message) if message.contains("data-000001.vbk")),
        "{error}"
    );
    assert!(sink.is_empty());

    // A version 2 header under a version 1 manifest is refused too.
    edit_manifest(dir.path(), "old", |m| {
        m.objects[1].blake3 = Some(hashes[1].clone());
    });
    let path = data_path(dir.path(), "old", 0);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let error = restore_bytes(&store, "old", &KeyRing::default(), &mut sink)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, BackupError::Integrity(message) if message.contains("format version")),
        "{error}"
    );
}
