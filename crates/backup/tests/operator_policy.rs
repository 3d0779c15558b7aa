//! The VerticeBackup controller's policy against the REAL kube-apiserver and a REAL S3 server
//! with backups written by the real engine: status from the runs, history limits, retention
//! that prunes only this policy's backups (by UID label, never below `minKeep`, held by the
//! large-prune brake until the annotation releases it), `deletionPolicy`, restore drills and
//! the per-policy gauges. The runs' and drills' status is written by the test, as their
//! controllers would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/operator_harness.rs"]
mod harness;

use chrono::{TimeDelta, Utc};
use harness::{
    Harness, condition, engine_store, eventually, hour_after, make_backup, rfc3339, s3_with_secret,
    spec,
};
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

const ENDPOINT: &str = "http://127.0.0.1:9";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_follows_the_runs_and_history_keeps_the_newest() -> anyhow::Result<()> {
    let start = Utc::now();
    let h = Harness::start("vb-history", start).await?;
    let mut body = spec("0 3 * * *", ENDPOINT, "backups", "app");
    body["successfulRunsHistoryLimit"] = json!(2);
    body["failedRunsHistoryLimit"] = json!(1);
    let backup = h.create_backup("kept", body).await?;
    let at = |minutes: i64| start - TimeDelta::hours(2) + TimeDelta::minutes(minutes);
    for (name, phase, minutes) in [
        ("kept-s1", "Succeeded", 1),
        ("kept-f1", "Failed", 2),
        ("kept-s2", "Succeeded", 3),
        ("kept-s3", "Succeeded", 4),
        ("kept-f2", "Failed", 5),
    ] {
        let stored = (phase == "Succeeded").then(|| format!("{name}-backup"));
        h.finished_run(&backup, name, phase, at(minutes), stored.as_deref())
            .await?;
    }
    let result = json!({"backupName": "kept-s4-backup", "location": "s3://b/app/kept-s4-backup",
                        "rawSize": 1000, "storedSize": 400});
    h.finished_run_with(&backup, "kept-s4", "Succeeded", at(6), result)
        .await?;
    h.poke();
    eventually("history trimmed to 2 succeeded and 1 failed", || async {
        (h.live_run_names("kept").await.ok()? == ["kept-f2", "kept-s3", "kept-s4"]).then_some(())
    })
    .await?;
    // Trimmed as the runs appeared, maybe over several reconciles: each deletion is told.
    eventually("Events naming every trimmed run", || async {
        let trimmed = h
            .events_of("kept")
            .await
            .ok()?
            .into_iter()
            .filter(|line| line.starts_with("HistoryTrimmed:"));
        let told = trimmed.collect::<Vec<_>>().join("\n");
        ["kept-s1", "kept-f1", "kept-s2"]
            .iter()
            .all(|name| told.contains(name))
            .then_some(())
    })
    .await?;
    let backup = h
        .wait_status("kept", "the newest success in the status", |b| {
            b.status
                .as_ref()
                .and_then(|s| s.last_successful_backup.as_ref())
                .is_some_and(|r| r.name == "kept-s4-backup")
        })
        .await?;
    let record = backup
        .status
        .as_ref()
        .and_then(|s| s.last_successful_backup.clone())
        .unwrap();
    assert_eq!(record.request.as_deref(), Some("kept-s4"));
    assert_eq!(
        (record.raw_size, record.stored_size),
        (Some(1000), Some(400))
    );
    assert_eq!(record.location, "s3://b/app/kept-s4-backup");
    assert_eq!(rfc3339(harness_time(&record.time)), rfc3339(at(6)));
    assert_eq!(
        condition(&backup, "LastBackupSucceeded").map(|c| c.0),
        Some("True".to_owned())
    );

    // A newer failure flips LastBackupSucceeded; the last success stays.
    let result = json!({"errorKind": "DatabaseFailed", "errorMessage": "connection refused"});
    h.finished_run_with(&backup, "kept-f3", "Failed", at(7), result)
        .await?;
    let backup = h
        .wait_status("kept", "LastBackupSucceeded=False", |b| {
            condition(b, "LastBackupSucceeded").is_some_and(|c| c.0 == "False")
        })
        .await?;
    let failed = condition(&backup, "LastBackupSucceeded").unwrap();
    assert!(
        failed.2.contains("DatabaseFailed") && failed.2.contains("kept-f3"),
        "{failed:?}"
    );
    assert_eq!(
        backup
            .status
            .and_then(|s| s.last_successful_backup)
            .map(|r| r.name),
        Some("kept-s4-backup".to_owned())
    );
    eventually("the older failure trimmed", || async {
        (h.live_run_names("kept").await.ok()? == ["kept-f3", "kept-s3", "kept-s4"]).then_some(())
    })
    .await?;
    h.stop().await
}

