//! [`ControllerBuilder`]: the reconciler, its finalizer, its timing, its triggers and its cache
//! gauges. Owned and watched kinds are added by the methods in `relations.rs`.

use std::time::Duration;

use kube::{core::DeserializeGuard, runtime::reflector};

use super::{
    Reconciler,
    relations::{PrimaryStore, Relation},
};
use crate::{
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
}

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
