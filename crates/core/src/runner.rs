//! One kube-runtime `Controller` for one custom resource, with everything around the operator's
//! reconcile that every operator needs: the span, metrics, finalizer, conditions and status,
//! Events, error classification and per-object backoff.
//!
//! The operator implements [`Reconciler`] (apply and cleanup) and describes the controller with
//! a [`ControllerBuilder`]; [`Operator`](crate::Operator) runs it.
//!
//! Watch design:
//! - the primary kind is watched as [`DeserializeGuard<K>`], so one object that does not
//!   deserialize (for example after a CRD version skew) gets `Ready=False, reason=InvalidSpec`
//!   instead of breaking the watch for every object;
//! - the primary stream is filtered to changes of generation, finalizers, deletion, labels and
//!   annotations, so our own status writes do not trigger another reconcile; owned and watched
//!   kinds trigger as usual;
//! - concurrency is bounded (kube's default is unbounded).

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    marker::PhantomData,
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt, future::BoxFuture};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::ListParams,
    core::{DeserializeGuard, NamespaceResourceScope, PartialObjectMeta, object::HasStatus},
    runtime::{
        Controller, WatchStreamExt,
        controller::{self, Action},
        finalizer::{self as kube_finalizer, Event as FinalizerEvent},
        reflector,
        reflector::ObjectRef,
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::{
    backoff::{BackoffPolicy, ObjectBackoff},
    conditions::{self, ConditionStatus, READY, REASON_RECONCILED},
    context::Context,
    error::{Error, ErrorClass, FinalizerError, MAX_NOTE_BYTES, ReconcileError, error_chain},
    finalizer,
    metrics::{RESULT_SUCCESS, ReconcileMetrics},
    operator::{OperatorError, Runtime},
    status::{self, ManagedResource, ObjectStatus},
};

/// The operator's side of a controller: what to do with one object.
///
/// Both methods get the fresh object from the watch and must be idempotent: they run again after
/// every change, every requeue and every restart.
pub trait Reconciler<K: ManagedResource>: Send + Sync + 'static {
    /// The operator's error; its [`ReconcileError`] impl decides retry versus report.
    type Error: ReconcileError;

    /// Brings the world in line with `object`'s spec and returns the status to write. The
    /// runtime adds `Ready` (unless the status has one), stamps `observedGeneration` and
    /// `lastTransitionTime`, and writes the status only if it changed.
    fn apply(
        &self,
        object: Arc<K>,
        ctx: &Context,
    ) -> impl Future<Output = Result<Applied<K::Status>, Self::Error>> + Send;

    /// Releases what `object` owns outside Kubernetes before it is deleted. Only called when the
    /// controller has a [finalizer](ControllerBuilder::finalizer). Must tolerate apply never
    /// having run. A [`Permanent`](ErrorClass::Permanent) error gives up the cleanup (with a
    /// Warning event) so deletion does not stick; other errors retry with backoff.
    fn cleanup(
        &self,
        object: Arc<K>,
        ctx: &Context,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = (object, ctx);
        std::future::ready(Ok(()))
    }
}

/// The outcome of a successful apply: the status to write and when to look again.
#[derive(Clone, Debug)]
pub struct Applied<S> {
    /// The complete status (domain fields and the operator's own conditions).
    pub status: S,
    /// Reconcile again after this long even if nothing changes (next cron slot, probe interval…);
    /// `None` uses the controller's periodic requeue.
    pub requeue_after: Option<Duration>,
    ready: (ConditionStatus, String, String),
}

impl<S> Applied<S> {
    /// `Ready=True, reason=Reconciled` with `status`.
    pub fn new(status: S) -> Self {
        Self {
            status,
            requeue_after: None,
            ready: (
                ConditionStatus::True,
                REASON_RECONCILED.to_owned(),
                String::new(),
            ),
        }
    }

    /// Reconcile again after `delay` (bounded by nothing else: the operator knows its schedule).
    #[must_use]
    pub fn requeue_after(mut self, delay: Duration) -> Self {
        self.requeue_after = Some(delay);
        self
    }

