//! What the runtime hands to an operator's reconcile: the client, the controller's Event
//! publisher, the names to write under, the clock and the stop signal. Operator-specific state
//! (its metrics, engines, configuration) lives in the operator's own
//! [`Reconciler`](crate::Reconciler) value instead, so this type needs no generic parameter.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kube::{Api, Client, api::PatchParams};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{clock::SharedClock, events::Events, runtime::Runtime};

/// Per-controller context passed to every reconcile.
#[derive(Clone)]
pub struct Context {
    client: Client,
    events: Events,
    controller: Arc<str>,
    field_manager: Arc<str>,
    identity: Arc<str>,
    clock: SharedClock,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Context {
    /// The context of the controller `controller` running in `runtime`.
    pub(crate) fn new(runtime: &Runtime, controller: &str) -> Self {
        Self {
            client: runtime.client.clone(),
            events: Events::new(
                runtime.client.clone(),
                &runtime.field_manager,
                &runtime.identity,
            ),
            controller: controller.into(),
            field_manager: runtime.field_manager.as_str().into(),
            identity: runtime.identity.as_str().into(),
            clock: runtime.clock.clone(),
            stop: runtime.stop.clone(),
            tasks: runtime.tasks.clone(),
        }
    }

    /// The Kubernetes client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// An `Api` for a namespaced kind in `namespace`.
    pub fn api<T>(&self, namespace: &str) -> Api<T>
    where
        T: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The controller's Event publisher (one Recorder per controller, so repeats become series).
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The controller name, e.g. `verticebackups.backup.vertice.dev`: the `controller` metric label.
    pub fn controller(&self) -> &str {
        &self.controller
    }

    /// The operator's server-side-apply field manager, e.g. `vertice-backup`.
    pub fn field_manager(&self) -> &str {
        &self.field_manager
    }

    /// This replica's identity (the `--identity` flag, by default the pod name): the holder
    /// name in the Lease and the reporting instance of Events.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Patch parameters for server-side apply of children under the operator's field manager,
    /// with `force` so the operator wins conflicts over fields it is responsible for.
    pub fn apply_params(&self) -> PatchParams {
        PatchParams::apply(&self.field_manager).force()
    }

    /// The current time by the operator's [`Clock`](crate::clock::Clock) (set with
    /// [`Operator::clock`](crate::Operator::clock); the wall clock by default). Conditions'
    /// `lastTransitionTime` is stamped with it; schedules should read it too.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The operator's clock, to hand to code that runs outside a reconcile.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// A token cancelled when this replica must stop acting: on SIGTERM/SIGINT, when leadership
    /// is lost, or when a controller of the process ends. Long work started from a reconcile
    /// must watch it, because the controller only waits for reconciles in flight, not for
    /// work they started. The token is a child: cancelling it cancels only its own holders.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.child_token()
    }

    /// The tracker the operator waits on, after stopping and before releasing the Lease.
    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }
}
