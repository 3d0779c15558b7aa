//! One kube-runtime `Controller` for one custom resource, with everything around the operator's
//! reconcile that every operator needs: the span, metrics, finalizer, conditions and status,
//! Events, error classification and per-object backoff.
//!
//! The operator implements [`Reconciler`] (apply and cleanup) and describes the controller with
//! a [`ControllerBuilder`]; [`Operator`](crate::Operator) runs it.
//!
//! Watch design:
//! - the primary kind is watched as [`DeserializeGuard<K>`](kube::core::DeserializeGuard), so
//!   one object that does not deserialize (for example after a CRD version skew) gets
//!   `Ready=False, reason=InvalidSpec` instead of breaking the watch for every object;
//! - the primary stream is filtered to changes of generation, finalizers, deletion, labels and
//!   annotations, so our own status writes do not trigger another reconcile; owned and watched
//!   kinds trigger as usual;
//! - a controller built with `latest_only` reconciles an object only once the cache holds the
//!   API server's latest version of it (see [`freshness`](crate::freshness));
//! - concurrency is bounded (kube's default is unbounded);
//! - the primary cache (a reflector [`PrimaryStore`]) is created with the builder, so mappers of
//!   watched kinds, cache gauges and the reconciler itself can read it.
//!
//! Files: `builder` (the builder, its timing, triggers and gauges), `relations` (owned and watched
//! kinds), `run` (starting the kube-runtime `Controller`), `reconcile` (one reconcile: the
//! finalizer, apply/cleanup, status and error reporting).

use std::{sync::Arc, time::Duration};

use crate::{
    conditions::{ConditionStatus, REASON_RECONCILED},
    context::Context,
    error::ReconcileError,
    status::ManagedResource,
};

mod builder;
mod reconcile;
mod relations;
mod run;

pub use builder::ControllerBuilder;
pub(crate) use relations::guard_ref;
pub use relations::{PrimaryStore, PrimaryStoreExt, WatchedKind};
pub(crate) use run::RunController;

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
    /// having run. A [`Permanent`](crate::error::ErrorClass::Permanent) error gives up the cleanup (with a
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
    pub(crate) ready: (ConditionStatus, String, String),
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
