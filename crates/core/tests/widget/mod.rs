//! The test-only `Widget` kind and an in-process operator running its controller with every
//! relation the core offers: owned ConfigMaps (label-filtered) and Secrets (metadata only), a
//! ServiceAccount mapper, a Secret → widgets lookup through the store, a trigger, background
//! tasks, a cache gauge and an injected clock. Shared by the `controller_*` test files; each
//! uses a part of it.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::common::{eventually, install_crd};
use anyhow::Context as _;
use chrono::Utc;
use k8s_openapi::{
    api::core::v1::{ConfigMap, Secret, ServiceAccount},
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{
    Api, Client, CustomResource, Resource, ResourceExt,
    api::{ListParams, ObjectMeta, Patch, PostParams},
    runtime::{reflector::ObjectRef, watcher},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use vertice_core::{
    Applied, Context, ControllerBuilder, Operator, OperatorError, PrimaryStoreExt, Reconciler,
    backoff::BackoffPolicy,
    cli::{LogFormat, RunArgs},
    clock::ManualClock,
    conditions,
    error::{ErrorClass, ReconcileError},
    status::ObjectStatus,
    tasks::{ObjectTasks, SpawnRefused, TaskPanicked, TaskPoll},
    trigger::{self, Trigger},
};
use vertice_testkit::{control_plane::ControlPlane, namespace::TestNamespace};

/// Children with this label are watched by `owns_with`; others are not.
pub const OWNED_LABEL: &str = "wiring.test.vertice.dev/owned";
/// Widgets with this label are left out of the controller's watch and cache.
pub const RETIRED_LABEL: &str = "wiring.test.vertice.dev/retired";
/// On a ServiceAccount: the comma-separated Widgets it maps to.
pub const WIDGETS_ANNOTATION: &str = "wiring.test.vertice.dev/widgets";
pub const WAIT: Duration = Duration::from_secs(30);

/// A test-only kind.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "wiring.test.vertice.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct WidgetSpec {
    /// The Secret this widget uses (found by the reverse lookup when the Secret changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Exported as the `widget_size` cache gauge.
    #[serde(default)]
    pub size: f64,
    /// Makes apply fail with a permanent error.
    #[serde(default)]
    pub invalid: bool,
    /// Runs a background task that ends when the test opens the widget's gate.
    #[serde(default)]
    pub task: bool,
}

/// Status of a Widget.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    /// Generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// What the background task returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_result: Option<String>,
}

impl ObjectStatus for WidgetStatus {
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
pub enum WidgetError {
    #[error("spec.invalid is set")]
    Invalid,
    #[error(transparent)]
    Panicked(TaskPanicked),
}

impl ReconcileError for WidgetError {
    fn reason(&self) -> &'static str {
        match self {
            Self::Invalid => "InvalidWidget",
            Self::Panicked(_) => "TaskPanicked",
        }
    }
    fn class(&self) -> ErrorClass {
        ErrorClass::Permanent
    }
}

/// What the reconciler and its tasks did, per widget name.
#[derive(Default)]
pub struct Journal {
    pub applies: Mutex<HashMap<String, usize>>,
    pub task_starts: Mutex<HashMap<String, usize>>,
    pub refusals: Mutex<Vec<(String, SpawnRefused)>>,
    pub cancelled: Mutex<Vec<String>>,
    pub gates: Mutex<HashMap<String, Arc<Notify>>>,
    /// What each run of the start hook listed: the retired widgets of its namespace.
    pub start_listings: Mutex<Vec<Vec<String>>>,
}

pub fn count(map: &Mutex<HashMap<String, usize>>, name: &str) -> usize {
    map.lock()
        .map(|map| map.get(name).copied().unwrap_or_default())
        .unwrap_or_default()
}

pub fn bump(map: &Mutex<HashMap<String, usize>>, name: &str) {
    if let Ok(mut map) = map.lock() {
        *map.entry(name.to_owned()).or_default() += 1;
    }
}

