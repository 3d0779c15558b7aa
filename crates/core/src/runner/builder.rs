//! [`ControllerBuilder`]: the reconciler, its finalizer, its timing, its triggers and its cache
//! gauges. Owned and watched kinds are added by the methods in `relations.rs`.

use std::time::Duration;

use futures::future::BoxFuture;
use kube::{core::DeserializeGuard, runtime::reflector};

use super::{
    Reconciler,
    relations::{PrimaryStore, Relation},
};
use crate::{
    Context,
    backoff::BackoffPolicy,
    metrics::{GaugeLabels, GaugeSamples},
    status::ManagedResource,
    trigger::TriggerReceiver,
};

/// Describes one controller: the reconciler, its finalizer, its owned and watched kinds, and its
/// timing. Hand it to [`Operator::controller`](crate::Operator::controller).
pub struct ControllerBuilder<K: ManagedResource, R: Reconciler<K>> {
    pub(super) reconciler: R,
    pub(super) name: String,
    pub(super) finalizer: Option<String>,
    pub(super) requeue_after: Duration,
    pub(super) backoff: BackoffPolicy,
    pub(super) relations: Vec<Relation<K>>,
    pub(super) store: PrimaryStore<K>,
    pub(super) store_writer: reflector::store::Writer<DeserializeGuard<K>>,
    pub(super) triggers: Vec<TriggerReceiver<K>>,
    pub(super) gauges: Vec<CacheGauge>,
    pub(super) labels: Option<String>,
    pub(super) start_hooks: Vec<StartHook>,
    pub(super) latest_only: bool,
}

/// Work run once each time the controller starts; see
/// [`ControllerBuilder::on_start`].
pub(super) type StartHook =
    Box<dyn FnOnce(Context, Option<String>) -> BoxFuture<'static, ()> + Send>;

/// One gauge computed from the cache at scrape time.
pub(super) struct CacheGauge {
    pub(super) name: String,
    pub(super) help: String,
    pub(super) samples: GaugeSamples,
}

impl<K: ManagedResource, R: Reconciler<K>> ControllerBuilder<K, R> {
    /// A controller for `K` named `<plural>.<group>` (the `controller` metric label), without a
    /// finalizer, requeueing every 5 minutes, with the default backoff.
    pub fn new(reconciler: R) -> Self {
        Self::new_with_store(|_| reconciler)
    }

    /// Like [`new`](Self::new), for a reconciler that reads the controller's own cache (for
    /// example to count the running objects of a project, or to give it to
    /// [`ObjectTasks`](crate::tasks::ObjectTasks)): `make` gets the [`store`](Self::store)
    /// before the controller exists. The store fills once the controller runs.
    pub fn new_with_store(make: impl FnOnce(PrimaryStore<K>) -> R) -> Self {
        let (store, store_writer) = reflector::store();
        Self {
            reconciler: make(store.clone()),
            name: format!("{}.{}", K::plural(&()), K::group(&())),
            finalizer: None,
            requeue_after: Duration::from_secs(300),
            backoff: BackoffPolicy::default(),
            relations: Vec::new(),
            store,
            store_writer,
            triggers: Vec::new(),
            gauges: Vec::new(),
            labels: None,
            start_hooks: Vec::new(),
            latest_only: false,
        }
    }

    /// The controller's cache of `K` (a reflector store, filled while the controller runs):
    /// every object of the watched namespace(s), `Err` for those that do not deserialize. Read
    /// it with [`PrimaryStoreExt`](super::PrimaryStoreExt) or kube's `Store` methods.
    pub fn store(&self) -> PrimaryStore<K> {
        self.store.clone()
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

    /// Watches and caches only the objects of `K` that the label selector `selector` matches
    /// (Kubernetes syntax, e.g. `!backup.vertice.dev/finished`). An object that stops matching
    /// leaves the cache (the watch reports it as deleted, so no cleanup runs) and is not
    /// reconciled again until it matches again; `vertice_resources` and cache gauges count only
    /// the matching objects. Use it to keep objects that need no more work (finished runs) out
    /// of memory: the operator labels an object once its work is done, and reads such objects
    /// with a paged list when it needs them (see [`on_start`](Self::on_start)). Default: every
    /// object.
    #[must_use]
    pub fn watch_labels(mut self, selector: &str) -> Self {
        self.labels = Some(selector.to_owned());
        self
    }

    /// Runs `hook(ctx, namespace)` once each time the controller starts (after the leader
    /// election is won), beside the watch, as a tracked background task: the operator waits
    /// for it on shutdown, so it must return soon after `ctx.stop_token()` is cancelled.
    /// `namespace` is the watched namespace, `None` when the controller watches all of them.
    /// For start-up passes over objects the controller does not cache (see
    /// [`watch_labels`](Self::watch_labels)). A hook reports its own failures (log, Event);
    /// nothing retries it.
    #[must_use]
    pub fn on_start<F>(
        mut self,
        hook: impl FnOnce(Context, Option<String>) -> F + Send + 'static,
    ) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.start_hooks.push(Box::new(move |ctx, namespace| {
            Box::pin(hook(ctx, namespace))
        }));
        self
    }

    /// The safety-net requeue after a successful reconcile that asked for none.
    #[must_use]
    pub fn requeue_after(mut self, delay: Duration) -> Self {
        self.requeue_after = delay;
        self
    }

    /// Reconciles only the API server's latest version of an object: before each reconcile, one
    /// metadata-only GET ([`freshness::is_current`](crate::freshness::is_current)); when the
    /// cache is behind (most often our own last write has not arrived yet), the reconcile is
    /// skipped and tried again after [`CATCH_UP`](crate::freshness::CATCH_UP).
    ///
    /// For controllers whose steps must happen once (hooks, notifications, starting or
    /// restarting work, deletions approved once): from an older copy they would repeat what the
    /// newer one already records, or write its older status over the newer one.
    #[must_use]
    pub fn latest_only(mut self) -> Self {
        self.latest_only = true;
        self
    }

    /// The per-object backoff after transient errors.
    #[must_use]
    pub fn backoff(mut self, policy: BackoffPolicy) -> Self {
        self.backoff = policy;
        self
    }

    /// Reconciles what the [`Trigger`](crate::trigger::Trigger) paired with `wake` asks for
    /// (see [`trigger::channel`](crate::trigger::channel)). Several receivers add up.
    #[must_use]
    pub fn reconcile_on(mut self, wake: TriggerReceiver<K>) -> Self {
        self.triggers.push(wake);
        self
    }

    /// Exports the gauge `vertice_<operator>_<name>` computed on every scrape from the cache:
    /// `samples` gives each object's series (label pairs and value; an object may give none or
    /// several). A deleted object leaves the cache and so leaves no series behind. Label names
    /// must be valid Prometheus label names and the series of all objects must differ in their
    /// labels (include `namespace` and the object's name); `name` must be a valid metric name
    /// without the prefix (e.g. `last_success_timestamp_seconds`). Objects that do not
    /// deserialize are skipped. Two controllers may feed the same name.
    #[must_use]
    pub fn cache_gauge(
        mut self,
        name: &str,
        help: &str,
        samples: impl Fn(&K) -> Vec<(GaugeLabels, f64)> + Send + Sync + 'static,
    ) -> Self {
        let store = self.store.clone();
        self.gauges.push(CacheGauge {
            name: name.to_owned(),
            help: help.to_owned(),
            samples: Box::new(move || {
                store
                    .state()
                    .iter()
                    .filter_map(|object| object.0.as_ref().ok())
                    .flat_map(&samples)
                    .collect()
            }),
        });
        self
    }
}
