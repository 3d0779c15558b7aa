//! A copy that fails leaves no backup: a source with wrong credentials fails with the store
//! error kind `Forbidden` (S3 and Azure; fake-gcs-server checks no credentials), a missing
//! source bucket with `NotFound`, and neither a manifest nor any copied object stays.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/buckets.rs"]
mod buckets;

use std::collections::BTreeMap;

use buckets::*;
use vertice_backup::error::BackupError;
use vertice_backup::store::{BackupStore, StoreErrorKind};

async fn fails_with(
    kind: Kind,
    break_source: impl Fn(&mut vertice_backup::store::StoreConfig),
    expected: StoreErrorKind,
) {
    let cloud = Cloud::start(kind).await;
    cloud.create_bucket("uploads").await;
    cloud.create_bucket("backups").await;
    let dir = tempfile::tempdir().unwrap();
    let mut source = cloud.config("uploads", "", dir.path());
    let store_config = cloud.config("backups", "team", dir.path());
    let store = BackupStore::open(&store_config).unwrap();
    let objects: BTreeMap<String, Vec<u8>> = (0..5u64)
        .map(|i| (format!("f/{i}"), bytes_for(i, 100)))
        .collect();
    put_all(&bucket(&source), &objects).await;
    break_source(&mut source);
    let error = backup_objects(&store, "denied", copy_of(&source, "f"))
        .await
        .unwrap_err();
    assert_eq!(error.store_kind(), Some(expected), "{error}");
    assert!(matches!(error, BackupError::Store(_)), "{error}");
    assert!(store.list_backup_names().await.unwrap().is_empty());
    assert!(!store.exists("denied").await.unwrap());
    assert!(
        keys_under(&bucket(&store_config), "team").await.is_empty(),
        "the failed run left objects"
    );
}

fn wrong_s3_secret(config: &mut vertice_backup::store::StoreConfig) {
    let file = config.credentials_file.clone().unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let first = text.lines().next().unwrap().to_string();
    std::fs::write(
        &file,
        format!("{first}\nAWS_SECRET_ACCESS_KEY=not-the-secret\n"),
    )
    .unwrap();
}

fn wrong_azure_key(config: &mut vertice_backup::store::StoreConfig) {
    use base64::Engine as _;
    let file = config.credentials_file.clone().unwrap();
    std::fs::write(
        &file,
        base64::engine::general_purpose::STANDARD.encode([9u8; 64]),
    )
    .unwrap();
}

#[tokio::test]
async fn s3_wrong_credentials_are_forbidden_and_leave_nothing() {
    fails_with(Kind::S3, wrong_s3_secret, StoreErrorKind::Forbidden).await;
}

#[tokio::test]
async fn azure_wrong_key_is_forbidden_and_leaves_nothing() {
    fails_with(Kind::Azure, wrong_azure_key, StoreErrorKind::Forbidden).await;
}

#[tokio::test]
async fn a_missing_source_bucket_is_not_found_on_every_backend() {
    for kind in ALL {
        fails_with(
            kind,
            |config| config.bucket = Some("no-such-bucket".into()),
            StoreErrorKind::NotFound,
        )
        .await;
    }
}

#[tokio::test]
async fn bad_globs_and_prefixes_are_config_errors_before_anything_is_written() {
    let cloud = Cloud::start(Kind::S3).await;
    cloud.create_bucket("backups").await;
    let dir = tempfile::tempdir().unwrap();
    let store_config = cloud.config("backups", "team", dir.path());
    let store = BackupStore::open(&store_config).unwrap();
    let source = cloud.config("backups", "", dir.path());
    let mut bad_glob = copy_of(&source, "media");
    bad_glob.exclude = vec!["[unclosed".into()];
    let overlapping = copy_of(&source, "");
    let empty_segment = copy_of(&source, "a//b");
    for copy in [bad_glob, overlapping, empty_segment] {
        let error = backup_objects(&store, "bad", copy).await.unwrap_err();
        assert!(matches!(error, BackupError::Config(_)), "{error}");
        assert!(keys_under(&bucket(&store_config), "team").await.is_empty());
    }
}
