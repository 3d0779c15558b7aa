//! The test-only `Sample` kind (it fails on demand: transient errors, an invalid spec, a value
//! that cannot be read) and an in-process operator running its controller, with a journal of
//! what the reconciler saw. Shared by `sample_controller.rs` and `sample_leader.rs`.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use k8s_openapi::{api::events::v1::Event, apimachinery::pkg::apis::meta::v1::Condition};
use kube::{
    Api, Client, CustomResource, ResourceExt,
    api::{Patch, PatchParams},
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
use vertice_testkit::control_plane::ControlPlane;

use super::common::eventually;

pub const FINALIZER: &str = "sample.test.vertice.dev/cleanup";
pub const CONTROLLER: &str = "samples.sample.test.vertice.dev";
pub const FIELD_MANAGER: &str = "vertice-sample";
pub const MALFORMED: &str = "malformed";
/// On a Sample: keep `status.count`, and reconcile again at once until it reaches
/// [`COUNT_TARGET`]. Each reconcile follows our own status write immediately, so the cache is
/// often still behind it.
pub const COUNT_ANNOTATION: &str = "count";
/// Where counting stops.
pub const COUNT_TARGET: u32 = 30;

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

pub fn reject_malformed<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
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
    /// On samples annotated [`COUNT_ANNOTATION`]: the previous status's count plus one, a value
    /// carried from status to status as schedules carry their missed slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
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
pub enum SampleError {
    #[error("transient failure {attempt} of {of}")]
    Transient { attempt: u32, of: u32 },
    #[error("spec.invalid is set")]
    Invalid,
    #[error("reading the sample failed")]
    Read(#[source] kube::Error),
}

impl ReconcileError for SampleError {
    fn reason(&self) -> &'static str {
        match self {
            Self::Transient { .. } => "TransientFailure",
            Self::Invalid => "InvalidSample",
            Self::Read(_) => "ReadFailed",
        }
    }
    fn class(&self) -> ErrorClass {
        match self {
            Self::Transient { .. } | Self::Read(_) => ErrorClass::Transient,
            Self::Invalid => ErrorClass::Permanent,
        }
    }
}

/// What the reconciler saw: apply attempts per object (generation, when) and cleanups.
#[derive(Default)]
pub struct Journal {
    pub applies: Mutex<HashMap<String, Vec<(i64, Instant)>>>,
    pub cleanups: Mutex<Vec<String>>,
    /// Applies of a counting sample whose copy was not the API server's latest version.
    pub behind: std::sync::atomic::AtomicUsize,
    /// Applies whose object (from the controller's cache) still carried `managedFields`.
    pub with_managed_fields: std::sync::atomic::AtomicUsize,
    /// Applies whose object still carried kubectl's last-applied-configuration annotation.
    pub with_last_applied: std::sync::atomic::AtomicUsize,
    /// Applies whose object carried the annotation `keep` (other annotations must stay).
    pub with_kept_annotation: std::sync::atomic::AtomicUsize,
}

impl Journal {
    pub fn applies(&self, name: &str) -> Vec<(i64, Instant)> {
        self.applies
            .lock()
            .map(|map| map.get(name).cloned().unwrap_or_default())
            .unwrap_or_default()
    }
    pub fn cleanups(&self) -> Vec<String> {
        self.cleanups
            .lock()
            .map(|list| list.clone())
            .unwrap_or_default()
    }
}

pub struct SampleReconciler {
    pub identity: String,
    pub journal: Arc<Journal>,
}

impl SampleReconciler {
    /// The count of a sample annotated [`COUNT_ANNOTATION`]; notes in the journal when the
    /// copy being reconciled is behind the API server.
    async fn count(&self, sample: &Sample, ctx: &Context) -> Result<Option<u32>, SampleError> {
        if !sample.annotations().contains_key(COUNT_ANNOTATION) {
            return Ok(None);
        }
        let api: Api<Sample> = ctx.api(&sample.namespace().unwrap_or_default());
        let latest = api
            .get_metadata(&sample.name_any())
            .await
            .map_err(SampleError::Read)?;
        if latest.metadata.resource_version != sample.metadata.resource_version {
            self.journal
                .behind
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        let previous = sample.status.as_ref().and_then(|status| status.count);
        Ok(Some(previous.unwrap_or(0) + 1))
    }
}

impl Reconciler<Sample> for SampleReconciler {
    type Error = SampleError;

    async fn apply(
        &self,
        sample: Arc<Sample>,
        ctx: &Context,
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
        let count = self.count(&sample, ctx).await?;
        let applied = Applied::new(SampleStatus {
            value: Some(sample.spec.value.clone()),
            reconciled_by: Some(self.identity.clone()),
            count,
            ..SampleStatus::default()
        });
        Ok(match count {
            Some(count) if count < COUNT_TARGET => applied.requeue_after(Duration::ZERO),
            _ => applied,
        })
    }

    async fn cleanup(&self, sample: Arc<Sample>, _ctx: &Context) -> Result<(), SampleError> {
        if let Ok(mut cleanups) = self.journal.cleanups.lock() {
            cleanups.push(sample.name_any());
        }
        Ok(())
    }
}

pub fn run_args(
    namespace: &str,
    kubeconfig: &Path,
    identity: &str,
    leader_election: bool,
) -> RunArgs {
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

pub fn fast_backoff() -> BackoffPolicy {
    BackoffPolicy {
        initial: Duration::from_millis(300),
        max: Duration::from_secs(10),
        factor: 2.0,
        jitter: 0.0,
    }
}

pub fn controller(
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
pub struct Running {
    pub stop: CancellationToken,
    pub task: JoinHandle<Result<(), OperatorError>>,
    pub admin: SocketAddr,
    pub journal: Arc<Journal>,
}

impl Running {
    pub async fn start(cp: &ControlPlane, namespace: &str) -> anyhow::Result<Self> {
        Self::start_with(cp, namespace, |builder| builder).await
    }

    /// [`start`](Self::start) with the controller changed by `adjust`.
    pub async fn start_with(
        cp: &ControlPlane,
        namespace: &str,
        adjust: impl FnOnce(
            ControllerBuilder<Sample, SampleReconciler>,
        ) -> ControllerBuilder<Sample, SampleReconciler>,
    ) -> anyhow::Result<Self> {
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
        .controller(adjust(controller("in-process", journal.clone())));
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

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .context("the operator did not stop within 30 s")???;
        Ok(())
    }
}

/// The annotation `kubectl apply` writes: the whole manifest again, as JSON.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub fn sample(name: &str, value: &str) -> Sample {
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

pub async fn create_raw(
    api: &Api<Sample>,
    name: &str,
    spec: serde_json::Value,
) -> anyhow::Result<()> {
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

pub fn ready(sample: &Sample) -> Option<&Condition> {
    conditions::find(&sample.status.as_ref()?.conditions, conditions::READY)
}

pub async fn wait_ready(
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

pub async fn events_for(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Vec<Event>> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    Ok(events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|event| event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect())
}

pub async fn wait_event(
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
