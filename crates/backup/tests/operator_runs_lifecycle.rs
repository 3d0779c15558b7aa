//! The BackupRequest controller's side effects and recoveries against the real control plane,
//! kubelet stand-in, PostgreSQL, S3 server and an HTTP receiver: pre hooks gate a run, post
//! hooks and notifications are sent exactly once even across an operator restart, a missing
//! VerticeBackup is reported without a hot loop, and a dead in-process run is cleaned and
//! retried.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/operator_env.rs"]
mod operator_env;

use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use operator_env::{Env, eventually};
use serde_json::{Value, json};
use vertice_backup::api::run::{ErrorKind, RunPhase};
use vertice_backup::api::{BackupRequest, VerticeBackup};
use vertice_testkit::services::HttpSink;
use vertice_testkit::services::http_sink::Reply;

fn ready_reason(request: &BackupRequest) -> String {
    request
        .status
        .as_ref()
        .and_then(|status| status.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|condition| condition.reason.clone())
        .unwrap_or_default()
}

async fn create_policy(env: &Env, name: &str, extra: Value) {
    let mut spec = json!({
        "target": env.target(env.pg.port(), "db"),
        "schedule": "@yearly",
        "storage": env.storage(),
        "encryption": env.encryption(),
    });
    operator_env::merge(&mut spec, extra);
    let policy: VerticeBackup = serde_json::from_value(json!({
        "apiVersion": "backup.vertice.dev/v1alpha1",
        "kind": "VerticeBackup",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap();
    let api: Api<VerticeBackup> = Api::namespaced(env.client.clone(), env.name());
    api.create(&PostParams::default(), &policy).await.unwrap();
}

fn paths(sink: &HttpSink, path: &str) -> usize {
    sink.requests().iter().filter(|r| r.path == path).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_gate_runs_and_notifications_are_sent_once_across_a_restart() {
    let mut env = Env::new("runs-hooks", true).await;
    let sink = HttpSink::start().await.unwrap();
    env.secret("notify", &[("url", sink.url_for("/notify"))])
        .await;
    create_policy(
        &env,
        "hooked",
        json!({
            "hooks": {
                "pre": [{"name": "pre", "url": sink.url_for("/pre")}],
                "post": [{"name": "post", "url": sink.url_for("/post")}],
            },
            "notifications": [{"name": "ops", "on": "always", "webhook": {"urlSecretRef": {"name": "notify", "key": "url"}}}],
        }),
    )
    .await;
    env.start_operator(&[], None).await;

    env.create_request("first", json!({"backupRef": {"name": "hooked"}}), json!({}))
        .await;
    env.wait_phase("first", RunPhase::Succeeded).await;
    sink.wait_for_requests(3, operator_env::WAIT).await.unwrap();
    let notified = sink
        .requests()
        .into_iter()
        .find(|r| r.path == "/notify")
        .unwrap();
    let body = notified.body_json().unwrap();
    assert_eq!(body["outcome"], "succeeded");
    assert_eq!(body["name"], "first");
    assert_eq!(body["policy"], "hooked");
    eventually("the post-run work to be recorded", || async {
        let request = env.requests().get("first").await.ok()?;
        request
            .metadata
            .annotations?
            .contains_key("backup.vertice.dev/post-run-done")
            .then_some(())
    })
    .await;

    // A restarted operator does not repeat them: after a second run's own hooks and
    // notification (the barrier), each path was called exactly twice.
    env.stop_operator().await;
    env.start_operator(&[], None).await;
    env.create_request(
        "second",
        json!({"backupRef": {"name": "hooked"}}),
        json!({}),
    )
    .await;
    env.wait_phase("second", RunPhase::Succeeded).await;
    sink.wait_for_requests(6, operator_env::WAIT).await.unwrap();
    eventually("the second run's post-run work", || async {
        let request = env.requests().get("second").await.ok()?;
        request
            .metadata
            .annotations?
            .contains_key("backup.vertice.dev/post-run-done")
            .then_some(())
    })
    .await;
    for path in ["/pre", "/post", "/notify"] {
        assert_eq!(paths(&sink, path), 2, "{path}: {:?}", sink.requests());
    }

    // A failing pre hook (Fail policy) fails the run before any Job.
    sink.set_default_reply(Reply::status(400)).unwrap();
    env.create_request("gated", json!({"backupRef": {"name": "hooked"}}), json!({}))
        .await;
    let gated = env.wait_phase("gated", RunPhase::Failed).await;
    assert_eq!(ready_reason(&gated), "HookFailed");
    assert_eq!(
        gated.status.unwrap().result.unwrap().error_kind,
        Some(ErrorKind::HookFailed)
    );
    assert!(env.jobs_of("gated").await.is_empty());
    // Its failure is notified too (the notification also gets 400 and counts as failed).
    let metrics = eventually("the notification failure metric", || async {
        let metrics = env.metrics().await;
        metrics
            .contains("vertice_backup_notification_failures_total{")
            .then_some(metrics)
    })
    .await;
    assert!(metrics.contains(r#"channel="ops""#), "{metrics}");
    env.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_policy_is_reported_and_the_run_starts_once_it_exists() {
    let mut env = Env::new("runs-nopolicy", true).await;
    env.start_operator(&[], None).await;
    env.create_request("orphan", json!({"backupRef": {"name": "later"}}), json!({}))
        .await;
    let waiting = eventually("the missing VerticeBackup to be reported", || async {
        let request = env.requests().get("orphan").await.ok()?;
        (ready_reason(&request) == "BackupPolicyNotFound").then_some(request)
    })
    .await;
    assert_eq!(
        waiting.status.as_ref().map(|s| s.phase),
        Some(RunPhase::Pending)
    );
    assert!(env.jobs_of("orphan").await.is_empty());
    let events: Api<Event> = Api::namespaced(env.client.clone(), env.name());
    let warnings = events.list(&ListParams::default()).await.unwrap();
    assert!(
        warnings
            .items
            .iter()
            .any(|event| event.reason.as_deref() == Some("BackupPolicyNotFound")),
        "a Warning event names the reason"
    );
    create_policy(&env, "later", json!({})).await;
    env.wait_phase("orphan", RunPhase::Succeeded).await;
    env.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_in_process_run_has_its_partial_objects_deleted_and_is_retried() {
    let mut env = Env::new("runs-dead", false).await;
    let request = env
        .inline_request(
            "dead-run",
            json!({"executor": {"type": "InProcess"}}),
            json!({}),
        )
        .await;
    // What an operator killed mid-run leaves: the run `Running`, its name reserved and a
    // data object in the store, and no task.
    env.requests()
        .patch_status(
            "dead-run",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running", "attempts": 1}})),
        )
        .await
        .unwrap();
    let (store, _dir) = env.store();
    let junk = Path::from("team/app/dead-run/data-999999.vbk");
    let reservation = Path::from("team/app/dead-run/reservation.json");
    for path in [&junk, &reservation] {
        store
            .object_store()
            .put(path, b"partial".to_vec().into())
            .await
            .unwrap();
    }

    env.start_operator(&[], None).await;
    let done = env.wait_phase("dead-run", RunPhase::Succeeded).await;
    assert_eq!(done.status.as_ref().unwrap().attempts, Some(2));
    let manifest = env.manifest("dead-run").await;
    assert_eq!(
        manifest.labels.get("backup.vertice.dev/request-uid"),
        request.metadata.uid.as_ref()
    );
    assert!(
        store.object_store().head(&junk).await.is_err(),
        "the dead run's partial object is gone"
    );
    let events: Api<Event> = Api::namespaced(env.client.clone(), env.name());
    eventually("the restart Event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|event| event.reason.as_deref() == Some("Restarted"))
            .then_some(())
    })
    .await;
    assert!(env.jobs_of("dead-run").await.is_empty());
    env.stop_operator().await;
}
