//! Restoring a copied folder: the restored objects equal the source byte for byte (on every
//! backend, from a backup whose objects are partly held by an earlier backup), a restore never
//! overwrites objects unless asked, and a corrupted copy is refused (by restore and verify)
//! without writing the bad object.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/buckets.rs"]
mod buckets;

use std::collections::BTreeMap;

use buckets::*;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio_util::sync::CancellationToken;
use vertice_backup::engine::objects::{ObjectRestoreRun, restore_objects};
use vertice_backup::engine::{self, EncryptionSpec, Progress, VerifyRun};
use vertice_backup::error::BackupError;
use vertice_backup::format::bucket_copy::copied_object_name;
use vertice_backup::source::SourceError;
use vertice_backup::store::BackupStore;

fn objects() -> BTreeMap<String, Vec<u8>> {
    let mut objects: BTreeMap<String, Vec<u8>> = (0..12u64)
        .map(|i| {
            (
                format!("docs/{i}/report {i}.pdf"),
                bytes_for(i, 3000 + i as usize),
            )
        })
        .collect();
    // One object larger than a multipart part, streamed in parts both ways.
    objects.insert("docs/big.bin".into(), bytes_for(99, 11 * 1024 * 1024 + 3));
    objects.insert("docs/empty".into(), Vec::new());
    objects
}

fn restore_run(name: &str, target: &vertice_backup::store::StoreConfig) -> ObjectRestoreRun {
    ObjectRestoreRun {
        name: name.into(),
        target: target.clone(),
        prefix: None,
        overwrite: false,
        encryption: EncryptionSpec::default(),
        parallelism: None,
    }
}

async fn restore_equals_source(kind: Kind) {
    let cloud = Cloud::start(kind).await;
    cloud.create_bucket("data").await;
    let dir = tempfile::tempdir().unwrap();
    let source = cloud.config("data", "", dir.path());
    let store = BackupStore::open(&cloud.config("data", "backups", dir.path())).unwrap();
    let source_root = bucket(&source);
    let mut objects = objects();
    put_all(&source_root, &objects).await;
    backup_objects(&store, "b1", copy_of(&source, "docs"))
        .await
        .unwrap();
    // b2 holds two changed objects; the rest are b1's bytes.
    let changed: BTreeMap<String, Vec<u8>> = objects
        .keys()
        .take(2)
        .map(|key| (key.clone(), bytes_for(500, 77)))
        .collect();
    put_all(&source_root, &changed).await;
    objects.extend(changed);
    let b2 = backup_objects(&store, "b2", copy_of(&source, "docs"))
        .await
        .unwrap();
    assert_eq!(b2.manifest.bucket_copy.unwrap().skipped, 12);

    let progress = Progress::new();
    let cancel = CancellationToken::new();
    let outcome = restore_objects(&store, &restore_run("b2", &source), &progress, &cancel)
        .await
        .unwrap();
    assert_eq!(outcome.prefix, "restored/b2");
    assert_eq!(outcome.objects, objects.len() as u64);
    let restored = read_all(&source_root, "restored/b2").await;
    let expected: BTreeMap<String, Vec<u8>> = objects
        .iter()
        .map(|(key, bytes)| {
            (
                key.strip_prefix("docs/").unwrap().to_string(),
                bytes.clone(),
            )
        })
        .collect();
    assert_eq!(restored.len(), expected.len());
    for (key, bytes) in &expected {
        assert!(
            restored.get(key) == Some(bytes),
            "{key} differs after restore"
        );
    }

    // A second restore to the same place refuses before writing anything.
    let marker = Path::parse("restored/b2/0/report 0.pdf").unwrap();
    source_root
        .object_store()
        .put(&marker, PutPayload::from_static(b"changed by a person"))
        .await
        .unwrap();
    let error = restore_objects(&store, &restore_run("b2", &source), &progress, &cancel)
        .await
        .unwrap_err();
    assert!(
        matches!(error, BackupError::Source(SourceError::TargetExists { .. })),
        "{error}"
    );
    let kept = source_root
        .object_store()
        .get(&marker)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&kept[..], b"changed by a person");
    // Asked to, it overwrites.
    let mut run = restore_run("b2", &source);
    run.overwrite = true;
    restore_objects(&store, &run, &progress, &cancel)
        .await
        .unwrap();
    let back = source_root
        .object_store()
        .get(&marker)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(back.to_vec(), expected["0/report 0.pdf"]);
}

#[tokio::test]
async fn s3_restore_equals_the_source() {
    restore_equals_source(Kind::S3).await;
}

#[tokio::test]
async fn azure_restore_equals_the_source() {
    restore_equals_source(Kind::Azure).await;
}

#[tokio::test]
async fn gcs_restore_equals_the_source() {
    restore_equals_source(Kind::Gcs).await;
}

/// A copied object changed in the store: verify reports it, restore refuses it and never
/// makes the bad bytes visible at the target.
#[tokio::test]
async fn a_corrupted_copy_is_refused_by_verify_and_restore() {
    let cloud = Cloud::start(Kind::S3).await;
    cloud.create_bucket("uploads").await;
    cloud.create_bucket("backups").await;
    let dir = tempfile::tempdir().unwrap();
    let source = cloud.config("uploads", "", dir.path());
    let store_config = cloud.config("backups", "team", dir.path());
    let store = BackupStore::open(&store_config).unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, [7u8; 32]).unwrap();
    let encryption = EncryptionSpec {
        key_file: Some(key_file),
        ..EncryptionSpec::default()
    };
    put_all(&bucket(&source), &objects()).await;
    backup_objects_with(
        &store,
        "sealed",
        copy_of(&source, "docs/"),
        encryption.clone(),
    )
    .await
    .unwrap();
    let progress = Progress::new();
    let cancel = CancellationToken::new();
    let verify = VerifyRun {
        name: "sealed".into(),
        encryption: encryption.clone(),
        parallelism: None,
        record: false,
    };
    let report = engine::verify(&store, &verify, &progress, &cancel)
        .await
        .unwrap();
    assert_eq!(report.copied_objects, Some(objects().len() as u64));

    let victim = format!(
        "team/.copied-objects/sealed/{}",
        copied_object_name("3/report 3.pdf")
    );
    bucket(&store_config)
        .object_store()
        .put(
            &Path::parse(&victim).unwrap(),
            PutPayload::from(bytes_for(1234, 3003)),
        )
        .await
        .unwrap();
    let error = engine::verify(&store, &verify, &progress, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(error, BackupError::Integrity(_)), "{error}");

    let mut run = restore_run("sealed", &source);
    run.encryption = encryption;
    run.parallelism = Some(1);
    let error = restore_objects(&store, &run, &progress, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(error, BackupError::Integrity(_)), "{error}");
    let written = read_all(&bucket(&source), "restored/sealed").await;
    assert!(
        !written.contains_key("3/report 3.pdf"),
        "the bad object became visible"
    );
}
