//! The operator with a `snapshot` run part (issue 8 §2), against the real apiserver, the
//! kubelet stand-in running the real runner, and moto's real server: the run succeeds, its
//! status shows the snapshot's ARN (which moto has), the snapshot-duration histogram counts it;
//! refused AWS credentials end the run failed, saying why without quoting them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/operator_env.rs"]
mod operator_env;
#[path = "support/snapshots.rs"]
mod snapshots;

use operator_env::{Env, eventually, sample};
use snapshots::{instance, rds, snapshot_part};
use vertice_backup::api::run::{ErrorKind, RunPhase};
use vertice_testkit::services::Moto;

#[tokio::test]
async fn a_snapshot_run_shows_the_arn_moto_has_and_counts_its_duration() {
    let moto = Moto::shared().await.unwrap();
    let rds = rds(moto);
    let mut env = Env::new("snap-ok", true).await;
    env.secret(
        "aws",
        &[
            ("AWS_ACCESS_KEY_ID", moto.access_key_id().to_owned()),
            ("AWS_SECRET_ACCESS_KEY", moto.secret_access_key().to_owned()),
        ],
    )
    .await;
    env.start_operator(&[], None).await;
    let instance = instance(&rds).await;
    env.snapshot_run("rds-1", snapshot_part(moto, &instance, "aws"))
        .await;

    let done = env.wait_phase("rds-1", RunPhase::Succeeded).await;
    let result = done.status.unwrap().result.unwrap();
    let manifest = env.manifest("rds-1").await;
    let record = manifest
        .snapshot
        .expect("the manifest records the snapshot");
    assert_eq!(result.snapshot_arn.as_deref(), Some(record.arn.as_str()));
    let described = rds
        .describe_db_snapshots()
        .db_snapshot_identifier(&record.snapshot_id)
        .send()
        .await
        .unwrap();
    let snapshot = &described.db_snapshots()[0];
    assert_eq!(snapshot.db_snapshot_arn(), Some(record.arn.as_str()));
    assert_eq!(snapshot.status(), Some("available"));
    assert_eq!(record.engine_version, "16.2");
    // The owner labels of the run are on the snapshot as tags.
    let tags = rds
        .list_tags_for_resource()
        .resource_name(&record.arn)
        .send()
        .await
        .unwrap();
    let request_uid = tags
        .tag_list()
        .iter()
        .find(|tag| tag.key() == Some("backup.vertice.dev/request-uid"))
        .and_then(|tag| tag.value().map(str::to_owned));
    assert_eq!(request_uid, done.metadata.uid);

    let series = format!(
        "vertice_backup_snapshot_duration_seconds_count{{namespace=\"{}\",project=\"shop\"}}",
        env.name()
    );
    let count = eventually("the snapshot duration histogram", || async {
        sample(&env.metrics().await, &series)
    })
    .await;
    assert_eq!(count, 1.0);
}

#[tokio::test]
async fn refused_aws_credentials_fail_the_run_without_quoting_them() {
    let moto = Moto::shared().await.unwrap();
    let rds = rds(moto);
    let mut env = Env::new("snap-refused", true).await;
    let secret = "a-wrong-secret-value-that-must-not-leak-0000";
    env.secret(
        "aws-wrong",
        &[
            ("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", secret.to_owned()),
        ],
    )
    .await;
    env.start_operator(&["--run-backoff-limit", "0"], None)
        .await;
    let instance = instance(&rds).await;
    env.snapshot_run("rds-refused", snapshot_part(moto, &instance, "aws-wrong"))
        .await;

    let done = env.wait_phase("rds-refused", RunPhase::Failed).await;
    let status = done.status.unwrap();
    let result = status.result.unwrap();
    assert_eq!(result.error_kind, Some(ErrorKind::DatabaseFailed));
    let message = result.error_message.unwrap_or_default();
    // moto's error answers carry no code the SDK reads; the status and the kind tell.
    assert!(message.contains("HTTP 403"), "{message}");
    assert!(message.contains("credentials were refused"), "{message}");
    assert!(
        !serde_json::to_string(&status.conditions)
            .unwrap()
            .contains(secret)
    );
    assert!(!message.contains(secret), "{message}");
    assert!(result.snapshot_arn.is_none());
    let snapshots = rds
        .describe_db_snapshots()
        .db_instance_identifier(&instance)
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    assert!(snapshots.db_snapshots().is_empty());
}
