//! What the runtime hands to an operator's reconcile: the client, the controller's Event
//! publisher and the names to write under. Operator-specific state (its metrics, engines,
//! configuration) lives in the operator's own [`Reconciler`](crate::Reconciler) value instead,
//! so this type needs no generic parameter.

use std::sync::Arc;

use kube::{Api, Client, api::PatchParams};

use crate::events::Events;

/// Per-controller context passed to every reconcile.
#[derive(Clone)]
pub struct Context {
    client: Client,
    events: Events,
    controller: Arc<str>,
    field_manager: Arc<str>,
}

impl Context {
    pub(crate) fn new(
        client: Client,
        events: Events,
        controller: &str,
        field_manager: &str,
    ) -> Self {
        Self {
            client,
            events,
            controller: controller.into(),
            field_manager: field_manager.into(),
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

    /// Patch parameters for server-side apply of children under the operator's field manager,
    /// with `force` so the operator wins conflicts over fields it is responsible for.
    pub fn apply_params(&self) -> PatchParams {
        PatchParams::apply(&self.field_manager).force()
    }
}