impl Journal {
    pub fn applies(&self, name: &str) -> usize {
        count(&self.applies, name)
    }
    pub fn task_starts(&self, name: &str) -> usize {
        count(&self.task_starts, name)
    }
    pub fn refusals(&self) -> Vec<(String, SpawnRefused)> {
        self.refusals.lock().map(|r| r.clone()).unwrap_or_default()
    }
    pub fn cancelled(&self) -> Vec<String> {
        self.cancelled.lock().map(|c| c.clone()).unwrap_or_default()
    }
    pub fn gate(&self, name: &str) -> Arc<Notify> {
        self.gates
            .lock()
            .map(|mut gates| gates.entry(name.to_owned()).or_default().clone())
            .unwrap_or_default()
    }
    pub fn start_listings(&self) -> Vec<Vec<String>> {
        self.start_listings
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }
    /// Lets the background task of `name` finish.
    pub fn open_gate(&self, name: &str) {
        self.gate(name).notify_one();
    }
}

pub struct Widgets {
    pub journal: Arc<Journal>,
    pub tasks: ObjectTasks<Widget, String>,
}

impl Widgets {
    pub fn spawn_task(&self, ctx: &Context, widget: &Widget) -> Result<(), SpawnRefused> {
        let name = widget.name_any();
        let journal = self.journal.clone();
        let gate = journal.gate(&name);
        self.tasks.spawn(ctx, widget, move |stop| async move {
            bump(&journal.task_starts, &name);
            tokio::select! {
                () = gate.notified() => format!("done:{name}"),
                () = stop.cancelled() => {
                    // Like flushing partial work: the operator must wait for this before it
                    // returns from `run`.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if let Ok(mut cancelled) = journal.cancelled.lock() {
                        cancelled.push(name);
                    }
                    "cancelled".to_owned()
                }
            }
        })
    }
}

impl Reconciler<Widget> for Widgets {
    type Error = WidgetError;

    async fn apply(
        &self,
        widget: Arc<Widget>,
        ctx: &Context,
    ) -> Result<Applied<WidgetStatus>, WidgetError> {
        bump(&self.journal.applies, &widget.name_any());
        if widget.spec.invalid {
            return Err(WidgetError::Invalid);
        }
        let mut status = WidgetStatus {
            task_result: widget.status.as_ref().and_then(|s| s.task_result.clone()),
            ..WidgetStatus::default()
        };
        // Polled for every widget: that is also when tasks of deleted widgets are forgotten.
        let poll = self.tasks.poll(&widget);
        if !widget.spec.task || status.task_result.is_some() {
            return Ok(Applied::new(status));
        }
        match poll {
            TaskPoll::Finished(Ok(result)) => {
                status.task_result = Some(result);
                Ok(Applied::new(status))
            }
            TaskPoll::Finished(Err(panicked)) => Err(WidgetError::Panicked(panicked)),
            TaskPoll::Idle | TaskPoll::Running => {
                if let Err(refused) = self.spawn_task(ctx, &widget)
                    && let Ok(mut refusals) = self.journal.refusals.lock()
                {
                    refusals.push((widget.name_any(), refused));
                }
                Ok(Applied::new(status).not_ready("TaskRunning", "the background task runs"))
            }
        }
    }
}

pub fn run_args(namespace: &str, kubeconfig: &Path, leader_election: bool) -> RunArgs {
    RunArgs {
        kubeconfig: Some(kubeconfig.to_owned()),
        namespace: Some(namespace.to_owned()),
        admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        log_format: LogFormat::Text,
        log_filter: "info,vertice_core=debug".to_owned(),
        leader_election,
        leader_election_namespace: Some(namespace.to_owned()),
        identity: Some("wiring".to_owned()),
        concurrency: 4,
        lease_name: Some("wiring-leader".to_owned()),
        lease_duration_seconds: 4,
        lease_renew_deadline_seconds: 3,
        lease_retry_period_seconds: 1,
    }
}

