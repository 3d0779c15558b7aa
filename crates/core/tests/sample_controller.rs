//! The core runtime proven against a REAL kube-apiserver + etcd (from vertice-testkit) with a
//! test-only `Sample` kind: finalizer and cleanup, conditions, server-side-apply status written
//! only on change, Events, backoff, invalid specs, malformed objects, metrics/readiness, and
//! leader hand-over between two processes when the leader is SIGKILLed.
//!
//! The second process of the hand-over test is this test binary itself, re-executed with
//! `--exact leader_child` and `VERTICE_SAMPLE_CHILD=1`; without that variable `leader_child`
//! does nothing.

mod common;

use std::{
    collections::HashMap,
    io::Read,
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use common::{eventually, install_crd};
use k8s_openapi::{
    api::{coordination::v1::Lease, events::v1::Event},
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{
    Api, Client, CustomResource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vertice_core::{
    Applied, Context, ControllerBuilder, Operator, OperatorError, Reconciler,
    backoff::BackoffPolicy,
    cli::{LogFormat, RunArgs},
    conditions,
    error::{ErrorClass, ReconcileError},
    status::ObjectStatus,
};
use vertice_testkit::{control_plane::ControlPlane, namespace::TestNamespace};

const FINALIZER: &str = "sample.test.vertice.dev/cleanup";
const CONTROLLER: &str = "samples.sample.test.vertice.dev";
const FIELD_MANAGER: &str = "vertice-sample";
const MALFORMED: &str = "malformed";

/// A test-only kind that fails on demand.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sample.test.vertice.dev",
    version = "v1",
    kind = "Sample",
    namespaced,
    status = "SampleStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct SampleSpec {
    /// Echoed into the status. The value `malformed` passes the API schema but fails to
    /// deserialize in Rust, like an object written for a newer version of the CRD.
    #[serde(deserialize_with = "reject_malformed")]
    #[schemars(with = "String")]
    pub value: String,
    /// How many applies of each generation fail with a transient error before one succeeds.
    #[serde(default)]
    pub fail_times: u32,
    /// Makes apply fail with a permanent (invalid spec) error.
    #[serde(default)]
    pub invalid: bool,
}

fn reject_malformed<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = String::deserialize(deserializer)?;
    if value == MALFORMED {
        return Err(serde::de::Error::custom("value `malformed` cannot be read"));
    }
    Ok(value)
}

/// Status of a Sample.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SampleStatus {
    /// Generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// `spec.value` as last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Identity of the replica that wrote this status (for the hand-over test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_by: Option<String>,
}

impl ObjectStatus for SampleStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn conditions_mut(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
    fn set_observed_generation(&mut self, generation: Option<i64>) {
        self.observed_generation = generation;
    }
}

#[derive(Debug, thiserror::Error)]
enum SampleError {
    #[error("transient failure {attempt} of {of}")]
    Transient { attempt: u32, of: u32 },
    #[error("spec.invalid is set")]
    Invalid,
}

impl ReconcileError for SampleError {
    fn reason(&self) -> &'static str {
        match self {
            Self::Transient { .. } => "TransientFailure",
            Self::Invalid => "InvalidSample",
        }
    }
    fn class(&self) -> ErrorClass {
        match self {
            Self::Transient { .. } => ErrorClass::Transient,
            Self::Invalid => ErrorClass::Permanent,
        }
    }
}

/// What the reconciler saw: apply attempts per object (generation, when) and cleanups.
#[derive(Default)]
struct Journal {
    applies: Mutex<HashMap<String, Vec<(i64, Instant)>>>,
    cleanups: Mutex<Vec<String>>,
    /// Applies whose object (from the controller's cache) still carried `managedFields`.
    with_managed_fields: std::sync::atomic::AtomicUsize,
    /// Applies whose object still carried kubectl's last-applied-configuration annotation.
    with_last_applied: std::sync::atomic::AtomicUsize,
    /// Applies whose object carried the annotation `keep` (other annotations must stay).
    with_kept_annotation: std::sync::atomic::AtomicUsize,
}

impl Journal {
    fn applies(&self, name: &str) -> Vec<(i64, Instant)> {
        self.applies
            .lock()
            .map(|map| map.get(name).cloned().unwrap_or_default())
            .unwrap_or_default()
    }
    fn cleanups(&self) -> Vec<String> {
        self.cleanups
            .lock()
            .map(|list| list.clone())
            .unwrap_or_default()
    }
}

struct SampleReconciler {
    identity: String,
    journal: Arc<Journal>,
}

impl Reconciler<Sample> for SampleReconciler {
    type Error = SampleError;

