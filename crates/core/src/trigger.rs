//! Waking a controller's reconcile from outside its watches: a background task that finished,
//! a test that moved the [`ManualClock`](crate::clock::ManualClock), a webhook that arrived.
//!
//! ```
//! # use vertice_core::{trigger, kube::runtime::reflector::ObjectRef};
//! # use vertice_core::k8s_openapi::api::core::v1::ConfigMap;
//! let (trigger, wake) = trigger::channel::<ConfigMap>();
//! // ControllerBuilder::new(reconciler).reconcile_on(wake) — then, from any task:
//! trigger.reconcile(ObjectRef::new("settings").within("team-a"));
//! trigger.reconcile_all();
//! # drop(wake);
//! ```
//!
//! A request for an object that is not in the controller's cache (deleted meanwhile) is
//! dropped by the controller. Requests for an object that is already queued or running are
//! merged by kube-runtime's scheduler, so waking too often costs nothing but a reconcile.

use futures::channel::mpsc;
use kube::{Resource, runtime::reflector::ObjectRef};

/// What a [`Trigger`] asks of the controller.
pub(crate) enum Request<K: Resource> {
    /// Reconcile this object.
    One(ObjectRef<K>),
    /// Reconcile every object in the controller's cache.
    All,
}

/// The sending side: cheap to clone, usable from any task or thread.
pub struct Trigger<K: Resource> {
    sender: mpsc::UnboundedSender<Request<K>>,
}

impl<K: Resource> Clone for Trigger<K> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
        }
    }
}

impl<K: Resource> std::fmt::Debug for Trigger<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trigger")
            .field("open", &!self.sender.is_closed())
            .finish()
    }
}

/// The receiving side, handed to
/// [`ControllerBuilder::reconcile_on`](crate::ControllerBuilder::reconcile_on).
pub struct TriggerReceiver<K: Resource> {
    pub(crate) receiver: mpsc::UnboundedReceiver<Request<K>>,
}

/// A new trigger for the controller of `K`. Requests sent before the controller runs wait in
/// the channel (unbounded: every request is one small enum, and the controller drains them as
/// fast as they come).
pub fn channel<K: Resource>() -> (Trigger<K>, TriggerReceiver<K>) {
    let (sender, receiver) = mpsc::unbounded();
    (Trigger { sender }, TriggerReceiver { receiver })
}

impl<K: Resource<DynamicType = ()>> Trigger<K> {
    /// Asks for one reconcile of `reference`. Returns false when the controller has stopped
    /// (the receiver is gone), so nobody will act on it.
    pub fn reconcile(&self, reference: ObjectRef<K>) -> bool {
        self.sender.unbounded_send(Request::One(reference)).is_ok()
    }

    /// Asks for one reconcile of `object` (found by namespace and name). See
    /// [`reconcile`](Self::reconcile).
    pub fn reconcile_object(&self, object: &K) -> bool {
        self.reconcile(ObjectRef::from_obj(object))
    }

    /// Asks for a reconcile of every object in the controller's cache (for example after a
    /// test moved the clock). See [`reconcile`](Self::reconcile).
    pub fn reconcile_all(&self) -> bool {
        self.sender.unbounded_send(Request::All).is_ok()
    }

    /// Whether the receiving controller is gone.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    #[tokio::test]
    async fn requests_arrive_in_order_and_senders_see_a_closed_receiver() {
        let (trigger, mut wake) = channel::<ConfigMap>();
        assert!(trigger.reconcile(ObjectRef::new("a").within("ns")));
        assert!(trigger.clone().reconcile_all());
        match wake.receiver.next().await {
            Some(Request::One(reference)) => assert_eq!(reference.name, "a"),
            _ => panic!("expected the request for a"),
        }
        assert!(matches!(wake.receiver.next().await, Some(Request::All)));
        drop(wake);
        assert!(trigger.is_closed());
        assert!(!trigger.reconcile(ObjectRef::new("b")));
    }
}
