//! The kinds besides the primary that wake a controller: owned children (through their
//! controller ownerReference) and watched kinds (through a mapper), and the primary's cache
//! that mappers may read to find the primaries referring to a changed object.
//!
//! Owned and watched kinds are not cached by the controller: their watch only turns changes
//! into reconcile requests. Each watch may be narrowed with a [`watcher::Config`] (a label
//! selector) or reduced to metadata, so that `owns::<Secret>()` does not hold every Secret of
//! the cluster with its data.

use kube::{
    Api, Client, Resource,
    core::{DeserializeGuard, NamespaceResourceScope, PartialObjectMeta},
    runtime::{
        Controller, WatchStreamExt,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;

use super::{ControllerBuilder, Reconciler};
use crate::status::ManagedResource;

/// The controller's cache of its primary kind: a reflector store of every object in the
/// watched namespace(s), each either readable (`Ok`) or not (`Err`, e.g. after a CRD skew).
/// Get it from [`ControllerBuilder::store`]; it fills while the controller runs and is empty
/// before that.
pub type PrimaryStore<K> = Store<DeserializeGuard<K>>;

/// Reading a [`PrimaryStore`] without unwrapping `DeserializeGuard`s.
pub trait PrimaryStoreExt<K: ManagedResource> {
    /// References to the readable objects for which `matches` holds: the body of a mapper that
    /// finds the primaries referring to a changed object.
    fn refs_where(&self, matches: impl Fn(&K) -> bool) -> Vec<ObjectRef<K>>;

    /// How many readable objects `matches` holds for.
    fn count_where(&self, matches: impl Fn(&K) -> bool) -> usize;
}

impl<K: ManagedResource> PrimaryStoreExt<K> for PrimaryStore<K> {
    fn refs_where(&self, matches: impl Fn(&K) -> bool) -> Vec<ObjectRef<K>> {
        self.state()
            .iter()
            .filter_map(|object| object.0.as_ref().ok())
            .filter(|object| matches(object))
            .map(ObjectRef::from_obj)
            .collect()
    }

    fn count_where(&self, matches: impl Fn(&K) -> bool) -> usize {
        self.state()
            .iter()
            .filter_map(|object| object.0.as_ref().ok())
            .filter(|object| matches(object))
            .count()
    }
}

/// Adds one owned or watched kind to the kube-runtime `Controller` once the client and the
/// namespace are known.
pub(super) type Relation<K> = Box<
    dyn FnOnce(
            Controller<DeserializeGuard<K>>,
            &Client,
            Option<&str>,
        ) -> Controller<DeserializeGuard<K>>
        + Send,
>;

impl<K: ManagedResource, R: Reconciler<K>> ControllerBuilder<K, R> {
    /// Reconciles the owner when a `Child` whose ownerReference points to a `K` changes or is
    /// deleted. Watches every `Child` of the namespace(s); see [`owns_with`](Self::owns_with)
    /// and [`owns_metadata`](Self::owns_metadata) to narrow it.
    #[must_use]
    pub fn owns<Child: WatchedKind>(self) -> Self {
        self.owns_with::<Child>(watcher::Config::default())
    }

    /// Like [`owns`](Self::owns), watching only the children `config` selects (typically a
    /// label selector the operator puts on every child it creates:
    /// `watcher::Config::default().labels("app.kubernetes.io/managed-by=vertice-backup")`).
    #[must_use]
    pub fn owns_with<Child: WatchedKind>(mut self, config: watcher::Config) -> Self {
        self.relations
            .push(Box::new(move |controller, client, namespace| {
                controller.owns(scoped_api::<Child>(client, namespace), config)
            }));
        self
    }

    /// Like [`owns`](Self::owns), watching only the children's metadata: for Secrets and other
    /// children whose content must stay out of the operator's memory.
    #[must_use]
    pub fn owns_metadata<Child: WatchedKind>(self) -> Self {
        self.owns_metadata_with::<Child>(watcher::Config::default())
    }

    /// [`owns_metadata`](Self::owns_metadata) narrowed by `config` (see
    /// [`owns_with`](Self::owns_with)).
    #[must_use]
    pub fn owns_metadata_with<Child: WatchedKind>(mut self, config: watcher::Config) -> Self {
        self.relations
            .push(Box::new(move |controller, client, namespace| {
                // `Api<PartialObjectMeta<_>>` makes the watcher request metadata only.
                let stream = watcher(
                    scoped_api::<PartialObjectMeta<Child>>(client, namespace),
                    config,
                )
                .default_backoff()
                .touched_objects();
                controller.owns_stream(stream)
            }));
        self
    }

    /// Reconciles the objects `mapper` names when an `Other` changes (for example the backups
    /// that reference a changed `DatabaseInstance`). To find them by looking through the
    /// primaries, use [`watches_with_store`](Self::watches_with_store).
    #[must_use]
    pub fn watches<Other, I>(self, mapper: impl Fn(Other) -> I + Send + Sync + 'static) -> Self
    where
        Other: WatchedKind,
        I: IntoIterator<Item = ObjectRef<K>> + 'static,
        I::IntoIter: Send,
    {
        self.watches_with_store(move |other, _| mapper(other))
    }

    /// Like [`watches`](Self::watches), with the controller's [`PrimaryStore`] given to the
    /// mapper, for reverse references: the primaries that name the changed object, e.g.
    /// `|secret, store| store.refs_where(|backup| backup.spec.secret == secret.name_any())`.
    /// While the controller starts, the store may still be empty; those primaries are
    /// reconciled by their own initial listing anyway.
    #[must_use]
    pub fn watches_with_store<Other, I>(
        self,
        mapper: impl Fn(Other, &PrimaryStore<K>) -> I + Send + Sync + 'static,
    ) -> Self
    where
        Other: WatchedKind,
        I: IntoIterator<Item = ObjectRef<K>> + 'static,
        I::IntoIter: Send,
    {
        self.watches_selected_with_store(watcher::Config::default(), mapper)
    }

    /// [`watches_with_store`](Self::watches_with_store) for only the `Other` objects `config`
    /// selects (e.g. runs that are not finished: `!backup.vertice.dev/finished`).
    #[must_use]
    pub fn watches_selected_with_store<Other, I>(
        mut self,
        config: watcher::Config,
        mapper: impl Fn(Other, &PrimaryStore<K>) -> I + Send + Sync + 'static,
    ) -> Self
    where
        Other: WatchedKind,
        I: IntoIterator<Item = ObjectRef<K>> + 'static,
        I::IntoIter: Send,
    {
        let store = self.store.clone();
        self.relations
            .push(Box::new(move |controller, client, namespace| {
                controller.watches(
                    scoped_api::<Other>(client, namespace),
                    config,
                    move |other| mapper(other, &store).into_iter().map(guard_ref::<K>),
                )
            }));
        self
    }

    /// Like [`watches`](Self::watches) but watches only metadata: for Secrets, whose data must
    /// stay out of the controller's cache until it is read for use.
    #[must_use]
    pub fn watches_metadata<Other, I>(
        self,
        mapper: impl Fn(PartialObjectMeta<Other>) -> I + Send + Sync + 'static,
    ) -> Self
    where
        Other: WatchedKind,
        I: IntoIterator<Item = ObjectRef<K>> + 'static,
        I::IntoIter: Send,
    {
        self.watches_metadata_with_store(move |other, _| mapper(other))
    }

    /// [`watches_metadata`](Self::watches_metadata) with the controller's [`PrimaryStore`]
    /// given to the mapper (see [`watches_with_store`](Self::watches_with_store)): the
    /// Secret → "every primary that references it" mapping.
    #[must_use]
    pub fn watches_metadata_with_store<Other, I>(
        mut self,
        mapper: impl Fn(PartialObjectMeta<Other>, &PrimaryStore<K>) -> I + Send + Sync + 'static,
    ) -> Self
    where
        Other: WatchedKind,
        I: IntoIterator<Item = ObjectRef<K>> + 'static,
        I::IntoIter: Send,
    {
        let store = self.store.clone();
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
                    mapper(other, &store).into_iter().map(guard_ref::<K>)
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

/// An `Api` over `namespace`, or over all namespaces when the operator watches them all.
pub(super) fn scoped_api<T>(client: &Client, namespace: Option<&str>) -> Api<T>
where
    T: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// The same object as the controller's `DeserializeGuard` wrapper names it.
pub(crate) fn guard_ref<K: ManagedResource>(
    reference: ObjectRef<K>,
) -> ObjectRef<DeserializeGuard<K>> {
    let guard = ObjectRef::new(&reference.name);
    match &reference.namespace {
        Some(namespace) => guard.within(namespace),
        None => guard,
    }
}
