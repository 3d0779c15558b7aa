//! The controller's wiring proven against a REAL kube-apiserver (from vertice-testkit) with a
//! test-only `Widget` kind: owned children (all, label-filtered, metadata-only), watched kinds
//! (a plain mapper and a reverse lookup through the controller's store), triggers from outside
//! the watches, background tasks per object, the injected clock, and gauges computed from the
//! cache.
//!
//! Where a test shows that something did NOT happen, it relies on the order of one watch
//! stream: the unwanted event would have come before a later wanted one on the same stream,
//! so once the wanted reconcile is seen, the unwanted one would have been too.

mod common;

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use common::{eventually, install_crd};
use k8s_openapi::{
    api::{
        coordination::v1::Lease,
        core::v1::{ConfigMap, Secret, ServiceAccount},
    },
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Client, CustomResource, Resource, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
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
const OWNED_LABEL: &str = "wiring.test.vertice.dev/owned";
/// On a ServiceAccount: the comma-separated Widgets it maps to.
const WIDGETS_ANNOTATION: &str = "wiring.test.vertice.dev/widgets";
const WAIT: Duration = Duration::from_secs(30);

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
enum WidgetError {
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
struct Journal {
    applies: Mutex<HashMap<String, usize>>,
    task_starts: Mutex<HashMap<String, usize>>,
    refusals: Mutex<Vec<(String, SpawnRefused)>>,
    cancelled: Mutex<Vec<String>>,
    gates: Mutex<HashMap<String, Arc<Notify>>>,
}

fn count(map: &Mutex<HashMap<String, usize>>, name: &str) -> usize {
    map.lock()
        .map(|map| map.get(name).copied().unwrap_or_default())
        .unwrap_or_default()
}

fn bump(map: &Mutex<HashMap<String, usize>>, name: &str) {
    if let Ok(mut map) = map.lock() {
        *map.entry(name.to_owned()).or_default() += 1;
    }
}

impl Journal {
    fn applies(&self, name: &str) -> usize {
        count(&self.applies, name)
    }
    fn task_starts(&self, name: &str) -> usize {
        count(&self.task_starts, name)
    }
    fn refusals(&self) -> Vec<(String, SpawnRefused)> {
        self.refusals.lock().map(|r| r.clone()).unwrap_or_default()
    }
    fn cancelled(&self) -> Vec<String> {
        self.cancelled.lock().map(|c| c.clone()).unwrap_or_default()
    }
    fn gate(&self, name: &str) -> Arc<Notify> {
        self.gates
            .lock()
            .map(|mut gates| gates.entry(name.to_owned()).or_default().clone())
            .unwrap_or_default()
    }
    /// Lets the background task of `name` finish.
    fn open_gate(&self, name: &str) {
        self.gate(name).notify_one();
    }
}

struct Widgets {
    journal: Arc<Journal>,
    tasks: ObjectTasks<Widget, String>,
}

impl Widgets {
    fn spawn_task(&self, ctx: &Context, widget: &Widget) -> Result<(), SpawnRefused> {
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

fn run_args(namespace: &str, kubeconfig: &Path, leader_election: bool) -> RunArgs {
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
fn widgets_named_by(account: ServiceAccount) -> Vec<ObjectRef<Widget>> {
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
struct Running {
    stop: CancellationToken,
    task: JoinHandle<Result<(), OperatorError>>,
    admin: SocketAddr,
    journal: Arc<Journal>,
    trigger: Trigger<Widget>,
    clock: ManualClock,
}

impl Running {
    async fn start(
        cp: &ControlPlane,
        namespace: &str,
        clock: ManualClock,
        leader_election: bool,
    ) -> anyhow::Result<Self> {
        let journal = Arc::new(Journal::default());
        let (trigger, wake) = trigger::channel::<Widget>();
        let tasks_trigger = trigger.clone();
        let reconciler_journal = journal.clone();
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
        .reconcile_on(wake);

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

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .context("the operator did not stop within 30 s")???;
        Ok(())
    }

    async fn metrics(&self) -> anyhow::Result<String> {
        Ok(reqwest::get(format!("http://{}/metrics", self.admin))
            .await?
            .text()
            .await?)
    }

    /// Waits until `name` has been reconciled more than `before` times.
    async fn reconciled_after(&self, name: &str, before: usize) -> anyhow::Result<()> {
        eventually(
            &format!("a reconcile of {name} (had {before})"),
            WAIT,
            || async { (self.journal.applies(name) > before).then_some(()) },
        )
        .await
    }
}

struct Setup {
    client: Client,
    ns: TestNamespace,
    widgets: Api<Widget>,
    operator: Running,
}

async fn setup(prefix: &str, clock: ManualClock) -> anyhow::Result<Setup> {
    setup_with(prefix, clock, false).await
}

async fn setup_with(
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

fn system_clock_now() -> ManualClock {
    ManualClock::new(Utc::now())
}

fn widget(name: &str, spec: WidgetSpec) -> Widget {
    Widget::new(name, spec)
}

fn plain() -> WidgetSpec {
    WidgetSpec {
        secret_name: None,
        size: 0.0,
        invalid: false,
        task: false,
    }
}

fn ready(widget: &Widget) -> Option<&Condition> {
    conditions::find(&widget.status.as_ref()?.conditions, conditions::READY)
}

async fn wait_ready(
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

async fn create_widgets(setup: &Setup, widgets: Vec<Widget>) -> anyhow::Result<()> {
    for widget in &widgets {
        setup.widgets.create(&PostParams::default(), widget).await?;
    }
    for widget in &widgets {
        wait_ready(&setup.widgets, &widget.name_any(), "True", "Reconciled").await?;
    }
    Ok(())
}

fn owned_by(widget: &Widget, name: &str, labelled: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        owner_references: widget.controller_owner_ref(&()).map(|owner| vec![owner]),
        labels: labelled.then(|| [(OWNED_LABEL.to_owned(), "yes".to_owned())].into()),
        ..ObjectMeta::default()
    }
}

fn config_map(metadata: ObjectMeta, value: &str) -> ConfigMap {
    ConfigMap {
        metadata,
        data: Some([("value".to_owned(), value.to_owned())].into()),
        ..ConfigMap::default()
    }
}

fn secret(metadata: ObjectMeta, value: &str) -> Secret {
    Secret {
        metadata,
        string_data: Some([("password".to_owned(), value.to_owned())].into()),
        ..Secret::default()
    }
}

fn data_patch(key: &str, value: &str) -> Patch<serde_json::Value> {
    Patch::Merge(serde_json::json!({ "data": { key: value } }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_children_wake_their_owner_and_unselected_children_are_not_watched()
-> anyhow::Result<()> {
    let setup = setup("core-owns", system_clock_now()).await?;
    let ns = setup.ns.name();
    let journal = setup.operator.journal.clone();
    let config_maps: Api<ConfigMap> = Api::namespaced(setup.client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(setup.client.clone(), ns);
    create_widgets(
        &setup,
        vec![
            widget("p1", plain()),
            widget("p2", plain()),
            widget("q", plain()),
        ],
    )
    .await?;
    let p1 = setup.widgets.get("p1").await?;
    let p2 = setup.widgets.get("p2").await?;
    let q = setup.widgets.get("q").await?;

    // A child without the label, then one with it, on the same ConfigMap watch: only the
    // labelled one reaches the controller.
    let (p1_before, p2_before) = (journal.applies("p1"), journal.applies("p2"));
    config_maps
        .create(
            &PostParams::default(),
            &config_map(owned_by(&p1, "p1-plain", false), "1"),
        )
        .await?;
    config_maps
        .create(
            &PostParams::default(),
            &config_map(owned_by(&p2, "p2-labelled", true), "1"),
        )
        .await?;
    setup.operator.reconciled_after("p2", p2_before).await?;
    assert_eq!(
        journal.applies("p1"),
        p1_before,
        "an unlabelled child woke its owner"
    );

    // A change of the labelled child's data, then its deletion, reconcile the owner again.
    let before = journal.applies("p2");
    config_maps
        .patch(
            "p2-labelled",
            &PatchParams::default(),
            &data_patch("value", "2"),
        )
        .await?;
    setup.operator.reconciled_after("p2", before).await?;
    let before = journal.applies("p2");
    config_maps
        .delete("p2-labelled", &DeleteParams::default())
        .await?;
    setup.operator.reconciled_after("p2", before).await?;

    // Labelling the plain child brings it into the filtered watch: now it wakes its owner.
    let before = journal.applies("p1");
    config_maps
        .patch(
            "p1-plain",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {OWNED_LABEL: "yes"}}})),
        )
        .await?;
    setup.operator.reconciled_after("p1", before).await?;

    // A metadata-only owned kind: creating the Secret and changing its data wake the owner.
    let before = journal.applies("q");
    secrets
        .create(
            &PostParams::default(),
            &secret(owned_by(&q, "q-secret", false), "one"),
        )
        .await?;
    setup.operator.reconciled_after("q", before).await?;
    let before = journal.applies("q");
    secrets
        .patch(
            "q-secret",
            &PatchParams::default(),
            &data_patch("password", "dHdv"),
        )
        .await?;
    setup.operator.reconciled_after("q", before).await?;

    setup.operator.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_kinds_reconcile_the_mapped_primaries() -> anyhow::Result<()> {
    let setup = setup("core-watches", system_clock_now()).await?;
    let ns = setup.ns.name();
    let journal = setup.operator.journal.clone();
    let secrets: Api<Secret> = Api::namespaced(setup.client.clone(), ns);
    let accounts: Api<ServiceAccount> = Api::namespaced(setup.client.clone(), ns);
    for name in ["creds", "other"] {
        let metadata = ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        };
        secrets
            .create(&PostParams::default(), &secret(metadata, "s3cr3t"))
            .await?;
    }
    let using = |secret_name: &str| WidgetSpec {
        secret_name: Some(secret_name.to_owned()),
        ..plain()
    };
    create_widgets(
        &setup,
        vec![
            widget("a", using("creds")),
            widget("b", using("creds")),
            widget("c", using("other")),
            widget("d", plain()),
        ],
    )
    .await?;
    let before: HashMap<&str, usize> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|n| (n, journal.applies(n)))
        .collect();

    // Reverse lookup through the store: rotating `creds` reconciles every widget naming it.
    secrets
        .patch(
            "creds",
            &PatchParams::default(),
            &data_patch("password", "cm90YXRlZA=="),
        )
        .await?;
    setup.operator.reconciled_after("a", before["a"]).await?;
    setup.operator.reconciled_after("b", before["b"]).await?;
    assert_eq!(journal.applies("c"), before["c"], "c uses another Secret");
    assert_eq!(journal.applies("d"), before["d"], "d uses no Secret");
    let c_before = journal.applies("c");
    secrets
        .patch(
            "other",
            &PatchParams::default(),
            &data_patch("password", "eA=="),
        )
        .await?;
    setup.operator.reconciled_after("c", c_before).await?;

    // A plain mapper from another kind: the annotation names two widgets.
    let (a_before, d_before, b_before) = (
        journal.applies("a"),
        journal.applies("d"),
        journal.applies("b"),
    );
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("robot".to_owned()),
            annotations: Some([(WIDGETS_ANNOTATION.to_owned(), "a, d".to_owned())].into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    accounts.create(&PostParams::default(), &account).await?;
    setup.operator.reconciled_after("a", a_before).await?;
    setup.operator.reconciled_after("d", d_before).await?;
    assert_eq!(
        journal.applies("b"),
        b_before,
        "b is not named by the ServiceAccount"
    );

    setup.operator.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_reconciles_without_any_object_change() -> anyhow::Result<()> {
    let setup = setup("core-trigger", system_clock_now()).await?;
    let journal = setup.operator.journal.clone();
    let trigger = setup.operator.trigger.clone();
    create_widgets(&setup, vec![widget("t", plain()), widget("u", plain())]).await?;
    let t = setup.widgets.get("t").await?;

    let before = journal.applies("t");
    assert!(trigger.reconcile_object(&t));
    setup.operator.reconciled_after("t", before).await?;
    // An object that does not exist is dropped by the controller without harm.
    assert!(trigger.reconcile(ObjectRef::new("missing").within(setup.ns.name())));
    let (t_before, u_before) = (journal.applies("t"), journal.applies("u"));
    assert!(trigger.reconcile_all());
    setup.operator.reconciled_after("t", t_before).await?;
    setup.operator.reconciled_after("u", u_before).await?;
    // Nothing was written: the triggers changed no object.
    assert_eq!(
        setup.widgets.get("t").await?.resource_version(),
        t.resource_version(),
        "a reconcile with nothing to change writes nothing"
    );

    setup.operator.stop().await?;
    assert!(
        trigger.is_closed(),
        "the stopped controller dropped its receiver"
    );
    assert!(!trigger.reconcile_object(&t));
    Ok(())
}

fn time(at: DateTime<Utc>) -> Time {
    Time(Timestamp::from_second(at.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn condition_times_come_from_the_injected_clock() -> anyhow::Result<()> {
    // Far from the real time, so the wall clock cannot pass for it.
    let start = DateTime::parse_from_rfc3339("2031-05-06T07:08:09Z")?.with_timezone(&Utc);
    let setup = setup("core-clock", ManualClock::new(start)).await?;
    let clock = setup.operator.clock.clone();
    create_widgets(&setup, vec![widget("k", plain())]).await?;
    let created = setup.widgets.get("k").await?;
    assert_eq!(
        ready(&created).map(|c| c.last_transition_time.clone()),
        Some(time(start))
    );

    // The error path (Ready=False written by the runtime) reads the clock too.
    let broken_at = clock.advance(TimeDelta::minutes(90));
    setup
        .widgets
        .patch(
            "k",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"invalid": true}})),
        )
        .await?;
    let broken = wait_ready(&setup.widgets, "k", "False", "InvalidWidget").await?;
    assert_eq!(
        ready(&broken).map(|c| c.last_transition_time.clone()),
        Some(time(broken_at))
    );

    // Back to True 26 days later, across a month boundary.
    let fixed_at = clock.advance(TimeDelta::days(26));
    setup
        .widgets
        .patch(
            "k",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"invalid": false}})),
        )
        .await?;
    let fixed = wait_ready(&setup.widgets, "k", "True", "Reconciled").await?;
    assert_eq!(
        ready(&fixed).map(|c| c.last_transition_time.clone()),
        Some(time(fixed_at))
    );
    setup.operator.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_gauge_series_come_and_go_with_their_objects() -> anyhow::Result<()> {
    let setup = setup("core-gauge", system_clock_now()).await?;
    let ns = setup.ns.name().to_owned();
    let sized = |size: f64| WidgetSpec { size, ..plain() };
    create_widgets(
        &setup,
        vec![widget("g1", sized(7.5)), widget("g2", sized(2.0))],
    )
    .await?;
    let series = |name: &str, value: &str| {
        format!(r#"vertice_wiring_widget_size{{namespace="{ns}",widget="{name}"}} {value}"#)
    };
    let operator = &setup.operator;
    eventually("both series on /metrics", WAIT, || async {
        let body = operator.metrics().await.ok()?;
        (body.contains(&series("g1", "7.5")) && body.contains(&series("g2", "2.0"))).then_some(())
    })
    .await?;

    // A changed value shows on the next scrape; a deleted object's series disappears.
    setup
        .widgets
        .patch(
            "g2",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"size": 3.25}})),
        )
        .await?;
    setup.widgets.delete("g1", &DeleteParams::default()).await?;
    let body = eventually("g1's series to go and g2's to change", WAIT, || async {
        let body = operator.metrics().await.ok()?;
        (!body.contains(r#"widget="g1""#) && body.contains(&series("g2", "3.25"))).then_some(body)
    })
    .await?;
    assert!(
        body.contains("# TYPE vertice_wiring_widget_size gauge"),
        "{body}"
    );
    setup.operator.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_task_result_reaches_the_reconcile_its_end_triggers() -> anyhow::Result<()> {
    let setup = setup("core-tasks", system_clock_now()).await?;
    let journal = setup.operator.journal.clone();
    let with_task = WidgetSpec {
        task: true,
        ..plain()
    };
    setup
        .widgets
        .create(&PostParams::default(), &widget("job", with_task.clone()))
        .await?;
    wait_ready(&setup.widgets, "job", "False", "TaskRunning").await?;
    eventually("the task to start", WAIT, || async {
        (journal.task_starts("job") == 1).then_some(())
    })
    .await?;

    // Another reconcile while the task runs: a second spawn is refused.
    let job = setup.widgets.get("job").await?;
    setup.operator.trigger.reconcile_object(&job);
    eventually("the duplicate spawn to be refused", WAIT, || async {
        journal
            .refusals()
            .contains(&("job".to_owned(), SpawnRefused::AlreadyRunning))
            .then_some(())
    })
    .await?;

    // The task ends: that alone (no object change) reconciles the widget, which takes the result.
    journal.open_gate("job");
    let done = wait_ready(&setup.widgets, "job", "True", "Reconciled").await?;
    assert_eq!(
        done.status.and_then(|s| s.task_result).as_deref(),
        Some("done:job")
    );
    assert_eq!(journal.task_starts("job"), 1, "one task for one object");
    assert_eq!(
        done.metadata.generation,
        Some(1),
        "nothing but the task's end woke it"
    );

    // A widget deleted while its task runs: the task is cancelled once the controller next
    // looks at its tasks (here: a reconcile of all widgets).
    setup
        .widgets
        .create(&PostParams::default(), &widget("doomed", with_task))
        .await?;
    eventually("doomed's task to start", WAIT, || async {
        (journal.task_starts("doomed") == 1).then_some(())
    })
    .await?;
    setup
        .widgets
        .delete("doomed", &DeleteParams::default())
        .await?;
    eventually("doomed to be gone", WAIT, || async {
        matches!(setup.widgets.get_opt("doomed").await, Ok(None)).then_some(())
    })
    .await?;
    let cancelled = eventually("doomed's task to be cancelled", WAIT, || async {
        setup.operator.trigger.reconcile_all();
        let cancelled = journal.cancelled();
        cancelled
            .contains(&"doomed".to_owned())
            .then_some(cancelled)
    })
    .await?;
    assert!(!cancelled.contains(&"job".to_owned()), "{cancelled:?}");
    setup.operator.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_cancels_background_tasks_and_waits_for_them() -> anyhow::Result<()> {
    let setup = setup("core-task-stop", system_clock_now()).await?;
    let journal = setup.operator.journal.clone();
    let with_task = WidgetSpec {
        task: true,
        ..plain()
    };
    for name in ["long-1", "long-2"] {
        setup
            .widgets
            .create(&PostParams::default(), &widget(name, with_task.clone()))
            .await?;
    }
    eventually("both tasks to start", WAIT, || async {
        (journal.task_starts("long-1") == 1 && journal.task_starts("long-2") == 1).then_some(())
    })
    .await?;
    assert!(journal.cancelled().is_empty());
    // `stop` returns when `Operator::run` does; the tasks take 300 ms after the cancellation.
    setup.operator.stop().await?;
    let mut cancelled = journal.cancelled();
    cancelled.sort();
    assert_eq!(cancelled, vec!["long-1".to_owned(), "long-2".to_owned()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_leadership_cancels_background_tasks_before_the_operator_returns()
-> anyhow::Result<()> {
    let setup = setup_with("core-task-lost", system_clock_now(), true).await?;
    let journal = setup.operator.journal.clone();
    let leases: Api<Lease> = Api::namespaced(setup.client.clone(), setup.ns.name());
    let with_task = WidgetSpec {
        task: true,
        ..plain()
    };
    setup
        .widgets
        .create(&PostParams::default(), &widget("leader-work", with_task))
        .await?;
    eventually("the task to start", WAIT, || async {
        (journal.task_starts("leader-work") == 1).then_some(())
    })
    .await?;

    // Another replica takes the Lease (as after a long pause of this one): the next renewal
    // sees it and this replica must stop acting, its background task included.
    leases
        .patch(
            "wiring-leader",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"holderIdentity": "thief"}})),
        )
        .await?;
    let result = tokio::time::timeout(Duration::from_secs(30), setup.operator.task)
        .await
        .context("the operator did not stop within 30 s of losing the Lease")??;
    assert!(
        matches!(result, Err(OperatorError::LeadershipLost)),
        "{result:?}"
    );
    assert_eq!(journal.cancelled(), vec!["leader-work".to_owned()]);
    Ok(())
}
