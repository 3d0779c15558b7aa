//! The core runtime proven against a REAL kube-apiserver + etcd (from vertice-testkit) with the
//! test-only `Sample` kind (`sample/`): finalizer and cleanup, conditions, server-side-apply
//! status written only on change, what the cache drops, Events, backoff, invalid specs,
//! malformed objects and metrics/readiness. Leader hand-over is in `sample_leader.rs`.

mod common;
mod sample;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::{eventually, install_crd};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use sample::*;
use vertice_testkit::{control_plane::ControlPlane, namespace::TestNamespace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizer_conditions_status_events_and_metrics() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    eprintln!("control plane: kube-apiserver {}", cp.server_version());
    let client = cp.admin_client().await?;
    install_crd::<Sample>(&client).await?;
    let ns = TestNamespace::create(&client, "core-basics").await?;
    let api: Api<Sample> = Api::namespaced(client.clone(), ns.name());
    let operator = Running::start(cp, ns.name()).await?;

    // Created as `kubectl apply` would: the manifest again in an annotation, beside another.
    let mut one = sample("one", "a");
    one.metadata.annotations = Some(
        [
            (LAST_APPLIED.to_owned(), serde_json::to_string(&one)?),
            ("keep".to_owned(), "me".to_owned()),
        ]
        .into(),
    );
    api.create(&PostParams::default(), &one).await?;
    let first = wait_ready(&api, "one", "True", 1).await?;
    assert!(
        first.finalizers().iter().any(|f| f == FINALIZER),
        "finalizer added"
    );
    let ready_condition = ready(&first).cloned().context("Ready")?;
    assert_eq!(ready_condition.reason, "Reconciled");
    let status = first.status.clone().context("status")?;
    assert_eq!(status.value.as_deref(), Some("a"));
    // Status is owned by the operator's field manager, written to the status subresource.
    let managers = first.metadata.managed_fields.clone().unwrap_or_default();
    assert!(
        managers
            .iter()
            .any(|m| m.manager.as_deref() == Some(FIELD_MANAGER)
                && m.operation.as_deref() == Some("Apply")
                && m.subresource.as_deref() == Some("status")),
        "status applied by {FIELD_MANAGER}: {managers:?}"
    );
    // ... but the controller's cache drops them: reconciles never saw any.
    assert!(!operator.journal.applies("one").is_empty());
    assert_eq!(
        operator
            .journal
            .with_managed_fields
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "reconciles got objects with managedFields from the cache"
    );
    // The same for kubectl's copy of the manifest; other annotations stay.
    let seen = |counter: &std::sync::atomic::AtomicUsize| {
        counter.load(std::sync::atomic::Ordering::SeqCst)
    };
    assert!(first.annotations().contains_key(LAST_APPLIED));
    assert_eq!(seen(&operator.journal.with_last_applied), 0);
    assert_eq!(
        seen(&operator.journal.with_kept_annotation),
        operator.journal.applies("one").len()
    );

    // A reconcile that changes nothing writes nothing: trigger one with a label change and
    // check that the resourceVersion stays the one our label patch produced.
    let applies_before = operator.journal.applies("one").len();
    let labelled = api
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"poke": "1"}}})),
        )
        .await?;
    eventually(
        "a reconcile after the label change",
        Duration::from_secs(20),
        || async { (operator.journal.applies("one").len() > applies_before).then_some(()) },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = api.get("one").await?;
    assert_eq!(
        after.resource_version(),
        labelled.resource_version(),
        "no status write when nothing changed"
    );

    // A spec change: observedGeneration follows; Ready stayed True so its transition time stays.
    tokio::time::sleep(Duration::from_millis(1100)).await; // make a moved timestamp visible
    api.patch(
        "one",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"value": "b"}})),
    )
    .await?;
    let second = wait_ready(&api, "one", "True", 2).await?;
    assert_eq!(
        second.status.as_ref().and_then(|s| s.value.as_deref()),
        Some("b")
    );
    assert_eq!(
        ready(&second).map(|c| c.last_transition_time.clone()),
        Some(ready_condition.last_transition_time.clone()),
        "lastTransitionTime moves only when status changes"
    );

    // Events: the Ready transition.
    wait_event(&client, ns.name(), "one", "Normal", "Reconciled").await?;

    // Admin server: metrics and readiness.
    let body = reqwest::get(format!("http://{}/metrics", operator.admin))
        .await?
        .text()
        .await?;
    let success =
        format!(r#"vertice_reconcile_total{{controller="{CONTROLLER}",result="success"}}"#);
    assert!(body.contains(&success), "{body}");
    assert!(
        body.contains("vertice_reconcile_duration_seconds_bucket"),
        "{body}"
    );
    let resources = format!(r#"vertice_resources{{controller="{CONTROLLER}",ready="True"}} 1"#);
    assert!(body.contains(&resources), "{body}");
    let readyz = reqwest::get(format!("http://{}/readyz", operator.admin)).await?;
    assert_eq!(readyz.status(), reqwest::StatusCode::OK);

    // Deletion: cleanup runs, the finalizer goes, the object disappears.
    api.delete("one", &DeleteParams::default()).await?;
    eventually(
        "the object to disappear",
        Duration::from_secs(30),
        || async { matches!(api.get_opt("one").await, Ok(None)).then_some(()) },
    )
    .await?;
    assert_eq!(operator.journal.cleanups(), vec!["one".to_owned()]);
    wait_event(&client, ns.name(), "one", "Normal", "CleanedUp").await?;

    operator.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_back_off_and_reset_on_success() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.admin_client().await?;
    install_crd::<Sample>(&client).await?;
    let ns = TestNamespace::create(&client, "core-backoff").await?;
    let api: Api<Sample> = Api::namespaced(client.clone(), ns.name());
    let operator = Running::start(cp, ns.name()).await?;

    let mut flaky = sample("flaky", "x");
    flaky.spec.fail_times = 4;
    api.create(&PostParams::default(), &flaky).await?;
    wait_ready(&api, "flaky", "True", 1).await?;
    let attempts: Vec<Instant> = operator
        .journal
        .applies("flaky")
        .into_iter()
        .filter(|(generation, _)| *generation == 1)
        .map(|(_, at)| at)
        .collect();
    assert_eq!(attempts.len(), 5, "four failures then a success");
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("retry gaps: {gaps:?}");
    // 0.3 s, 0.6 s, 1.2 s, 2.4 s (no jitter): each gap clearly longer than the one before.
    for pair in gaps.windows(2) {
        assert!(
            pair[1].as_secs_f64() > pair[0].as_secs_f64() * 1.5,
            "gaps grow: {gaps:?}"
        );
    }
    assert!(
        gaps[0] >= Duration::from_millis(250),
        "first retry waits the initial delay: {gaps:?}"
    );
    wait_event(&client, ns.name(), "flaky", "Warning", "TransientFailure").await?;

    // After the success the counter starts over: a new generation failing twice retries after
    // the initial delay again, not after 4.8 s.
    api.patch(
        "flaky",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"value": "y", "failTimes": 2}})),
    )
    .await?;
    wait_ready(&api, "flaky", "True", 2).await?;
    let second: Vec<Instant> = operator
        .journal
        .applies("flaky")
        .into_iter()
        .filter(|(generation, _)| *generation == 2)
        .map(|(_, at)| at)
        .collect();
    assert_eq!(second.len(), 3);
    let first_gap = second[1] - second[0];
    eprintln!("first retry gap after reset: {first_gap:?}");
    assert!(
        first_gap < Duration::from_millis(1000),
        "backoff was reset: {first_gap:?}"
    );

    let body = reqwest::get(format!("http://{}/metrics", operator.admin))
        .await?
        .text()
        .await?;
    let errors = format!(
        r#"vertice_reconcile_errors_total{{controller="{CONTROLLER}",reason="TransientFailure"}} 6"#
    );
    assert!(body.contains(&errors), "{body}");
    operator.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spec_is_reported_once_and_not_retried() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.admin_client().await?;
    install_crd::<Sample>(&client).await?;
    let ns = TestNamespace::create(&client, "core-invalid").await?;
    let api: Api<Sample> = Api::namespaced(client.clone(), ns.name());
    let operator = Running::start(cp, ns.name()).await?;

    let mut bad = sample("bad", "x");
    bad.spec.invalid = true;
    api.create(&PostParams::default(), &bad).await?;
    let reported = wait_ready(&api, "bad", "False", 1).await?;
    let condition = ready(&reported).cloned().context("Ready")?;
    assert_eq!(condition.reason, "InvalidSample");
    assert!(
        condition.message.contains("spec.invalid is set"),
        "{}",
        condition.message
    );
    wait_event(&client, ns.name(), "bad", "Warning", "InvalidSample").await?;

    // No hot loop: the same generation is not tried again (our own status write included).
    let attempts = operator.journal.applies("bad").len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        operator.journal.applies("bad").len(),
        attempts,
        "no retries of an invalid spec"
    );
    // The first pass adds the finalizer and returns; the second runs apply and fails.
    assert!(attempts <= 2, "{attempts} applies");

    // Fixing the spec (a new generation) recovers.
    api.patch(
        "bad",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"invalid": false}})),
    )
    .await?;
    let fixed = wait_ready(&api, "bad", "True", 2).await?;
    assert_ne!(
        ready(&fixed).map(|c| c.last_transition_time.clone()),
        Some(condition.last_transition_time.clone()),
        "False → True moves lastTransitionTime"
    );
    operator.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_object_does_not_break_the_watch_nor_block_deletion() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.admin_client().await?;
    install_crd::<Sample>(&client).await?;
    let ns = TestNamespace::create(&client, "core-malformed").await?;
    let api: Api<Sample> = Api::namespaced(client.clone(), ns.name());
    let operator = Running::start(cp, ns.name()).await?;

    // Valid first, so it gets our finalizer; then malformed.
    create_raw(&api, "odd", serde_json::json!({"value": "fine"})).await?;
    wait_ready(&api, "odd", "True", 1).await?;
    create_raw(&api, "odd", serde_json::json!({"value": MALFORMED})).await?;
    api.create(&PostParams::default(), &sample("good", "g"))
        .await?;
    wait_ready(&api, "good", "True", 1).await?;

    // `Api<Sample>` cannot read the malformed object; read it untyped.
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns.name(),
        &kube::api::ApiResource::erase::<Sample>(&()),
    );
    eventually(
        "odd to report InvalidSpec",
        Duration::from_secs(30),
        || async {
            let object = raw.get("odd").await.ok()?;
            let conditions = object
                .data
                .get("status")?
                .get("conditions")?
                .as_array()?
                .clone();
            conditions
                .iter()
                .any(|c| {
                    c["type"] == "Ready" && c["status"] == "False" && c["reason"] == "InvalidSpec"
                })
                .then_some(())
        },
    )
    .await?;
    wait_event(&client, ns.name(), "odd", "Warning", "InvalidSpec").await?;

    // Deleting it must not hang on our finalizer.
    raw.delete("odd", &DeleteParams::default()).await?;
    eventually(
        "the malformed object to disappear",
        Duration::from_secs(30),
        || async { matches!(raw.get_opt("odd").await, Ok(None)).then_some(()) },
    )
    .await?;
    wait_event(&client, ns.name(), "odd", "Warning", "CleanupSkipped").await?;
    operator.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_only_never_reconciles_a_copy_behind_the_api_server() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.admin_client().await?;
    install_crd::<Sample>(&client).await?;
    let ns = TestNamespace::create(&client, "core-latest").await?;
    let api: Api<Sample> = Api::namespaced(client.clone(), ns.name());
    let operator = Running::start_with(cp, ns.name(), |builder| builder.latest_only()).await?;

    // Each count is written and reconciled again at once, when the cache often still holds the
    // copy before that write. A reconcile of that copy would carry its older count.
    let mut counted = sample("counted", "x");
    counted
        .annotations_mut()
        .insert(COUNT_ANNOTATION.to_owned(), String::new());
    api.create(&PostParams::default(), &counted).await?;
    let done = eventually(
        "the count to reach its target",
        Duration::from_secs(60),
        || async {
            let current = api.get("counted").await.ok()?;
            let count = current.status.as_ref()?.count?;
            (count >= COUNT_TARGET).then_some(count)
        },
    )
    .await?;
    assert_eq!(done, COUNT_TARGET);
    let behind = operator
        .journal
        .behind
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(behind, 0, "applies given a copy behind the API server");
    operator.stop().await
}