    /// `Ready=True` with a specific reason and message.
    #[must_use]
    pub fn ready(mut self, reason: &str, message: impl Into<String>) -> Self {
        self.ready = (ConditionStatus::True, reason.to_owned(), message.into());
        self
    }

    /// `Ready=False` without an error: the work is progressing (for example a Job is running).
    #[must_use]
    pub fn not_ready(mut self, reason: &str, message: impl Into<String>) -> Self {
        self.ready = (ConditionStatus::False, reason.to_owned(), message.into());
        self
    }
}

type Relation<K> = Box<
    dyn FnOnce(
            Controller<DeserializeGuard<K>>,
            &Client,
            Option<&str>,
        ) -> Controller<DeserializeGuard<K>>
        + Send,
>;

/// Describes one controller: the reconciler, its finalizer, its owned and watched kinds, and its
/// timing. Hand it to [`Operator::controller`](crate::Operator::controller).
pub struct ControllerBuilder<K: ManagedResource, R: Reconciler<K>> {
    reconciler: R,
    name: String,
    finalizer: Option<String>,
    requeue_after: Duration,
    backoff: BackoffPolicy,
    relations: Vec<Relation<K>>,
}

impl<K: ManagedResource, R: Reconciler<K>> ControllerBuilder<K, R> {
    /// A controller for `K` named `<plural>.<group>` (the `controller` metric label), without a
    /// finalizer, requeueing every 5 minutes, with the default backoff.
    pub fn new(reconciler: R) -> Self {
        Self {
            reconciler,
            name: format!("{}.{}", K::plural(&()), K::group(&())),
            finalizer: None,
            requeue_after: Duration::from_secs(300),
            backoff: BackoffPolicy::default(),
            relations: Vec::new(),
        }
    }

    /// Overrides the controller name.
    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// Uses the finalizer `name` (convention: `<group>/cleanup`) so that
    /// [`Reconciler::cleanup`] runs before the object is deleted.
    #[must_use]
    pub fn finalizer(mut self, name: &str) -> Self {
        self.finalizer = Some(name.to_owned());
        self
    }

    /// The safety-net requeue after a successful reconcile that asked for none.
    #[must_use]
    pub fn requeue_after(mut self, delay: Duration) -> Self {
        self.requeue_after = delay;
        self
    }

    /// The per-object backoff after transient errors.
    #[must_use]
    pub fn backoff(mut self, policy: BackoffPolicy) -> Self {
        self.backoff = policy;
        self
    }

    /// Reconciles the owner when a `Child` whose controller ownerReference points to a `K`
    /// changes.
    #[must_use]
    pub fn owns<Child>(mut self) -> Self
    where
        Child: WatchedKind,
    {
        self.relations
            .push(Box::new(|controller, client, namespace| {
                controller.owns(
                    scoped_api::<Child>(client, namespace),
                    watcher::Config::default(),
                )
            }));
        self
    }