fn harness_time(
    time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> chrono::DateTime<Utc> {
    chrono::DateTime::<Utc>::from_timestamp(time.0.as_second(), 0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_only_this_policys_backups_and_keeps_min_keep() -> anyhow::Result<()> {
    let h = Harness::start("vb-retention", Utc::now()).await?;
    let server = s3_with_secret(&h, "backups").await?;
    let dir = tempfile::tempdir()?;
    let store = engine_store(&server, "backups", "shared", dir.path());
    // Two policies share the bucket and prefix. `alpha` keeps the newest one by keepLast but
    // at least 3 by minKeep; `beta` has no rule that would delete anything of alpha's.
    let mut alpha_spec = spec("0 3 * * *", &server.endpoint(), "backups", "shared");
    alpha_spec["retention"] = json!({"keepLast": 1, "minKeep": 3});
    let alpha = h.create_backup("alpha", alpha_spec).await?;
    let mut beta_spec = spec("0 3 * * *", &server.endpoint(), "backups", "shared");
    beta_spec["retention"] = json!({"keepLast": 1, "minKeep": 1, "maxDeletePercent": 100});
    let beta = h.create_backup("beta", beta_spec).await?;
    // Each policy's first sweep (nothing stored yet) runs at its first reconcile.
    for name in ["alpha", "beta"] {
        h.wait_status(name, "the first sweep", |b| {
            condition(b, "RetentionApplied").is_some_and(|c| c.0 == "True")
        })
        .await?;
    }
    for i in 1..=6 {
        make_backup(&store, &format!("alpha-{i}"), &alpha).await?;
    }
    for i in 1..=2 {
        make_backup(&store, &format!("beta-{i}"), &beta).await?;
    }
    // A run of alpha that made alpha-1: it goes with its backup.
    h.finished_run(
        &alpha,
        "alpha-run-1",
        "Succeeded",
        Utc::now() - TimeDelta::hours(1),
        Some("alpha-1"),
    )
    .await?;
    // A newly seen success triggers the sweep.
    h.finished_run(
        &alpha,
        "alpha-run-6",
        "Succeeded",
        Utc::now(),
        Some("alpha-6"),
    )
    .await?;
    h.poke();
    let backup = h
        .wait_status("alpha", "a sweep that deleted", |b| {
            condition(b, "RetentionApplied")
                .is_some_and(|c| c.0 == "True" && c.2.contains("deleted 3"))
        })
        .await?;
    let mut names = store.list_backup_names().await?;
    names.sort();
    assert_eq!(names, ["alpha-4", "alpha-5", "alpha-6", "beta-1", "beta-2"]);
    let event = h.wait_event("alpha", "BackupsPruned").await?;
    assert!(
        event.contains("alpha-1") && !event.contains("beta"),
        "{event}"
    );
    eventually("the run of a pruned backup deleted", || async {
        (h.live_run_names("alpha").await.ok()? == ["alpha-run-6"]).then_some(())
    })
    .await?;
    let preview = backup.status.and_then(|s| s.retention).unwrap();
    assert_eq!(preview.kept, 3);
    assert!(preview.next_deletions.is_empty(), "{preview:?}");

    // beta's own sweep (on its timer) deletes only beta's older backup.
    h.set_clock(Utc::now() + TimeDelta::hours(1) + TimeDelta::minutes(1));
    h.wait_status("beta", "beta's sweep", |b| {
        condition(b, "RetentionApplied").is_some_and(|c| c.2.contains("deleted 1"))
    })
    .await?;
    let mut names = store.list_backup_names().await?;
    names.sort();
    assert_eq!(names, ["alpha-4", "alpha-5", "alpha-6", "beta-2"]);
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_prune_waits_for_the_annotation() -> anyhow::Result<()> {
    let start = Utc::now();
    let h = Harness::start("vb-brake", start).await?;
    let server = s3_with_secret(&h, "backups").await?;
    let dir = tempfile::tempdir()?;
    let store = engine_store(&server, "backups", "braked", dir.path());
    let mut body = spec("0 3 * * *", &server.endpoint(), "backups", "braked");
    body["retention"] = json!({"keepLast": 1});
    let backup = h.create_backup("gamma", body).await?;
    // The first sweep (nothing stored yet) ran at creation.
    h.wait_status("gamma", "the first sweep", |b| {
        condition(b, "RetentionApplied").is_some_and(|c| c.0 == "True")
    })
    .await?;
    for i in 1..=4 {
        make_backup(&store, &format!("gamma-{i}"), &backup).await?;
    }
    // The timer: an hour (the default --retention-interval) later.
    h.set_clock(start + TimeDelta::minutes(61));
    let held = h
        .wait_status("gamma", "the brake", |b| {
            condition(b, "RetentionApplied").is_some_and(|c| c.1 == "LargePruneHeld")
        })
        .await?;
    let message = condition(&held, "RetentionApplied").unwrap().2;
    assert!(
        message.contains("3 of") && message.contains("backup.vertice.dev/allow-large-prune=true"),
        "{message}"
    );
    let preview = held.status.and_then(|s| s.retention).unwrap();
    assert_eq!(
        preview
            .next_deletions
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["gamma-1", "gamma-2", "gamma-3"]
    );
    assert!(
        preview
            .next_deletions
            .iter()
            .all(|c| c.reason.contains("no keep rule")),
        "{preview:?}"
    );
    h.wait_event("gamma", "LargePruneHeld").await?;
    assert_eq!(store.list_backup_names().await?.len(), 4);

    h.patch_backup(
        "gamma",
        json!({"metadata": {"annotations": {"backup.vertice.dev/allow-large-prune": "true"}}}),
    )
    .await?;
    h.wait_status("gamma", "the released sweep", |b| {
        condition(b, "RetentionApplied").is_some_and(|c| c.0 == "True" && c.2.contains("deleted 3"))
    })
    .await?;
    assert_eq!(store.list_backup_names().await?, ["gamma-4"]);
    // The approval was for that sweep only.
    let after = h
        .wait_status("gamma", "the annotation removed", |b| {
            !b.annotations()
                .contains_key("backup.vertice.dev/allow-large-prune")
        })
        .await?;
    assert!(after.status.is_some());
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policy_retain_keeps_and_delete_removes_only_its_own() -> anyhow::Result<()> {
    let h = Harness::start("vb-deletion", Utc::now()).await?;
    let server = s3_with_secret(&h, "backups").await?;
    let dir = tempfile::tempdir()?;
    let store = engine_store(&server, "backups", "team", dir.path());
    let keep = h
        .create_backup(
            "keeper",
            spec("0 3 * * *", &server.endpoint(), "backups", "team"),
        )
        .await?;
    let mut drop_spec = spec("0 3 * * *", &server.endpoint(), "backups", "team");
    drop_spec["deletionPolicy"] = json!("Delete");
    let drop = h.create_backup("dropper", drop_spec).await?;
    for i in 1..=2 {
        make_backup(&store, &format!("keeper-{i}"), &keep).await?;
        make_backup(&store, &format!("dropper-{i}"), &drop).await?;
    }
    for name in ["keeper", "dropper"] {
        h.wait_status(name, "the finalizer", |b| {
            b.finalizers()
                .iter()
                .any(|f| f == "backup.vertice.dev/cleanup")
        })
        .await?;
        h.backups.delete(name, &DeleteParams::default()).await?;
    }
    eventually("both VerticeBackups gone", || async {
        let left = h.backups.list(&Default::default()).await.ok()?;
        left.items.is_empty().then_some(())
    })
    .await?;
    let mut names = store.list_backup_names().await?;
    names.sort();
    assert_eq!(names, ["keeper-1", "keeper-2"]);
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drills_are_created_on_their_schedule_and_set_verified_and_the_gauges() -> anyhow::Result<()>
{
    let slot = hour_after(TimeDelta::zero());
    let h = Harness::start("vb-drill", slot - TimeDelta::minutes(2)).await?;
    let mut body = spec("0 3 * * *", ENDPOINT, "backups", "app");
    body["verification"] = json!({
        "schedule": "0 * * * *",
        "scratch": {"engine": "postgres", "host": "scratch.db", "port": 5433, "user": "drill",
                    "passwordSecretRef": {"name": "scratch", "key": "password"}},
    });
    let backup = h.create_backup("drilled", body).await?;
    h.finished_run(
        &backup,
        "drilled-run",
        "Succeeded",
        slot - TimeDelta::minutes(30),
        Some("drilled-b1"),
    )
    .await?;
    let ns = h.namespace().to_owned();
    let series =
        |name: &str| format!(r#"vertice_backup_{name}{{namespace="{ns}",backup="drilled"}}"#);
    let body = eventually("the success and interval gauges", || async {
        let body = h.metrics().await.ok()?;
        (body.contains(&series("last_success_timestamp_seconds"))
            && body.contains(&series("expected_interval_seconds")))
        .then_some(body)
    })
    .await?;
    assert!(
        body.contains(&format!("{} 86400", series("expected_interval_seconds"))),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "{} {}",
            series("last_success_timestamp_seconds"),
            (slot - TimeDelta::minutes(30)).timestamp()
        )),
        "{body}"
    );
    assert!(
        !body.contains(&series("verification_last_success_timestamp_seconds")),
        "{body}"
    );

    h.set_clock(slot + TimeDelta::seconds(10));
    let name = format!("drilled-verify-{}", slot.timestamp() / 60);
    let drill = eventually("the drill", || async { h.drills.get(&name).await.ok() }).await?;
    assert_eq!(drill.spec.verify, Some(true));
    assert_eq!(drill.spec.source.backup_name.as_deref(), Some("drilled-b1"));
    assert_eq!(drill.spec.target.host.as_deref(), Some("scratch.db"));
    assert_eq!(drill.spec.target.port, Some(5433));
    assert_eq!(
        drill.spec.target.database, None,
        "a drill restores into a new database"
    );
    assert_eq!(
        drill.owner_references()[0].uid,
        backup.uid().unwrap_or_default()
    );
    h.wait_event("drilled", "DrillCreated").await?;

    let done = slot + TimeDelta::minutes(3);
    h.drills
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Succeeded", "completionTime": rfc3339(done),
                                            "verification": {"result": "Passed", "objectsCompared": 4}}})),
        )
        .await?;
    let verified = h
        .wait_status("drilled", "Verified=True", |b| {
            condition(b, "Verified").is_some_and(|c| c.0 == "True")
        })
        .await?;
    assert_eq!(
        verified
            .status
            .and_then(|s| s.last_verified_time)
            .map(|t| harness_time(&t)),
        Some(done)
    );
    eventually("the verification gauge", || async {
        let body = h.metrics().await.ok()?;
        body.contains(&format!(
            "{} {}",
            series("verification_last_success_timestamp_seconds"),
            done.timestamp()
        ))
        .then_some(())
    })
    .await?;

    // Deleted: no series left behind.
    h.backups
        .delete("drilled", &DeleteParams::default())
        .await?;
    eventually("the series gone with the VerticeBackup", || async {
        let body = h.metrics().await.ok()?;
        (!body.contains(r#"backup="drilled""#)).then_some(())
    })
    .await?;
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_that_cannot_run_say_why_without_secrets_and_retry() -> anyhow::Result<()> {
    let start = Utc::now();
    let h = Harness::start("vb-sweep-errors", start).await?;
    let server = vertice_testkit::services::S3Server::start().await?;
    server.create_bucket("backups")?;
    // A local store: the operator cannot reach the volume; a steady condition, no retries.
    let mut local = spec("0 3 * * *", ENDPOINT, "backups", "app");
    local["storage"] = json!({"store": "local", "persistentVolumeClaim": {"name": "backups"}});
    local["retention"] = json!({"keepLast": 2});
    h.create_backup("on-a-volume", local).await?;
    h.wait_status("on-a-volume", "LocalStoreNotReachable", |b| {
        condition(b, "RetentionApplied").is_some_and(|c| c.1 == "LocalStoreNotReachable")
    })
    .await?;

    // S3 with no credentials Secret yet, then with a wrong secret key, then the right one.
    let mut body = spec("0 3 * * *", &server.endpoint(), "backups", "app");
    body["retention"] = json!({"keepLast": 2});
    h.create_backup("s3-policy", body).await?;
    let missing = h
        .wait_status("s3-policy", "the missing Secret reported", |b| {
            condition(b, "RetentionApplied").is_some_and(|c| c.1 == "SweepFailed")
        })
        .await?;
    let message = condition(&missing, "RetentionApplied").unwrap().2;
    assert!(message.contains("store-credentials"), "{message}");

    let wrong = "wR0ng-s3cret-value-that-must-not-leak";
    h.create_secret(
        "store-credentials",
        &[
            ("AWS_ACCESS_KEY_ID", server.access_key()),
            ("AWS_SECRET_ACCESS_KEY", wrong),
        ],
    )
    .await?;
    // Retried five minutes later.
    h.set_clock(start + TimeDelta::minutes(6));
    let refused = h
        .wait_status("s3-policy", "the store's refusal reported", |b| {
            condition(b, "RetentionApplied")
                .is_some_and(|c| c.1 == "SweepFailed" && c.2.contains("sweep failed"))
        })
        .await?;
    let events = h.events_of("s3-policy").await?.join("\n");
    let status = serde_json::to_string(&refused.status)?;
    for text in [&events, &status] {
        assert!(
            !text.contains(wrong) && !text.contains(server.secret_key()),
            "{text}"
        );
    }

    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(h.client.clone(), h.namespace());
    secrets
        .patch(
            "store-credentials",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"AWS_SECRET_ACCESS_KEY": server.secret_key()}})),
        )
        .await?;
    h.set_clock(start + TimeDelta::minutes(12));
    h.wait_status(
        "s3-policy",
        "the sweep applied once the credentials are right",
        |b| condition(b, "RetentionApplied").is_some_and(|c| c.0 == "True"),
    )
    .await?;
    h.stop().await
}
