//! A VerticeBackup whose database part is an RDS snapshot (issue 8 §2): retention deletes the
//! pruned backups' snapshots with them, and `deletionPolicy: Delete` deletes every snapshot it
//! made, with the snapshot Secret's credentials. Against the REAL kube-apiserver, a REAL S3
//! server and moto's real RDS server; the backups are made by the real engine.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/operator_harness.rs"]
mod harness;
#[path = "support/snapshots.rs"]
mod snapshots;

use std::collections::BTreeMap;

use aws_sdk_rds::Client;
use chrono::Utc;
use harness::{Harness, condition, engine_store, eventually, s3_with_secret, spec};
use kube::ResourceExt;
use kube::api::DeleteParams;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use vertice_backup::api::VerticeBackup;
use vertice_backup::backup::{BackupOptions, run_backup};
use vertice_backup::controller::scheduling::{POLICY_LABEL, POLICY_UID_LABEL};
use vertice_backup::progress::Progress;
use vertice_backup::snapshot::{SnapshotConfig, SnapshotProvider, SnapshotRecord, snapshot_part};
use vertice_backup::store::BackupStore;
use vertice_testkit::services::Moto;

/// A backup named `name` holding a new snapshot of the config's instance, made by the engine
/// as a run of `policy` would make it.
async fn snapshot_backup(
    store: &BackupStore,
    config: &SnapshotConfig,
    name: &str,
    policy: &VerticeBackup,
) -> SnapshotRecord {
    let labels = BTreeMap::from([
        (POLICY_LABEL.to_owned(), policy.name_any()),
        (POLICY_UID_LABEL.to_owned(), policy.uid().unwrap()),
    ]);
    let cancel = CancellationToken::new();
    let (record, input) = snapshot_part(config, name, &labels, &cancel).await.unwrap();
    let mut options = BackupOptions::new(name, None);
    options.labels = labels;
    options.snapshot = Some(record.clone());
    run_backup(store, &options, input, Progress::new(), cancel)
        .await
        .unwrap();
    record
}

/// The manual snapshots RDS has of `instance`, sorted.
async fn snapshots_of(rds: &Client, instance: &str) -> Vec<String> {
    let listed = rds
        .describe_db_snapshots()
        .db_instance_identifier(instance)
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    let mut ids: Vec<String> = listed
        .db_snapshots()
        .iter()
        .filter_map(|snapshot| snapshot.db_snapshot_identifier().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_and_deletion_delete_the_backups_rds_snapshots() -> anyhow::Result<()> {
    let moto = Moto::shared().await?;
    let rds = snapshots::rds(moto);
    let instance = snapshots::instance(&rds).await;
    let h = Harness::start("vb-snapret", Utc::now()).await?;
    let server = s3_with_secret(&h, "backups").await?;
    let dir = tempfile::tempdir()?;
    let store = engine_store(&server, "backups", "rds", dir.path());
    h.create_secret(
        "aws",
        &[
            ("AWS_ACCESS_KEY_ID", moto.access_key_id()),
            ("AWS_SECRET_ACCESS_KEY", moto.secret_access_key()),
        ],
    )
    .await?;
    let mut body = spec("0 3 * * *", &server.endpoint(), "backups", "rds");
    body.as_object_mut().unwrap().remove("target");
    body["snapshot"] = snapshots::snapshot_part(moto, &instance, "aws");
    body["retention"] = json!({"keepLast": 1, "maxDeletePercent": 100});
    body["deletionPolicy"] = json!("Delete");
    let policy = h.create_backup("shop-db", body).await?;
    // The first sweep (nothing stored yet) already reads the snapshot credentials.
    h.wait_status("shop-db", "the first sweep", |b| {
        condition(b, "RetentionApplied").is_some_and(|c| c.0 == "True")
    })
    .await?;

    let credentials = dir.path().join("aws");
    std::fs::write(&credentials, moto.credentials_file())?;
    let config = SnapshotConfig {
        provider: SnapshotProvider::Aws,
        instance_id: instance.clone(),
        region: snapshots::REGION.to_owned(),
        credentials_file: credentials,
        endpoint: Some(moto.endpoint()),
        tags: BTreeMap::new(),
        timeout_seconds: Some(120),
    };
    let mut records = Vec::new();
    for i in 1..=3 {
        records.push(snapshot_backup(&store, &config, &format!("shop-db-{i}"), &policy).await);
    }
    let mut all: Vec<String> = records.iter().map(|r| r.snapshot_id.clone()).collect();
    all.sort();
    assert_eq!(snapshots_of(&rds, &instance).await, all);

    // A newly seen success triggers the sweep: keepLast 1 deletes two backups, and their
    // snapshots before them.
    h.finished_run(
        &policy,
        "shop-db-run-3",
        "Succeeded",
        Utc::now(),
        Some("shop-db-3"),
    )
    .await?;
    h.poke();
    h.wait_status("shop-db", "a sweep that deleted", |b| {
        condition(b, "RetentionApplied").is_some_and(|c| c.0 == "True" && c.2.contains("deleted 2"))
    })
    .await?;
    assert_eq!(store.list_backup_names().await?, ["shop-db-3"]);
    assert_eq!(
        snapshots_of(&rds, &instance).await,
        [records[2].snapshot_id.clone()]
    );

    // deletionPolicy Delete: the last backup and its snapshot go with the VerticeBackup.
    h.wait_status("shop-db", "the finalizer", |b| {
        b.finalizers()
            .iter()
            .any(|f| f == "backup.vertice.dev/cleanup")
    })
    .await?;
    h.backups
        .delete("shop-db", &DeleteParams::default())
        .await?;
    eventually("the VerticeBackup gone", || async {
        let left = h.backups.list(&Default::default()).await.ok()?;
        left.items.is_empty().then_some(())
    })
    .await?;
    assert!(store.list_backup_names().await?.is_empty());
    assert!(snapshots_of(&rds, &instance).await.is_empty());
    h.stop().await
}
