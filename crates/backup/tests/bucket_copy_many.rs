//! 10,000+ objects in one copy: every one is in the index (an object beside the manifest, so
//! the manifest stays small), a second copy copies none of them, and verify checks them all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/buckets.rs"]
mod buckets;

use std::collections::BTreeMap;
use std::time::Instant;

use buckets::*;
use tokio_util::sync::CancellationToken;
use vertice_backup::engine::{self, EncryptionSpec, Progress, VerifyRun};
use vertice_backup::store::BackupStore;

const COUNT: usize = 10_240;

#[tokio::test]
async fn ten_thousand_objects() {
    let cloud = Cloud::start(Kind::S3).await;
    cloud.create_bucket("uploads").await;
    cloud.create_bucket("backups").await;
    let dir = tempfile::tempdir().unwrap();
    let source = cloud.config("uploads", "", dir.path());
    let store_config = cloud.config("backups", "team", dir.path());
    let store = BackupStore::open(&store_config).unwrap();
    let objects: BTreeMap<String, Vec<u8>> = (0..COUNT)
        .map(|i| {
            (
                format!("lib/{:02}/doc {i}.txt", i % 50),
                format!("document {i}").into_bytes(),
            )
        })
        .collect();
    let started = Instant::now();
    put_all(&bucket(&source), &objects).await;
    eprintln!("created {COUNT} objects in {:?}", started.elapsed());

    let started = Instant::now();
    let mut copy = copy_of(&source, "lib");
    copy.parallelism = Some(32);
    let first = backup_objects(&store, "many", copy.clone()).await.unwrap();
    eprintln!("first copy in {:?}", started.elapsed());
    let record = first.manifest.bucket_copy.clone().unwrap();
    assert_eq!(record.object_count, COUNT as u64);
    assert_eq!(record.copied, COUNT as u64);
    let copied = keys_under(&bucket(&store_config), "team/.copied-objects/many").await;
    assert_eq!(copied.len(), COUNT);
    let manifest_size = first.manifest.to_json().unwrap().len();
    assert!(
        manifest_size < 16 * 1024,
        "manifest is {manifest_size} bytes"
    );
    assert!(record.index.size > 100 * COUNT as u64, "{record:?}");

    let started = Instant::now();
    let second = backup_objects(&store, "many-2", copy).await.unwrap();
    eprintln!("unchanged copy in {:?}", started.elapsed());
    assert_eq!(second.manifest.bucket_copy.unwrap().skipped, COUNT as u64);
    assert!(
        keys_under(&bucket(&store_config), "team/.copied-objects/many-2")
            .await
            .is_empty()
    );

    let verify = VerifyRun {
        name: "many-2".into(),
        encryption: EncryptionSpec::default(),
        parallelism: Some(32),
        record: false,
    };
    let report = engine::verify(&store, &verify, &Progress::new(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.copied_objects, Some(COUNT as u64));
}
