//! A VerticeBackup end to end with the BackupRequest controller (from the `runs` part): on an
//! injected clock the schedule's slots become runs that the runs controller executes in
//! process against a REAL PostgreSQL into the REAL S3 server; the VerticeBackup's status takes
//! the newest success (sizes and location as the store's manifest says) and its retention
//! prunes the older backup and its run after the next success.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/operator_env.rs"]
mod operator_env;

use std::sync::Arc;

use chrono::{TimeDelta, Timelike, Utc};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use operator_env::{Env, WAIT};
use serde_json::json;
use vertice_backup::api::VerticeBackup;
use vertice_backup::api::run::RunPhase;
use vertice_core::clock::ManualClock;
use vertice_testkit::wait::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_execute_report_and_are_pruned_by_retention() {
    let mut env = Env::new("vb-e2e", false).await;
    let now = Utc::now() + TimeDelta::hours(1);
    let slot = now
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap();
    let clock = ManualClock::new(slot - TimeDelta::minutes(1));
    env.start_operator(&[], Some(Arc::new(clock.clone()))).await;
    let policy: VerticeBackup = serde_json::from_value(json!({
        "apiVersion": "backup.vertice.dev/v1alpha1",
        "kind": "VerticeBackup",
        "metadata": {"name": "hourly"},
        "spec": {
            "target": env.target(env.pg.port(), "db"),
            "schedule": "0 * * * *",
            "storage": env.storage(),
            "encryption": env.encryption(),
            "executor": {"type": "InProcess"},
            "retention": {"keepLast": 1, "maxDeletePercent": 100},
        },
    }))
    .unwrap();
    let policies: Api<VerticeBackup> = Api::namespaced(env.client.clone(), env.name());
    policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    // Moving the injected clock wakes nothing by itself: an annotation change reconciles.
    let tick = |n: u32| {
        let policies = policies.clone();
        async move {
            let patch =
                json!({"metadata": {"annotations": {"test.vertice.dev/tick": n.to_string()}}});
            policies
                .patch("hourly", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    let (store, _dir) = env.store();
    let mut names = Vec::new();
    for (n, at) in [slot, slot + TimeDelta::hours(1)].into_iter().enumerate() {
        clock.set(at + TimeDelta::seconds(5));
        tick(n as u32).await;
        let run = format!("hourly-{}", at.timestamp() / 60);
        eventually(&format!("run {run}"), WAIT, || async {
            env.requests().get_opt(&run).await.unwrap().map(|_| ())
        })
        .await
        .unwrap();
        let done = env.wait_phase(&run, RunPhase::Succeeded).await;
        let backup_name = done.status.unwrap().result.unwrap().backup_name.unwrap();
        let manifest = store.read_manifest(&backup_name).await.unwrap();
        // The status takes it, with the store's sizes.
        let record = eventually(&format!("the status to take {run}"), WAIT, || async {
            let seen = policies.get("hourly").await.unwrap();
            seen.status
                .and_then(|s| s.last_successful_backup)
                .filter(|r| r.request.as_deref() == Some(run.as_str()))
        })
        .await
        .unwrap();
        assert_eq!(record.name, backup_name);
        assert_eq!(record.stored_size, Some(manifest.stored_size as i64));
        assert_eq!(record.raw_size, Some(manifest.raw_size as i64));
        assert!(
            record
                .location
                .ends_with(&format!("team/app/{backup_name}")),
            "{}",
            record.location
        );
        names.push((run, backup_name));
    }
    // The second success triggered a sweep: keepLast 1 leaves only the newest backup, and the
    // run of the pruned one is gone with it.
    let pruned = eventually(
        "retention to prune the older backup and its run",
        WAIT,
        || async {
            let stored = store.list_backup_names().await.unwrap();
            let first_run = env.requests().get_opt(&names[0].0).await.unwrap();
            (stored == vec![names[1].1.clone()] && first_run.is_none()).then_some(())
        },
    )
    .await;
    if let Err(error) = pruned {
        let stored = store.list_backup_names().await.unwrap();
        panic!("{error}: stored {stored:?}");
    }
    assert!(env.requests().get_opt(&names[1].0).await.unwrap().is_some());
    env.stop_operator().await;
}
