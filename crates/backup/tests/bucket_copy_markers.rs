//! S3 "folder" markers — empty objects whose key ends in `/`, which the AWS console and many
//! tools create (reports against mlflow, zarr and s3fs) — in a copied bucket folder: the copy
//! takes the real objects only, and restores, to S3 and to a local directory, write exactly
//! those. object_store names a marker without its `/` (`site/img/` lists as `site/img`), so a
//! copied marker would come back as a stray empty object `img` beside the folder `img/` — a
//! file that blocks the folder on a filesystem target. The copy reads each listed object by
//! the name object_store gives it; a marker's name, without its `/`, names no object, so the
//! copy takes it for one deleted since the listing and leaves it out (`part.rs`, `take_one`).
//! A change there that stopped doing so fails this test.
//!
//! moto keeps and lists markers as S3 does; testkit's s3s-fs (files on disk) and
//! fake-gcs-server accept them but never list them, so this test runs on moto.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/buckets.rs"]
mod buckets;
#[path = "common/pipeline.rs"]
mod pipeline;

use std::collections::BTreeMap;

use buckets::*;
use tokio_util::sync::CancellationToken;
use vertice_backup::engine::objects::{ObjectRestoreRun, restore_objects};
use vertice_backup::engine::{EncryptionSpec, Progress};
use vertice_backup::store::{StoreConfig, StoreKind};
use vertice_testkit::services::Moto;

fn restore_run(target: &StoreConfig) -> ObjectRestoreRun {
    ObjectRestoreRun {
        name: "site".into(),
        target: target.clone(),
        prefix: Some("back/".into()),
        overwrite: false,
        encryption: EncryptionSpec::default(),
        parallelism: None,
    }
}

/// Every file under `root`, by its path relative to `root`, with its bytes.
fn files_under(root: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_string_lossy().into();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[tokio::test]
async fn folder_markers_are_not_copied_and_restores_hold_only_real_objects() {
    let moto = Moto::start().await.unwrap();
    moto.put_s3_objects_unsigned(
        "uploads",
        &[
            ("site/", b""),
            ("site/index.html", b"<h1>hi</h1>"),
            ("site/img/", b""),
            ("site/img/a.png", b"png bytes"),
            ("site/empty/", b""),
        ],
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("moto-credentials");
    std::fs::write(&credentials, moto.credentials_file()).unwrap();
    let source = StoreConfig {
        store: StoreKind::S3,
        endpoint: Some(moto.endpoint()),
        region: Some("us-east-1".into()),
        bucket: Some("uploads".into()),
        credentials_file: Some(credentials),
        ..StoreConfig::default()
    };
    // The markers are there, named without their `/`: what the copy has to deal with.
    let listed = keys_under(&bucket(&source), "site").await;
    assert!(
        listed.contains(&"site/img".to_string()) && listed.contains(&"site/empty".to_string()),
        "moto lists the markers: {listed:?}"
    );

    let store = pipeline::local_store(&dir.path().join("store"));
    let report = backup_objects(&store, "site", copy_of(&source, "site/"))
        .await
        .unwrap();
    let record = report.manifest.bucket_copy.unwrap();
    assert_eq!(record.object_count, 2, "the real objects only: {record:?}");
    assert_eq!(record.total_bytes, 11 + 9);

    // Under the restore's prefix `back/`.
    let expected: BTreeMap<String, Vec<u8>> = [
        ("img/a.png".to_string(), b"png bytes".to_vec()),
        ("index.html".to_string(), b"<h1>hi</h1>".to_vec()),
    ]
    .into();
    restore_objects(
        &store,
        &restore_run(&source),
        &Progress::new(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let restored = read_all(&bucket(&source), "back").await;
    assert!(
        restored == expected,
        "{:?}",
        restored.keys().collect::<Vec<_>>()
    );

    let local_target = dir.path().join("restored");
    let local = StoreConfig {
        store: StoreKind::Local,
        path: Some(local_target.clone()),
        ..StoreConfig::default()
    };
    restore_objects(
        &store,
        &restore_run(&local),
        &Progress::new(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let files = files_under(&local_target.join("back"));
    assert!(files == expected, "{:?}", files.keys().collect::<Vec<_>>());
}