/// The widgets a ServiceAccount's annotation names.
pub fn widgets_named_by(account: ServiceAccount) -> Vec<ObjectRef<Widget>> {
    let namespace = account.namespace().unwrap_or_default();
    account
        .annotations()
        .get(WIDGETS_ANNOTATION)
        .map(|names| {
            names
                .split(',')
                .map(|name| ObjectRef::new(name.trim()).within(&namespace))
                .collect()
        })
        .unwrap_or_default()
}

/// An in-process operator running the Widget controller in one namespace.
pub struct Running {
    pub stop: CancellationToken,
    pub task: JoinHandle<Result<(), OperatorError>>,
    pub admin: SocketAddr,
    pub journal: Arc<Journal>,
    pub trigger: Trigger<Widget>,
    pub clock: ManualClock,
}

impl Running {
    pub async fn start(
        cp: &ControlPlane,
        namespace: &str,
        clock: ManualClock,
        leader_election: bool,
    ) -> anyhow::Result<Self> {
        let journal = Arc::new(Journal::default());
        let (trigger, wake) = trigger::channel::<Widget>();
        let tasks_trigger = trigger.clone();
        let reconciler_journal = journal.clone();
        let hook_journal = journal.clone();
        let controller = ControllerBuilder::new_with_store(move |store| Widgets {
            journal: reconciler_journal,
            tasks: ObjectTasks::new(tasks_trigger, store),
        })
        .backoff(BackoffPolicy {
            initial: Duration::from_millis(300),
            max: Duration::from_secs(5),
            factor: 2.0,
            jitter: 0.0,
        })
        .requeue_after(Duration::from_secs(600))
        .owns_with::<ConfigMap>(watcher::Config::default().labels(&format!("{OWNED_LABEL}=yes")))
        .owns_metadata::<Secret>()
        .watches::<ServiceAccount, _>(widgets_named_by)
        .watches_metadata_with_store::<Secret, _>(|secret, store| {
            let name = secret.name_any();
            let namespace = secret.namespace();
            store.refs_where(|widget| {
                widget.spec.secret_name.as_deref() == Some(name.as_str())
                    && widget.namespace() == namespace
            })
        })
        .cache_gauge("widget_size", "The size of each widget", |widget| {
            let labels = vec![
                ("namespace", widget.namespace().unwrap_or_default()),
                ("widget", widget.name_any()),
            ];
            vec![(labels, widget.spec.size)]
        })
        .reconcile_on(wake)
        .watch_labels(&format!("!{RETIRED_LABEL}"))
        .on_start(move |ctx, namespace| list_retired(ctx, namespace, hook_journal));

        let stop = CancellationToken::new();
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let operator = Operator::new(
            "wiring",
            run_args(namespace, cp.admin_kubeconfig(), leader_election),
        )
        .clock(Arc::new(clock.clone()))
        .handle_signals(false)
        .shutdown_on(stop.clone())
        .on_admin_bound(bound_tx)
        .controller(controller);
        let task = tokio::spawn(operator.run());
        let admin = bound_rx
            .await
            .context("the operator stopped before its admin server bound")?;
        Ok(Self {
            stop,
            task,
            admin,
            journal,
            trigger,
            clock,
        })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .context("the operator did not stop within 30 s")???;
        Ok(())
    }

    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(reqwest::get(format!("http://{}/metrics", self.admin))
            .await?
            .text()
            .await?)
    }

    /// Waits until `name` has been reconciled more than `before` times.
    pub async fn reconciled_after(&self, name: &str, before: usize) -> anyhow::Result<()> {
        eventually(
            &format!("a reconcile of {name} (had {before})"),
            WAIT,
            || async { (self.journal.applies(name) > before).then_some(()) },
        )
        .await
    }
}

