//! The engine as the operator calls it (no CLI, no process): `engine::backup`, `verify`,
//! `restore` and `run` against the real S3 server, with the progress sink and the cancel
//! token; a cancelled run leaves nothing that looks like a backup.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "common/pipeline.rs"]
mod pipeline;

use std::collections::BTreeMap;
use std::sync::Arc;

use pipeline::*;
use tokio_util::sync::CancellationToken;
use vertice_backup::engine::{
    self, BackupInput, BackupRun, EncryptionSpec, PipelineSettings, Progress, RestoreInto,
    RestoreRun, RestoreSpec, RunOutcome, RunSpec, VerifyRun,
};
use vertice_backup::error::BackupError;
use vertice_testkit::services::S3Server;

fn run_for(file: &std::path::Path, name: &str, key_file: &std::path::Path) -> BackupRun {
    BackupRun {
        name: Some(name.into()),
        input: BackupInput::File(file.to_path_buf()),
        pipeline: PipelineSettings {
            chunk_size: 256 * 1024,
            ..PipelineSettings::default()
        },
        encryption: EncryptionSpec {
            key_file: Some(key_file.to_path_buf()),
            ..EncryptionSpec::default()
        },
        labels: BTreeMap::from([("backup.vertice.dev/policy-uid".into(), "uid-1".into())]),
        objects: None,
    }
}

#[tokio::test]
async fn actions_report_progress_and_outcomes() {
    let s3 = S3Server::start().await.unwrap();
    s3.create_bucket("backups").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = s3_store(&s3, "backups", dir.path());
    let data = dump_bytes(3 * 1024 * 1024 + 5, 7);
    let file = dir.path().join("dump");
    std::fs::write(&file, &data).unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, [9u8; 32]).unwrap();

    let progress: Arc<Progress> = Progress::new();
    let report = engine::backup(
        &store,
        &run_for(&file, "nightly", &key_file),
        &progress,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(report.manifest.name, "nightly");
    assert_eq!(report.manifest.raw_size, data.len() as u64);
    assert_eq!(
        report.manifest.labels["backup.vertice.dev/policy-uid"],
        "uid-1"
    );
    assert!(
        report.location.contains("s3://backups"),
        "{}",
        report.location
    );
    assert_eq!(progress.phase(), "backup");
    assert_eq!(
        progress.done(),
        data.len() as u64,
        "progress counts the raw bytes"
    );

    // Verify through the typed options, then through a whole RunSpec.
    let verify = VerifyRun {
        name: "nightly".into(),
        encryption: EncryptionSpec {
            key_file: Some(key_file.clone()),
            ..EncryptionSpec::default()
        },
        parallelism: Some(2),
        record: true,
    };
    let progress = Progress::new();
    let verified = engine::verify(&store, &verify, &progress, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(verified.raw_size, data.len() as u64);
    assert_eq!(progress.phase(), "verify");
    assert!(store.is_verified("nightly").await.unwrap());

    let spec: RunSpec = serde_json::from_value(serde_json::json!({
        "action": "verify", "name": "nightly",
        "storage": serde_json::to_value(store_config(&s3, dir.path())).unwrap(),
        "encryption": {"keyFile": key_file},
    }))
    .unwrap();
    match engine::run(&spec, &Progress::new(), &CancellationToken::new())
        .await
        .unwrap()
    {
        RunOutcome::Verify(report) => assert_eq!(report.chunks, verified.chunks),
        other => panic!("not a verify: {other:?}"),
    }

    // A restore to a file gives the same bytes.
    let restored = dir.path().join("restored");
    let restore = RestoreRun {
        name: "nightly".into(),
        into: RestoreInto::File(restored.clone()),
        target: RestoreSpec::default(),
        encryption: verify.encryption.clone(),
        parallelism: None,
    };
    let outcome = engine::restore(
        &store,
        &restore,
        &Progress::new(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.report.raw_size, data.len() as u64);
    assert_eq!(std::fs::read(&restored).unwrap(), data);
}

#[tokio::test]
async fn a_cancelled_backup_leaves_nothing() {
    let s3 = S3Server::start().await.unwrap();
    s3.create_bucket("backups").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = s3_store(&s3, "backups", dir.path());
    let file = dir.path().join("dump");
    std::fs::write(&file, dump_bytes(2 * 1024 * 1024, 3)).unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, [9u8; 32]).unwrap();
    for name in ["cancelled-first", "cancelled-second"] {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let error = engine::backup(
            &store,
            &run_for(&file, name, &key_file),
            &Progress::new(),
            &cancel,
        )
        .await
        .unwrap_err();
        assert!(matches!(error, BackupError::Cancelled), "{name}: {error}");
        assert!(!store.exists(name).await.unwrap(), "{name}");
    }
    assert!(store.list_backup_names().await.unwrap().is_empty());
    let left = store.backup_folders().await.unwrap();
    assert!(
        left.is_empty(),
        "objects left behind: {:?}",
        left.iter().map(|f| &f.name).collect::<Vec<_>>()
    );
}

fn store_config(server: &S3Server, dir: &std::path::Path) -> vertice_backup::store::StoreConfig {
    let credentials = dir.join("s3-credentials");
    std::fs::write(
        &credentials,
        format!("{}\n{}\n", server.access_key(), server.secret_key()),
    )
    .unwrap();
    vertice_backup::store::StoreConfig {
        store: vertice_backup::store::StoreKind::S3,
        bucket: Some("backups".into()),
        endpoint: Some(server.endpoint()),
        region: Some(server.region().into()),
        credentials_file: Some(credentials),
        prefix: "team/app".into(),
        ..Default::default()
    }
}