    async fn apply(
        &self,
        sample: Arc<Sample>,
        _ctx: &Context,
    ) -> Result<Applied<SampleStatus>, SampleError> {
        let generation = sample.metadata.generation.unwrap_or_default();
        if sample.metadata.managed_fields.is_some() {
            self.journal
                .with_managed_fields
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        let annotations = sample.annotations();
        if annotations.contains_key(LAST_APPLIED) {
            self.journal
                .with_last_applied
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        if annotations.contains_key("keep") {
            self.journal
                .with_kept_annotation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        let attempts_this_generation = {
            let mut applies = self
                .journal
                .applies
                .lock()
                .map_err(|_| SampleError::Invalid)?;
            let list = applies.entry(sample.name_any()).or_default();
            list.push((generation, Instant::now()));
            list.iter().filter(|(g, _)| *g == generation).count() as u32
        };
        if sample.spec.invalid {
            return Err(SampleError::Invalid);
        }
        if attempts_this_generation <= sample.spec.fail_times {
            return Err(SampleError::Transient {
                attempt: attempts_this_generation,
                of: sample.spec.fail_times,
            });
        }
        Ok(Applied::new(SampleStatus {
            value: Some(sample.spec.value.clone()),
            reconciled_by: Some(self.identity.clone()),
            ..SampleStatus::default()
        }))
    }

    async fn cleanup(&self, sample: Arc<Sample>, _ctx: &Context) -> Result<(), SampleError> {
        if let Ok(mut cleanups) = self.journal.cleanups.lock() {
            cleanups.push(sample.name_any());
        }
        Ok(())
    }
}

fn run_args(namespace: &str, kubeconfig: &Path, identity: &str, leader_election: bool) -> RunArgs {
    RunArgs {
        kubeconfig: Some(kubeconfig.to_owned()),
        namespace: Some(namespace.to_owned()),
        admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        log_format: LogFormat::Text,
        log_filter: "info,vertice_core=debug".to_owned(),
        leader_election,
        leader_election_namespace: Some(namespace.to_owned()),
        identity: Some(identity.to_owned()),
        concurrency: 4,
        lease_name: Some("sample-leader".to_owned()),
        lease_duration_seconds: 4,
        lease_renew_deadline_seconds: 3,
        lease_retry_period_seconds: 1,
    }
}

fn fast_backoff() -> BackoffPolicy {
    BackoffPolicy {
        initial: Duration::from_millis(300),
        max: Duration::from_secs(10),
        factor: 2.0,
        jitter: 0.0,
    }
}

fn controller(
    identity: &str,
    journal: Arc<Journal>,
) -> ControllerBuilder<Sample, SampleReconciler> {
    ControllerBuilder::new(SampleReconciler {
        identity: identity.to_owned(),
        journal,
    })
    .finalizer(FINALIZER)
    .backoff(fast_backoff())
    .requeue_after(Duration::from_secs(600))
}

/// An in-process operator for one test namespace; stopped through `stop`.
struct Running {
    stop: CancellationToken,
    task: JoinHandle<Result<(), OperatorError>>,
    admin: SocketAddr,
    journal: Arc<Journal>,
}

impl Running {
    async fn start(cp: &ControlPlane, namespace: &str) -> anyhow::Result<Self> {
        let journal = Arc::new(Journal::default());
        let stop = CancellationToken::new();
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let operator = Operator::new(
            "sample",
            run_args(namespace, cp.admin_kubeconfig(), "in-process", false),
        )
        .handle_signals(false)
        .shutdown_on(stop.clone())
        .on_admin_bound(bound_tx)
        .controller(controller("in-process", journal.clone()));
        let task = tokio::spawn(operator.run());
        let admin = bound_rx
            .await
            .context("the operator stopped before its admin server bound")?;
        Ok(Self {
            stop,
            task,
            admin,
            journal,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .context("the operator did not stop within 30 s")???;
        Ok(())
    }
}

/// The annotation `kubectl apply` writes: the whole manifest again, as JSON.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn sample(name: &str, value: &str) -> Sample {
    let mut sample = Sample::new(
        name,
        SampleSpec {
            value: value.to_owned(),
            fail_times: 0,
            invalid: false,
        },
    );
    sample.metadata.labels = None;
    sample
}

async fn create_raw(api: &Api<Sample>, name: &str, spec: serde_json::Value) -> anyhow::Result<()> {
    let object = serde_json::json!({
        "apiVersion": "sample.test.vertice.dev/v1",
        "kind": "Sample",
        "metadata": { "name": name },
        "spec": spec,
    });
    // Raw JSON so a `malformed` value (which `Sample` itself refuses) can be created.
    api.patch(
        name,
        &PatchParams::apply("vertice-core-tests"),
        &Patch::Apply(&object),
    )
    .await
    .map(|_| ())
    .or_else(|error| match error {
        // The response of a malformed object does not deserialize into `Sample`; the write happened.
        kube::Error::SerdeError(_) => Ok(()),
        other => Err(other),
    })?;
    Ok(())
}

fn ready(sample: &Sample) -> Option<&Condition> {
    conditions::find(&sample.status.as_ref()?.conditions, conditions::READY)
}

async fn wait_ready(
    api: &Api<Sample>,
    name: &str,
    status: &str,
    generation: i64,
) -> anyhow::Result<Sample> {
    eventually(
        &format!("{name} to have Ready={status} at generation {generation}"),
        Duration::from_secs(30),
        || async {
            let sample = api.get(name).await.ok()?;
            let condition = ready(&sample)?;
            let observed = sample.status.as_ref()?.observed_generation;
            (condition.status == status
                && observed == Some(generation)
                && condition.observed_generation == Some(generation))
            .then_some(sample.clone())
        },
    )
    .await
}

async fn events_for(client: &Client, namespace: &str, name: &str) -> anyhow::Result<Vec<Event>> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    Ok(events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|event| event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect())
}

async fn wait_event(
    client: &Client,
    namespace: &str,
    name: &str,
    type_: &str,
    reason: &str,
) -> anyhow::Result<Event> {
    eventually(
        &format!("a {type_} event {reason} for {name}"),
        Duration::from_secs(20),
        || async {
            events_for(client, namespace, name)
                .await
                .ok()?
                .into_iter()
                .find(|event| {
                    event.type_.as_deref() == Some(type_) && event.reason.as_deref() == Some(reason)
                })
        },
    )
    .await
}

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

/// Kills (SIGKILL) and reaps the child process when dropped, so no test leaves one behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_replica(identity: &str, namespace: &str, kubeconfig: &Path) -> anyhow::Result<ChildGuard> {
    let child = Command::new(std::env::current_exe()?)
        .args(["--exact", "leader_child", "--nocapture", "--test-threads=1"])
        .env("VERTICE_SAMPLE_CHILD", "1")
        .env("SAMPLE_IDENTITY", identity)
        .env("SAMPLE_NAMESPACE", namespace)
        .env("SAMPLE_KUBECONFIG", kubeconfig)
        // The child exits when this pipe closes, i.e. when this process dies in any way.
        .stdin(Stdio::piped())
        .spawn()?;
    Ok(ChildGuard(child))
}

async fn lease_holder(client: &Client, namespace: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    leases
        .get("sample-leader")
        .await
        .ok()?
        .spec?
        .holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_hand_over_between_processes() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.admin_client().await?;
    install_crd::<Sample>(&client).await?;
    let ns = TestNamespace::create(&client, "core-leader").await?;
    let api: Api<Sample> = Api::namespaced(client.clone(), ns.name());

    let mut first = spawn_replica("replica-a", ns.name(), cp.admin_kubeconfig())?;
    eventually("replica-a to lead", Duration::from_secs(60), || async {
        (lease_holder(&client, ns.name()).await.as_deref() == Some("replica-a")).then_some(())
    })
    .await?;
    let _second = spawn_replica("replica-b", ns.name(), cp.admin_kubeconfig())?;
    api.create(&PostParams::default(), &sample("led", "1"))
        .await?;
    let by_a = wait_ready(&api, "led", "True", 1).await?;
    assert_eq!(
        by_a.status
            .as_ref()
            .and_then(|s| s.reconciled_by.as_deref()),
        Some("replica-a")
    );
    // Give the standby time to come up and observe the Lease being renewed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        lease_holder(&client, ns.name()).await.as_deref(),
        Some("replica-a")
    );

    first.0.kill()?; // SIGKILL: no release, the Lease must expire
    first.0.wait()?;
    let killed = Instant::now();
    eventually(
        "replica-b to take over",
        Duration::from_secs(30),
        || async {
            (lease_holder(&client, ns.name()).await.as_deref() == Some("replica-b")).then_some(())
        },
    )
    .await?;
    let takeover = killed.elapsed();
    eprintln!("standby took over {takeover:?} after the leader was killed (lease 4 s, retry 1 s)");
    // Lease duration + one retry period, plus scheduling slack.
    assert!(
        takeover <= Duration::from_secs(4 + 1 + 2),
        "takeover took {takeover:?}"
    );

    api.patch(
        "led",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"value": "2"}})),
    )
    .await?;
    let by_b = wait_ready(&api, "led", "True", 2).await?;
    assert_eq!(
        by_b.status
            .as_ref()
            .and_then(|s| s.reconciled_by.as_deref()),
        Some("replica-b")
    );
    assert_eq!(
        by_b.status.as_ref().and_then(|s| s.value.as_deref()),
        Some("2")
    );
    Ok(())
}

/// The replica process of `leader_hand_over_between_processes`; a no-op in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_child() -> anyhow::Result<()> {
    if std::env::var_os("VERTICE_SAMPLE_CHILD").is_none() {
        return Ok(());
    }
    // Exit when the parent goes away (stdin closes) or after a hard limit, whatever happens.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(180));
        std::process::exit(3);
    });
    let identity = std::env::var("SAMPLE_IDENTITY")?;
    let namespace = std::env::var("SAMPLE_NAMESPACE")?;
    let kubeconfig = std::env::var("SAMPLE_KUBECONFIG")?;
    Operator::new(
        "sample",
        run_args(&namespace, Path::new(&kubeconfig), &identity, true),
    )
    .controller(controller(&identity, Arc::new(Journal::default())))
    .run()
    .await?;
    Ok(())
}