    /// Reconciles the objects `mapper` names when an `Other` changes (for example the backups
    /// that reference a changed `DatabaseInstance`).
    #[must_use]
    pub fn watches<Other, I>(mut self, mapper: impl Fn(Other) -> I + Send + Sync + 'static) -> Self
    where
        Other: WatchedKind,
        I: IntoIterator<Item = ObjectRef<K>> + 'static,
        I::IntoIter: Send,
    {
        self.relations
            .push(Box::new(move |controller, client, namespace| {
                controller.watches(
                    scoped_api::<Other>(client, namespace),
                    watcher::Config::default(),
                    move |other| mapper(other).into_iter().map(guard_ref::<K>),
                )
            }));
        self
    }

    /// Like [`watches`](Self::watches) but watches only metadata: for Secrets, whose data must
    /// stay out of the controller's cache until it is read for use.
    #[must_use]
    pub fn watches_metadata<Other, I>(
        mut self,
        mapper: impl Fn(PartialObjectMeta<Other>) -> I + Send + Sync + 'static,
    ) -> Self
    where
        Other: WatchedKind,
        I: IntoIterator<Item = ObjectRef<K>> + 'static,
        I::IntoIter: Send,
    {
        self.relations
            .push(Box::new(move |controller, client, namespace| {
                // `Api<PartialObjectMeta<_>>` makes the watcher request metadata only.
                let stream = watcher(
                    scoped_api::<PartialObjectMeta<Other>>(client, namespace),
                    watcher::Config::default(),
                )
                .default_backoff()
                .touched_objects();
                controller.watches_stream(stream, move |other| {
                    mapper(other).into_iter().map(guard_ref::<K>)
                })
            }));
        self
    }
}

/// A namespaced Kubernetes kind the controller can watch besides its own (owned children,
/// related objects).
pub trait WatchedKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<T> WatchedKind for T where
    T: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

fn scoped_api<T>(client: &Client, namespace: Option<&str>) -> Api<T>
where
    T: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

fn guard_ref<K: ManagedResource>(reference: ObjectRef<K>) -> ObjectRef<DeserializeGuard<K>> {
    let guard = ObjectRef::new(&reference.name);
    match &reference.namespace {
        Some(namespace) => guard.within(namespace),
        None => guard,
    }
}

/// A controller with its types erased, so one operator can run several kinds.
pub(crate) trait RunController: Send {
    fn run(self: Box<Self>, runtime: Runtime) -> BoxFuture<'static, Result<(), OperatorError>>;
}

impl<K: ManagedResource, R: Reconciler<K>> RunController for ControllerBuilder<K, R> {
    fn run(self: Box<Self>, runtime: Runtime) -> BoxFuture<'static, Result<(), OperatorError>> {
        Box::pin(run_controller(*self, runtime))
    }
}

struct Shared<K, R> {
    reconciler: R,
    ctx: Context,
    backoff: ObjectBackoff,
    metrics: ReconcileMetrics,
    finalizer: Option<String>,
    requeue_after: Duration,
    _kind: PhantomData<fn() -> K>,
}

/// Which changes of the primary object deserve a reconcile: not status-only ones.
fn primary_change_hash<K: ManagedResource>(object: &DeserializeGuard<K>) -> Option<u64> {
    let meta = object.meta();
    let mut hasher = DefaultHasher::new();
    (
        meta.generation,
        &meta.finalizers,
        meta.deletion_timestamp.is_some(),
        &meta.labels,
        &meta.annotations,
    )
        .hash(&mut hasher);
    Some(hasher.finish())
}

async fn run_controller<K: ManagedResource, R: Reconciler<K>>(
    builder: ControllerBuilder<K, R>,
    runtime: Runtime,
) -> Result<(), OperatorError> {
    let ControllerBuilder {
        reconciler,
        name,
        finalizer,
        requeue_after,
        backoff,
        relations,
    } = builder;
    let api = scoped_api::<DeserializeGuard<K>>(&runtime.client, runtime.namespace.as_deref());

    // Without the CRD the watch would retry a 404 forever behind an unready pod; say it clearly.
    if let Err(source) = api.list_metadata(&ListParams::default().limit(1)).await {
        return Err(OperatorError::CrdMissing {
            controller: name,
            source,
        });
    }

    let (reader, writer) = reflector::store();
    let primary = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(primary_change_hash::<K>, Default::default());
    let mut controller = Controller::for_stream(primary, reader.clone())
        .with_config(controller::Config::default().concurrency(runtime.concurrency));
    for relation in relations {
        controller = relation(controller, &runtime.client, runtime.namespace.as_deref());
    }
    let stop = runtime.stop.clone();
    controller = controller.graceful_shutdown_on(async move { stop.cancelled().await });

    let cache = reader.clone();
    runtime.resources.add(
        &name,
        Box::new(move || {
            let mut counts = std::collections::BTreeMap::new();
            for object in cache.state() {
                *counts.entry(ready_status(&object)).or_insert(0) += 1;
            }
            counts
        }),
    );

    runtime.readiness.syncing(&name);
    let readiness = runtime.readiness.clone();
    let synced_name = name.clone();
    let stop = runtime.stop.clone();
    tokio::spawn(async move {
        // kube's ready signal wakes only the last task that polled it (a oneshot behind a
        // mutex), and the controller's applier polls it too; so poll again periodically rather
        // than wait for a wake-up that may never come.
        while !stop.is_cancelled() {
            match tokio::time::timeout(Duration::from_millis(200), reader.wait_until_ready()).await
            {
                Ok(Ok(())) => {
                    tracing::info!(controller = %synced_name, "cache synced");
                    readiness.synced(&synced_name);
                    return;
                }
                // The writer is gone: the controller stopped.
                Ok(Err(_)) => return,
                Err(_still_syncing) => {}
            }
        }
    });

    let ctx = Context::new(
        runtime.client.clone(),
        crate::events::Events::new(
            runtime.client.clone(),
            &runtime.field_manager,
            &runtime.identity,
        ),
        &name,
        &runtime.field_manager,
    );
    let shared = Arc::new(Shared {
        reconciler,
        ctx,
        backoff: ObjectBackoff::new(backoff),
        metrics: runtime.metrics.clone(),
        finalizer,
        requeue_after,
        _kind: PhantomData,
    });
    tracing::info!(controller = %name, namespace = ?runtime.namespace, "controller starting");
    controller
        .run(reconcile::<K, R>, error_policy::<K, R>, shared)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                // Already logged, counted and reported as an Event inside the reconcile span.
                Err(controller::Error::ReconcilerFailed(..)) => {}
                // A trigger for an object that has just been deleted: expected, not a problem.
                Err(controller::Error::ObjectNotFound(reference)) => {
                    tracing::debug!(%reference, "object vanished before its reconcile");
                }
                Err(error) => tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "controller stream error"
                ),
            }
        })
        .await;
    tracing::info!(controller = %name, "controller stopped");
    Ok(())
}