/// The start hook: records the names of the retired widgets of `namespace` (sorted).
async fn list_retired(ctx: Context, namespace: Option<String>, journal: Arc<Journal>) {
    let api: Api<Widget> = match &namespace {
        Some(namespace) => Api::namespaced(ctx.client().clone(), namespace),
        None => Api::all(ctx.client().clone()),
    };
    let params = ListParams::default().labels(RETIRED_LABEL);
    let mut names: Vec<String> = match api.list(&params).await {
        Ok(list) => list.items.iter().map(ResourceExt::name_any).collect(),
        Err(error) => vec![format!("error: {error}")],
    };
    names.sort();
    if let Ok(mut listings) = journal.start_listings.lock() {
        listings.push(names);
    }
}

pub struct Setup {
    pub client: Client,
    pub ns: TestNamespace,
    pub widgets: Api<Widget>,
    pub operator: Running,
}

pub async fn setup(prefix: &str, clock: ManualClock) -> anyhow::Result<Setup> {
    setup_with(prefix, clock, false).await
}

pub async fn setup_with(
    prefix: &str,
    clock: ManualClock,
    leader_election: bool,
) -> anyhow::Result<Setup> {
    let cp = ControlPlane::shared().await?;
    let client = cp.admin_client().await?;
    install_crd::<Widget>(&client).await?;
    let ns = TestNamespace::create(&client, prefix).await?;
    let widgets = Api::namespaced(client.clone(), ns.name());
    let operator = Running::start(cp, ns.name(), clock, leader_election).await?;
    Ok(Setup {
        client,
        ns,
        widgets,
        operator,
    })
}

pub fn system_clock_now() -> ManualClock {
    ManualClock::new(Utc::now())
}

pub fn widget(name: &str, spec: WidgetSpec) -> Widget {
    Widget::new(name, spec)
}

pub fn plain() -> WidgetSpec {
    WidgetSpec {
        secret_name: None,
        size: 0.0,
        invalid: false,
        task: false,
    }
}

pub fn ready(widget: &Widget) -> Option<&Condition> {
    conditions::find(&widget.status.as_ref()?.conditions, conditions::READY)
}

pub async fn wait_ready(
    api: &Api<Widget>,
    name: &str,
    status: &str,
    reason: &str,
) -> anyhow::Result<Widget> {
    eventually(
        &format!("{name} to have Ready={status} ({reason})"),
        WAIT,
        || async {
            let widget = api.get(name).await.ok()?;
            let condition = ready(&widget)?;
            let current = widget.metadata.generation == widget.status.as_ref()?.observed_generation;
            (condition.status == status && condition.reason == reason && current)
                .then_some(widget.clone())
        },
    )
    .await
}

pub async fn create_widgets(setup: &Setup, widgets: Vec<Widget>) -> anyhow::Result<()> {
    for widget in &widgets {
        setup.widgets.create(&PostParams::default(), widget).await?;
    }
    for widget in &widgets {
        wait_ready(&setup.widgets, &widget.name_any(), "True", "Reconciled").await?;
    }
    Ok(())
}

pub fn owned_by(widget: &Widget, name: &str, labelled: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        owner_references: widget.controller_owner_ref(&()).map(|owner| vec![owner]),
        labels: labelled.then(|| [(OWNED_LABEL.to_owned(), "yes".to_owned())].into()),
        ..ObjectMeta::default()
    }
}

pub fn config_map(metadata: ObjectMeta, value: &str) -> ConfigMap {
    ConfigMap {
        metadata,
        data: Some([("value".to_owned(), value.to_owned())].into()),
        ..ConfigMap::default()
    }
}

pub fn secret(metadata: ObjectMeta, value: &str) -> Secret {
    Secret {
        metadata,
        string_data: Some([("password".to_owned(), value.to_owned())].into()),
        ..Secret::default()
    }
}

pub fn data_patch(key: &str, value: &str) -> Patch<serde_json::Value> {
    Patch::Merge(serde_json::json!({ "data": { key: value } }))
}
