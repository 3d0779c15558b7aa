//! An incremental bucket copy: the second copy of an unchanged folder copies nothing, and after
//! changes only the changed and new objects — counted by listing the backup store, not from
//! logs or the run's own report. On every backend as source and destination, server-side
//! (inside one bucket) and streamed (across buckets and clouds).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/buckets.rs"]
mod buckets;

use std::collections::BTreeMap;

use buckets::*;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use vertice_backup::store::BackupStore;

/// Objects copied by backup `name`: what its folder of copied bytes holds in the store.
async fn copied_by(store_bucket: &BackupStore, store_prefix: &str, name: &str) -> usize {
    keys_under(
        store_bucket,
        &format!("{store_prefix}/.copied-objects/{name}"),
    )
    .await
    .len()
}

fn sample_objects() -> BTreeMap<String, Vec<u8>> {
    (0..24u64)
        .map(|i| {
            let key = format!("media/dir {}/file+{i}%.bin", i % 4);
            (key, bytes_for(i, 100 + (i as usize) * 37))
        })
        .collect()
}

/// Copies `media/` three times: fresh, unchanged, after three changes, one new object and one
/// deletion.
async fn incremental(
    source_cloud: &Cloud,
    source_bucket: &str,
    store_cloud: &Cloud,
    store_bucket: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let source = source_cloud.config(source_bucket, "", dir.path());
    let store_config = store_cloud.config(store_bucket, "backups", dir.path());
    let store = BackupStore::open(&store_config).unwrap();
    let store_root = bucket(&store_config);
    let source_root = bucket(&source);
    let mut objects = sample_objects();
    put_all(&source_root, &objects).await;
    // Outside the copied folder: never copied.
    put_all(
        &source_root,
        &BTreeMap::from([("other/x".to_string(), vec![1u8])]),
    )
    .await;

    let first = backup_objects(&store, "b1", copy_of(&source, "media/"))
        .await
        .unwrap();
    assert_eq!(copied_by(&store_root, "backups", "b1").await, 24);
    let record = first.manifest.bucket_copy.clone().unwrap();
    assert_eq!(
        (record.object_count, record.copied, record.skipped),
        (24, 24, 0)
    );
    let total: u64 = objects.values().map(|bytes| bytes.len() as u64).sum();
    assert_eq!(record.total_bytes, total);

    let second = backup_objects(&store, "b2", copy_of(&source, "media/"))
        .await
        .unwrap();
    assert_eq!(
        copied_by(&store_root, "backups", "b2").await,
        0,
        "nothing changed"
    );
    let record = second.manifest.bucket_copy.clone().unwrap();
    assert_eq!(
        (record.object_count, record.copied, record.skipped),
        (24, 0, 24)
    );

    // Three changed (one of them to the same size), one new, one deleted.
    let mut changes = BTreeMap::new();
    for (i, key) in objects.keys().take(3).enumerate() {
        let len = if i == 0 { objects[key].len() } else { 7 };
        changes.insert(key.clone(), bytes_for(1000 + i as u64, len));
    }
    changes.insert("media/new ünï.txt".to_string(), b"new".to_vec());
    put_all(&source_root, &changes).await;
    let gone = objects.keys().nth(10).unwrap().clone();
    source_root
        .object_store()
        .delete(&Path::parse(&gone).unwrap())
        .await
        .unwrap();
    objects.remove(&gone);
    objects.extend(changes);

    let third = backup_objects(&store, "b3", copy_of(&source, "media"))
        .await
        .unwrap();
    let copied = keys_under(&store_root, "backups/.copied-objects/b3").await;
    assert_eq!(copied.len(), 4, "{copied:?}");
    let record = third.manifest.bucket_copy.clone().unwrap();
    assert_eq!(
        (record.object_count, record.copied, record.skipped),
        (24, 4, 20)
    );
    // Every copied object holds exactly the source's bytes, and nothing else was written.
    for key in objects.keys().take(3) {
        let name = vertice_backup::format::bucket_copy::copied_object_name(
            key.strip_prefix("media/").unwrap(),
        );
        let path = format!("backups/.copied-objects/b3/{name}");
        assert!(copied.contains(&path), "{key} not copied again");
        let bytes = store_root
            .object_store()
            .get(&Path::parse(&path).unwrap())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(bytes.to_vec(), objects[key]);
    }
    assert_eq!(
        copied_by(&store_root, "backups", "b1").await,
        24,
        "b1's bytes stay"
    );

    // A full copy copies everything again.
    let mut full = copy_of(&source, "media");
    full.full = true;
    backup_objects(&store, "b4", full).await.unwrap();
    assert_eq!(copied_by(&store_root, "backups", "b4").await, 24);
}

#[tokio::test]
async fn s3_inside_one_bucket_server_side() {
    let cloud = Cloud::start(Kind::S3).await;
    cloud.create_bucket("data").await;
    incremental(&cloud, "data", &cloud, "data").await;
}

#[tokio::test]
async fn azure_inside_one_container_server_side() {
    let cloud = Cloud::start(Kind::Azure).await;
    cloud.create_bucket("data").await;
    incremental(&cloud, "data", &cloud, "data").await;
}

#[tokio::test]
async fn gcs_inside_one_bucket() {
    let cloud = Cloud::start(Kind::Gcs).await;
    cloud.create_bucket("data").await;
    incremental(&cloud, "data", &cloud, "data").await;
}

#[tokio::test]
async fn s3_to_azure_streamed() {
    let source = Cloud::start(Kind::S3).await;
    source.create_bucket("uploads").await;
    let store = Cloud::start(Kind::Azure).await;
    store.create_bucket("backups").await;
    incremental(&source, "uploads", &store, "backups").await;
}

#[tokio::test]
async fn azure_to_gcs_streamed() {
    let source = Cloud::start(Kind::Azure).await;
    source.create_bucket("uploads").await;
    let store = Cloud::start(Kind::Gcs).await;
    store.create_bucket("backups").await;
    incremental(&source, "uploads", &store, "backups").await;
}

#[tokio::test]
async fn gcs_to_s3_streamed() {
    let source = Cloud::start(Kind::Gcs).await;
    source.create_bucket("uploads").await;
    let store = Cloud::start(Kind::S3).await;
    store.create_bucket("backups").await;
    incremental(&source, "uploads", &store, "backups").await;
}