/// The `ready` label of an object in the cache; unreadable objects count as not ready.
fn ready_status<K: ManagedResource>(object: &DeserializeGuard<K>) -> &'static str {
    let Ok(valid) = &object.0 else {
        return "False";
    };
    let status = valid
        .status()
        .and_then(|status| conditions::find(status.conditions(), READY))
        .map(|condition| condition.status.as_str());
    match status {
        Some("True") => "True",
        Some("False") => "False",
        _ => "Unknown",
    }
}

fn object_key(meta: &kube::api::ObjectMeta) -> String {
    meta.uid.clone().unwrap_or_else(|| {
        format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        )
    })
}

async fn reconcile<K: ManagedResource, R: Reconciler<K>>(
    object: Arc<DeserializeGuard<K>>,
    shared: Arc<Shared<K, R>>,
) -> Result<Action, Error<R::Error>> {
    let meta = object.meta();
    let span = tracing::info_span!(
        "reconcile",
        controller = %shared.ctx.controller(),
        namespace = meta.namespace.as_deref().unwrap_or_default(),
        name = meta.name.as_deref().unwrap_or_default(),
        generation = meta.generation.unwrap_or_default(),
    );
    reconcile_in_span(object, shared).instrument(span).await
}

async fn reconcile_in_span<K: ManagedResource, R: Reconciler<K>>(
    object: Arc<DeserializeGuard<K>>,
    shared: Arc<Shared<K, R>>,
) -> Result<Action, Error<R::Error>> {
    let controller = shared.ctx.controller();
    let _timer = shared.metrics.start(controller);
    let result = match &object.0 {
        Ok(valid) => reconcile_valid(Arc::new(valid.clone()), &shared).await,
        Err(invalid) => reconcile_invalid(&object, &invalid.error, &shared).await,
    };
    match &result {
        Ok(action) => {
            shared.backoff.reset(&object_key(object.meta()));
            shared.metrics.record_result(controller, RESULT_SUCCESS);
            tracing::debug!(?action, "reconciled");
        }
        Err(error) => {
            shared
                .metrics
                .record_result(controller, error.class().result_label());
            shared.metrics.record_error(controller, error.reason());
            report_error(&object, error, &shared).await;
        }
    }
    result
}

