//! Finished runs leave the operator's caches (issue 7's memory target), against the real
//! kube-apiserver, PostgreSQL and S3 server: a run whose work is done is labelled
//! `backup.vertice.dev/finished=true` and no longer counts in the controller's cache, its
//! size gauge survives an operator restart (the start-up pass reads labelled runs), and a run
//! an older operator finished without the label is labelled without running again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/operator_env.rs"]
mod operator_env;

use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use operator_env::{Env, eventually, sample};
use serde_json::json;
use vertice_backup::api::BackupRequest;
use vertice_backup::api::run::RunPhase;
use vertice_backup::controller::labels::{FINISHED, POST_RUN_DONE};

const IN_PROCESS: &str = "InProcess";

fn label<'a>(run: &'a BackupRequest, key: &str) -> Option<&'a str> {
    run.labels().get(key).map(String::as_str)
}

/// Waits until `name` carries the finished label.
async fn wait_labelled(env: &Env, name: &str) -> BackupRequest {
    eventually(&format!("{name} to be labelled finished"), || async {
        let run = env.requests().get(name).await.ok()?;
        (label(&run, FINISHED) == Some("true")).then_some(run)
    })
    .await
}

/// The BackupRequests in the controller's cache, over all Ready states.
fn cached_runs(metrics: &str) -> f64 {
    ["True", "False", "Unknown"]
        .iter()
        .filter_map(|ready| {
            sample(
                metrics,
                &format!(
                    r#"vertice_resources{{controller="backuprequests.backup.vertice.dev",ready="{ready}"}}"#
                ),
            )
        })
        .sum()
}

fn size_series(env: &Env, backup: &str) -> String {
    format!(
        r#"vertice_backup_size_bytes{{namespace="{0}",backup="{backup}",project="{0}",environment=""}}"#,
        env.name()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_runs_leave_the_cache_and_keep_their_size_gauge_across_a_restart() {
    let mut env = Env::new("runs-finished", false).await;
    env.start_operator(&[], None).await;
    let in_process = json!({"executor": {"type": IN_PROCESS}});
    env.inline_request("done", in_process.clone(), json!({}))
        .await;
    // A run that waits (its VerticeBackup does not exist): it stays in the cache.
    env.create_request(
        "waiting",
        json!({"backupRef": {"name": "missing"}}),
        json!({}),
    )
    .await;
    let done = env.wait_phase("done", RunPhase::Succeeded).await;
    let stored = done
        .status
        .as_ref()
        .and_then(|status| status.result.as_ref())
        .and_then(|result| result.stored_size)
        .unwrap();
    let labelled = wait_labelled(&env, "done").await;
    assert_eq!(
        labelled
            .annotations()
            .get(POST_RUN_DONE)
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        label(&env.requests().get("waiting").await.unwrap(), FINISHED),
        None
    );
    let metrics = eventually("only the waiting run in the cache", || async {
        let metrics = env.metrics().await;
        (cached_runs(&metrics) == 1.0).then_some(metrics)
    })
    .await;
    assert_eq!(
        sample(&metrics, &size_series(&env, "done")),
        Some(stored as f64)
    );

    // While the operator is down, a run as an operator without the label left it: finished,
    // its post-run work done, unlabelled.
    env.stop_operator().await;
    let legacy: BackupRequest = serde_json::from_value(json!({
        "apiVersion": "backup.vertice.dev/v1alpha1",
        "kind": "BackupRequest",
        "metadata": {"name": "legacy", "annotations": {POST_RUN_DONE: "true"}},
        "spec": {
            "target": env.target(env.pg.port(), "db"),
            "storage": env.storage(),
            "encryption": env.encryption(),
            "executor": {"type": IN_PROCESS},
        },
    }))
    .unwrap();
    env.requests()
        .create(&Default::default(), &legacy)
        .await
        .unwrap();
    let completed = "2026-01-02T03:04:05Z";
    env.requests()
        .patch_status(
            "legacy",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "phase": "Succeeded",
                "completionTime": completed,
                "result": {"backupName": "legacy-0", "storedSize": 12345},
            }})),
        )
        .await
        .unwrap();

    env.start_operator(&[], None).await;
    let legacy = wait_labelled(&env, "legacy").await;
    // Labelled, not run again: the status is the one it had.
    let status = legacy.status.as_ref().unwrap();
    assert_eq!(status.phase, RunPhase::Succeeded);
    assert_eq!(
        status.result.as_ref().and_then(|result| result.stored_size),
        Some(12345)
    );
    // Both sizes are back: "done" only through the start-up pass (it is not cached), and
    // the cache again holds only the waiting run.
    let metrics = eventually("both size series and one cached run", || async {
        let metrics = env.metrics().await;
        (sample(&metrics, &size_series(&env, "done")).is_some()
            && sample(&metrics, &size_series(&env, "legacy")).is_some()
            && cached_runs(&metrics) == 1.0)
            .then_some(metrics)
    })
    .await;
    assert_eq!(
        sample(&metrics, &size_series(&env, "done")),
        Some(stored as f64)
    );
    assert_eq!(
        sample(&metrics, &size_series(&env, "legacy")),
        Some(12345.0)
    );
    env.stop_operator().await;
}
