//! Starting one controller: the primary watch feeding the store, the owned and watched kinds,
//! the triggers, the gauges read from the store, readiness, and the kube-runtime `Controller`
//! until the runtime's stop token fires.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    marker::PhantomData,
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt, future::BoxFuture, stream};
use kube::{
    Resource,
    api::ListParams,
    core::DeserializeGuard,
    runtime::{Controller, WatchStreamExt, controller, reflector::ObjectRef, watcher},
};

use super::{
    ControllerBuilder, Reconciler,
    builder::CacheGauge,
    reconcile::{Shared, error_policy, reconcile},
    relations::{PrimaryStore, guard_ref, scoped_api},
};
use crate::{
    backoff::ObjectBackoff,
    conditions::{self, READY},
    context::Context,
    error::OperatorError,
    runtime::Runtime,
    status::{ManagedResource, ObjectStatus},
    trigger::{Request, TriggerReceiver},
};

/// A controller with its types erased, so one operator can run several kinds.
pub(crate) trait RunController: Send {
    fn run(self: Box<Self>, runtime: Runtime) -> BoxFuture<'static, Result<(), OperatorError>>;
}

impl<K: ManagedResource, R: Reconciler<K>> RunController for ControllerBuilder<K, R> {
    fn run(self: Box<Self>, runtime: Runtime) -> BoxFuture<'static, Result<(), OperatorError>> {
        Box::pin(run_controller(*self, runtime))
    }
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
        store,
        store_writer,
        triggers,
        gauges,
        labels,
        start_hooks,
        latest_only,
    } = builder;
    let api = scoped_api::<DeserializeGuard<K>>(&runtime.client, runtime.namespace.as_deref());

    // Without the CRD the watch would retry a 404 forever behind an unready pod; say it clearly.
    if let Err(source) = api.list_metadata(&ListParams::default().limit(1)).await {
        return Err(OperatorError::CrdMissing {
            controller: name,
            source,
        });
    }

    let mut config = watcher::Config::default();
    if let Some(selector) = &labels {
        config = config.labels(selector);
    }
    let primary = watcher(api, config)
        .default_backoff()
        .modify(trim_for_cache::<K>)
        .reflect(store_writer)
        .applied_objects()
        .predicate_filter(primary_change_hash::<K>, Default::default());
    let mut controller = Controller::for_stream(primary, store.clone())
        .with_config(controller::Config::default().concurrency(runtime.concurrency));
    for relation in relations {
        controller = relation(controller, &runtime.client, runtime.namespace.as_deref());
    }
    for wake in triggers {
        controller = controller.reconcile_on(trigger_requests(wake, store.clone()));
    }
    let stop = runtime.stop.clone();
    controller = controller.graceful_shutdown_on(async move { stop.cancelled().await });

    register_gauges(&runtime, &name, &store, gauges);
    watch_readiness(&runtime, &name, store);

    let ctx = Context::new(&runtime, &name);
    for hook in start_hooks {
        runtime
            .tasks
            .spawn(hook(ctx.clone(), runtime.namespace.clone()));
    }
    let shared = Arc::new(Shared {
        reconciler,
        ctx,
        backoff: ObjectBackoff::new(backoff),
        metrics: runtime.metrics.clone(),
        finalizer,
        requeue_after,
        latest_only,
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

/// The object references a [`Trigger`](crate::trigger::Trigger) asks for; "all" means every
/// object in the store at the moment the request arrives.
fn trigger_requests<K: ManagedResource>(
    wake: TriggerReceiver<K>,
    store: PrimaryStore<K>,
) -> impl futures::Stream<Item = ObjectRef<DeserializeGuard<K>>> + Send + 'static {
    wake.receiver.flat_map(move |request| {
        let references: Vec<_> = match request {
            Request::One(reference) => vec![guard_ref(reference)],
            Request::All => store
                .state()
                .iter()
                .map(|object| ObjectRef::from_obj(object.as_ref()))
                .collect(),
        };
        stream::iter(references)
    })
}

/// `vertice_resources` and the builder's cache gauges, both read from the store at scrape time.
fn register_gauges<K: ManagedResource>(
    runtime: &Runtime,
    name: &str,
    store: &PrimaryStore<K>,
    gauges: Vec<CacheGauge>,
) {
    let cache = store.clone();
    runtime.resources.add(
        name,
        Box::new(move || {
            let mut counts = std::collections::BTreeMap::new();
            for object in cache.state() {
                *counts.entry(ready_status(&object)).or_insert(0) += 1;
            }
            counts
        }),
    );
    for gauge in gauges {
        runtime
            .cache_gauges
            .add(&gauge.name, &gauge.help, gauge.samples);
    }
}

/// Marks the controller as syncing in `/readyz` until the store has its first full listing.
fn watch_readiness<K: ManagedResource>(runtime: &Runtime, name: &str, store: PrimaryStore<K>) {
    runtime.readiness.syncing(name);
    let readiness = runtime.readiness.clone();
    let synced_name = name.to_owned();
    let stop = runtime.stop.clone();
    tokio::spawn(async move {
        // kube's ready signal wakes only the last task that polled it (a oneshot behind a
        // mutex), and the controller's applier polls it too; so poll again periodically rather
        // than wait for a wake-up that may never come.
        while !stop.is_cancelled() {
            match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
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

/// The annotation `kubectl apply` keeps the whole applied manifest in.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what no reconcile reads from an object before the cache keeps it:
/// - `metadata.managedFields` (server-side apply computes ownership on the server); on objects
///   written by several managers they are often larger than the spec and status together;
/// - the annotation [`LAST_APPLIED_ANNOTATION`], a second copy of the manifest as JSON on every
///   object a user created with `kubectl apply`.
///
/// An operator caching thousands of finished runs would hold them all. Other annotations stay.
/// A reconcile that needs the dropped fields reads the object from the API server.
fn trim_for_cache<K: ManagedResource>(object: &mut DeserializeGuard<K>) {
    if let Ok(object) = &mut object.0 {
        let meta = object.meta_mut();
        meta.managed_fields = None;
        if let Some(annotations) = &mut meta.annotations {
            annotations.remove(LAST_APPLIED_ANNOTATION);
        }
    }
}