async fn reconcile_valid<K: ManagedResource, R: Reconciler<K>>(
    object: Arc<K>,
    shared: &Shared<K, R>,
) -> Result<Action, Error<R::Error>> {
    let Some(finalizer_name) = &shared.finalizer else {
        if object.meta().deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        return apply(object, shared).await;
    };
    let api: Api<K> = shared.ctx.api(&object.namespace().unwrap_or_default());
    kube_finalizer::finalizer(&api, finalizer_name, object, |event| async move {
        match event {
            FinalizerEvent::Apply(object) => apply(object, shared).await,
            FinalizerEvent::Cleanup(object) => cleanup(object, shared).await,
        }
    })
    .await
    .map_err(|error| match error {
        kube_finalizer::Error::ApplyFailed(inner) | kube_finalizer::Error::CleanupFailed(inner) => {
            inner
        }
        kube_finalizer::Error::AddFinalizer(source) => {
            Error::Finalizer(FinalizerError::Add(source))
        }
        kube_finalizer::Error::RemoveFinalizer(source) => {
            Error::Finalizer(FinalizerError::Remove(source))
        }
        other => Error::Finalizer(FinalizerError::Invalid(other.to_string())),
    })
}

async fn apply<K: ManagedResource, R: Reconciler<K>>(
    object: Arc<K>,
    shared: &Shared<K, R>,
) -> Result<Action, Error<R::Error>> {
    let Applied {
        mut status,
        requeue_after,
        ready: (ready_status, ready_reason, ready_message),
    } = shared
        .reconciler
        .apply(object.clone(), &shared.ctx)
        .await
        .map_err(Error::Reconcile)?;

    let generation = object.meta().generation;
    let previous = object
        .status()
        .map(|status| status.conditions().to_vec())
        .unwrap_or_default();
    let mut desired = std::mem::take(status.conditions_mut());
    if conditions::find(&desired, READY).is_none() {
        desired.insert(
            0,
            conditions::new(READY, ready_status, &ready_reason, ready_message),
        );
    }
    *status.conditions_mut() =
        conditions::merge(&previous, desired, generation, &conditions::now());
    status.set_observed_generation(generation);

    let api: Api<DeserializeGuard<K>> = shared.ctx.api(&object.namespace().unwrap_or_default());
    let changed = status::differs(object.status(), &status)
        .map_err(|error| Error::Status(kube::Error::SerdeError(error)))?;
    if changed {
        status::apply(
            &api,
            &object.name_any(),
            &status,
            shared.ctx.field_manager(),
        )
        .await
        .map_err(Error::Status)?;
        tracing::debug!("status written");
        announce_ready_transition(object.as_ref(), &previous, status.conditions(), shared).await;
    }
    Ok(Action::requeue(
        requeue_after.unwrap_or(shared.requeue_after),
    ))
}

/// A Normal event when `Ready` flips, so `kubectl describe` tells the story of the object.
async fn announce_ready_transition<K: ManagedResource, R: Reconciler<K>>(
    object: &K,
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    current: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    shared: &Shared<K, R>,
) {
    let Some(ready) = conditions::find(current, READY) else {
        return;
    };
    let before = conditions::find(previous, READY).map(|condition| condition.status.as_str());
    if before == Some(ready.status.as_str()) {
        return;
    }
    let note = if ready.message.is_empty() {
        format!("Ready is {}", ready.status)
    } else {
        format!("Ready is {}: {}", ready.status, ready.message)
    };
    shared
        .ctx
        .events()
        .normal(&object.object_ref(&()), &ready.reason, "Reconcile", note)
        .await;
}

async fn cleanup<K: ManagedResource, R: Reconciler<K>>(
    object: Arc<K>,
    shared: &Shared<K, R>,
) -> Result<Action, Error<R::Error>> {
    let reference = object.object_ref(&());
    match shared.reconciler.cleanup(object, &shared.ctx).await {
        Ok(()) => {
            shared
                .ctx
                .events()
                .normal(
                    &reference,
                    "CleanedUp",
                    "Cleanup",
                    "external resources released",
                )
                .await;
            Ok(Action::await_change())
        }
        Err(error) if error.class() == ErrorClass::Permanent => {
            // Retrying cannot help; keeping the finalizer would only make deletion hang.
            let note = format!(
                "cleanup cannot succeed and was abandoned; release what remains by hand: {}",
                error_chain(&error, MAX_NOTE_BYTES)
            );
            tracing::warn!(reason = error.reason(), "{note}");
            shared
                .ctx
                .events()
                .warning(&reference, "CleanupAbandoned", "Cleanup", note)
                .await;
            Ok(Action::await_change())
        }
        Err(error) => Err(Error::Reconcile(error)),
    }
}

