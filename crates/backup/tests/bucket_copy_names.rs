//! Keys that break tools (Velero, K8up and rclone users' reports): spaces, `+`, `%`, unicode,
//! very deep paths, empty objects, keys ending in `/`. Copied and restored on every backend as
//! source and as destination, byte for byte, with globs matching such keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/buckets.rs"]
mod buckets;

use std::collections::BTreeMap;

use buckets::*;
use tokio_util::sync::CancellationToken;
use vertice_backup::engine::objects::{ObjectRestoreRun, restore_objects};
use vertice_backup::engine::{EncryptionSpec, Progress};
use vertice_backup::store::BackupStore;

/// Keys under the folder `odd +%/` (itself a hard name).
fn hard_keys() -> BTreeMap<String, Vec<u8>> {
    let deep = (0..60)
        .map(|i| format!("d{i}"))
        .collect::<Vec<_>>()
        .join("/");
    let long_segment = "x".repeat(200);
    [
        "with space.txt",
        "plus+sign.txt",
        "percent%20encoded%.txt",
        "100% done.txt",
        "ünïcödé/日本語/файл.txt",
        "emoji 🎉.txt",
        "brackets [1] {a,b} (c) #hash ?q=1 &amp;.txt",
        "quote's \"double\" `tick`.txt",
        "tilde~caret^pipe|.txt",
        "empty",
        "thumbnails/skip me.png",
        "x.tmp",
    ]
    .into_iter()
    .map(String::from)
    .chain([format!("{deep}/bottom.txt"), format!("{long_segment}/y")])
    .enumerate()
    .map(|(i, key)| {
        let bytes = if key == "empty" {
            Vec::new()
        } else {
            bytes_for(i as u64, 10 + i * 13)
        };
        (format!("odd +%/{key}"), bytes)
    })
    .collect()
}

async fn hard_names(source_kind: Kind, store_kind: Kind) {
    let source_cloud = Cloud::start(source_kind).await;
    source_cloud.create_bucket("uploads").await;
    let store_cloud = Cloud::start(store_kind).await;
    store_cloud.create_bucket("backups").await;
    let dir = tempfile::tempdir().unwrap();
    let source = source_cloud.config("uploads", "", dir.path());
    let store = BackupStore::open(&store_cloud.config("backups", "team", dir.path())).unwrap();
    let objects = hard_keys();
    put_all(&bucket(&source), &objects).await;

    let mut copy = copy_of(&source, "odd +%/");
    copy.exclude = vec!["**/thumbnails/**".into(), "*.tmp".into()];
    let report = backup_objects(&store, "hard", copy.clone()).await.unwrap();
    let record = report.manifest.bucket_copy.unwrap();
    let expected: BTreeMap<String, Vec<u8>> = objects
        .iter()
        .filter(|(key, _)| !key.ends_with(".tmp") && !key.contains("/thumbnails/"))
        .map(|(key, bytes)| {
            (
                key.strip_prefix("odd +%/").unwrap().to_string(),
                bytes.clone(),
            )
        })
        .collect();
    assert_eq!(record.object_count, expected.len() as u64);
    assert_eq!(record.copied, expected.len() as u64);
    // Unchanged hard names are recognised again.
    let again = backup_objects(&store, "hard-2", copy).await.unwrap();
    assert_eq!(
        again.manifest.bucket_copy.unwrap().skipped,
        expected.len() as u64
    );

    let run = ObjectRestoreRun {
        name: "hard-2".into(),
        target: source.clone(),
        prefix: Some("back again ü+%/".into()),
        overwrite: false,
        encryption: EncryptionSpec::default(),
        parallelism: None,
    };
    restore_objects(&store, &run, &Progress::new(), &CancellationToken::new())
        .await
        .unwrap();
    let restored = read_all(&bucket(&source), "back again ü+%").await;
    assert_eq!(
        restored.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    assert!(restored == expected, "restored bytes differ");
}

#[tokio::test]
async fn s3_to_gcs() {
    hard_names(Kind::S3, Kind::Gcs).await;
}

#[tokio::test]
async fn gcs_to_azure() {
    hard_names(Kind::Gcs, Kind::Azure).await;
}

#[tokio::test]
async fn azure_to_s3() {
    hard_names(Kind::Azure, Kind::S3).await;
}
