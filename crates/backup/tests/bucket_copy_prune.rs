//! Retention and copied bytes: prune keeps every copied object a kept backup references (even
//! when the backup that copied it is deleted), removes those no kept backup references, and
//! deletes nothing while a run is in progress. Counted by listing the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/buckets.rs"]
mod buckets;

use std::collections::BTreeMap;
use std::time::Duration;

use buckets::*;
use chrono::Utc;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio_util::sync::CancellationToken;
use vertice_backup::engine::objects::{ObjectRestoreRun, restore_objects};
use vertice_backup::engine::{self, EncryptionSpec, LabelSelector, Progress, PruneOptions};
use vertice_backup::retention::RetentionPolicy;
use vertice_backup::store::BackupStore;

fn keep_last(n: u32) -> PruneOptions {
    PruneOptions {
        policy: RetentionPolicy {
            keep_last: Some(n),
            ..RetentionPolicy::default()
        },
        partial_grace: Duration::from_secs(3600),
        dry_run: false,
        snapshots: None,
    }
}

async fn prune(store: &BackupStore, options: &PruneOptions) -> engine::PruneOutcome {
    engine::prune(
        store,
        options,
        &LabelSelector::default(),
        Utc::now(),
        &CancellationToken::new(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn prune_keeps_referenced_bytes_and_collects_the_rest() {
    let cloud = Cloud::start(Kind::S3).await;
    cloud.create_bucket("data").await;
    let dir = tempfile::tempdir().unwrap();
    let source = cloud.config("data", "", dir.path());
    let store_config = cloud.config("data", "backups", dir.path());
    let store = BackupStore::open(&store_config).unwrap();
    let root = bucket(&store_config);
    let mut objects: BTreeMap<String, Vec<u8>> = (0..10u64)
        .map(|i| (format!("files/{i}"), bytes_for(i, 500)))
        .collect();
    put_all(&bucket(&source), &objects).await;
    backup_objects(&store, "b1", copy_of(&source, "files"))
        .await
        .unwrap();
    let changed: BTreeMap<String, Vec<u8>> = (0..2u64)
        .map(|i| (format!("files/{i}"), bytes_for(100 + i, 600)))
        .collect();
    put_all(&bucket(&source), &changed).await;
    objects.extend(changed);
    backup_objects(&store, "b2", copy_of(&source, "files"))
        .await
        .unwrap();
    assert_eq!(
        keys_under(&root, "backups/.copied-objects/b1").await.len(),
        10
    );
    assert_eq!(
        keys_under(&root, "backups/.copied-objects/b2").await.len(),
        2
    );

    // A dry run reports and deletes nothing.
    let mut dry = keep_last(1);
    dry.dry_run = true;
    let outcome = prune(&store, &dry).await;
    assert_eq!(outcome.plan.delete.len(), 1);
    assert_eq!(
        keys_under(&root, "backups/.copied-objects/b1").await.len(),
        10
    );

    // Keep only b2: b1's manifest and index go, the 8 objects b2 still references stay, the
    // 2 old versions only b1 referenced go.
    let outcome = prune(&store, &keep_last(1)).await;
    assert_eq!(store.list_backup_names().await.unwrap(), ["b2"]);
    assert_eq!(outcome.copied_objects.unreferenced, 2);
    assert_eq!(outcome.copied_objects.referenced, 10);
    assert_eq!(
        keys_under(&root, "backups/.copied-objects/b1").await.len(),
        8
    );
    assert_eq!(
        keys_under(&root, "backups/.copied-objects/b2").await.len(),
        2
    );
    assert!(keys_under(&root, "backups/b1").await.is_empty());

    // b2 still restores whole.
    let run = ObjectRestoreRun {
        name: "b2".into(),
        target: source.clone(),
        prefix: Some("again".into()),
        overwrite: false,
        encryption: EncryptionSpec::default(),
        parallelism: None,
    };
    restore_objects(&store, &run, &Progress::new(), &CancellationToken::new())
        .await
        .unwrap();
    let restored = read_all(&bucket(&source), "again").await;
    for (key, bytes) in &objects {
        assert!(
            restored.get(key.strip_prefix("files/").unwrap()) == Some(bytes),
            "{key}"
        );
    }

    // A run in progress (a reservation, no manifest yet) defers collection: a backup with a
    // full copy makes b1's and b2's bytes unreferenced once b2 is deleted, but nothing goes
    // while the run is there.
    let mut full = copy_of(&source, "files");
    full.full = true;
    backup_objects(&store, "b3", full).await.unwrap();
    let reservation = Path::parse("backups/b4/reservation.json").unwrap();
    root.object_store()
        .put(&reservation, PutPayload::from_static(b"{}"))
        .await
        .unwrap();
    let outcome = prune(&store, &keep_last(1)).await;
    assert!(outcome.copied_objects.deferred.is_some(), "{outcome:?}");
    assert_eq!(
        keys_under(&root, "backups/.copied-objects/b1").await.len(),
        8
    );
    // Once the run is gone, the bytes no kept backup references are collected.
    root.object_store().delete(&reservation).await.unwrap();
    let outcome = prune(&store, &keep_last(1)).await;
    assert_eq!(outcome.copied_objects.deferred, None);
    assert_eq!(outcome.copied_objects.unreferenced, 10);
    assert!(
        keys_under(&root, "backups/.copied-objects/b1")
            .await
            .is_empty()
    );
    assert!(
        keys_under(&root, "backups/.copied-objects/b2")
            .await
            .is_empty()
    );
    assert_eq!(
        keys_under(&root, "backups/.copied-objects/b3").await.len(),
        10
    );
    // The source's own objects were never touched.
    assert_eq!(read_all(&bucket(&source), "files").await.len(), 10);
}