async fn reconcile_invalid<K: ManagedResource, R: Reconciler<K>>(
    object: &DeserializeGuard<K>,
    message: &str,
    shared: &Shared<K, R>,
) -> Result<Action, Error<R::Error>> {
    if object.meta().deletion_timestamp.is_none() {
        return Err(Error::InvalidObject(message.to_owned()));
    }
    if let Some(finalizer_name) = &shared.finalizer {
        let api: Api<DeserializeGuard<K>> = shared.ctx.api(&object.namespace().unwrap_or_default());
        if finalizer::remove(&api, object, finalizer_name)
            .await
            .map_err(Error::Kube)?
        {
            shared
                .ctx
                .events()
                .warning(
                    &object.object_ref(&()),
                    "CleanupSkipped",
                    "Cleanup",
                    format!("the object could not be read, so cleanup was skipped to let deletion proceed: {message}"),
                )
                .await;
        }
    }
    Ok(Action::await_change())
}

/// Logs the error, publishes a Warning event and, for errors the user must act on, writes
/// `Ready=False` with the reason and the error chain.
async fn report_error<K: ManagedResource, R: Reconciler<K>>(
    object: &DeserializeGuard<K>,
    error: &Error<R::Error>,
    shared: &Shared<K, R>,
) {
    let chain = error_chain(error, MAX_NOTE_BYTES);
    let class = error.class();
    tracing::warn!(reason = error.reason(), class = ?class, "reconcile failed: {chain}");
    let reference = object.object_ref(&());
    shared
        .ctx
        .events()
        .warning(&reference, error.reason(), "Reconcile", chain.clone())
        .await;

    let deleting = object.meta().deletion_timestamp.is_some();
    if class == ErrorClass::Transient || deleting {
        return;
    }
    let current: Option<&K::Status> = object.0.as_ref().ok().and_then(HasStatus::status);
    let mut status = current.cloned().unwrap_or_default();
    let generation = object.meta().generation;
    conditions::set(
        status.conditions_mut(),
        conditions::new(READY, false, error.reason(), chain),
        generation,
        &conditions::now(),
    );
    status.set_observed_generation(generation);
    // An unreadable object has no status we can compare with; it is written once per
    // generation anyway, because status writes do not trigger reconciles.
    let changed = object.0.is_err() || status::differs(current, &status).unwrap_or(true);
    if !changed {
        return;
    }
    let api: Api<DeserializeGuard<K>> = shared.ctx.api(&object.namespace().unwrap_or_default());
    if let Err(write_error) = status::apply(
        &api,
        &object.name_any(),
        &status,
        shared.ctx.field_manager(),
    )
    .await
    {
        tracing::warn!(
            error = &write_error as &dyn std::error::Error,
            "writing the Ready=False condition failed"
        );
    }
}

fn error_policy<K: ManagedResource, R: Reconciler<K>>(
    object: Arc<DeserializeGuard<K>>,
    error: &Error<R::Error>,
    shared: Arc<Shared<K, R>>,
) -> Action {
    let meta = object.meta();
    match error.class() {
        // Retrying the same generation cannot help; the spec change will trigger a reconcile.
        ErrorClass::Permanent => Action::await_change(),
        ErrorClass::Transient | ErrorClass::Wait => {
            let key = object_key(meta);
            let delay = shared.backoff.next_delay(&key);
            tracing::info!(
                controller = %shared.ctx.controller(),
                namespace = meta.namespace.as_deref().unwrap_or_default(),
                name = meta.name.as_deref().unwrap_or_default(),
                attempt = shared.backoff.attempts(&key),
                retry_in = ?delay,
                "will retry"
            );
            Action::requeue(delay)
        }
    }
}
