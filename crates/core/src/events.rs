//! Kubernetes Events (events.k8s.io/v1) for decisions a user wants to see in `kubectl describe`.
//!
//! One kube [`Recorder`] per controller (renewed every [`RECORDER_PUBLISHES`] publishes): it
//! deduplicates repeated events into a series, which only works when the same recorder sees
//! them. Publishing is best effort: a failed Event is logged,
//! never turned into a reconcile failure, because the Event is a report about the work, not the
//! work. RBAC needs `create` and `patch` on `events.k8s.io/events` (patch is used for series).

use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client,
    runtime::events::{Event, EventType, Recorder, Reporter},
};

use crate::error::{MAX_NOTE_BYTES, truncate};

/// Publishes after which a controller's recorder is replaced by a fresh one (see [`Events`]).
pub const RECORDER_PUBLISHES: u32 = 512;

/// Publishes Events on behalf of one controller. Cloning shares it.
///
/// kube's recorder keeps every Event it published in the last 6 minutes to fold repeats into a
/// series, in a hash table that never shrinks: after a burst (1,000 schedules firing in one
/// minute publish thousands of Events) it held about 9 MB for the rest of the process. So the
/// recorder is replaced by a fresh one every [`RECORDER_PUBLISHES`] publishes; the old one's
/// memory goes with it. The cost: a repeat that arrives just after a replacement starts a new
/// series instead of counting in the old one.
#[derive(Clone)]
pub struct Events {
    client: Client,
    reporter: Reporter,
    rotate_after: u32,
    current: Arc<Mutex<Current>>,
}

/// The recorder in use and how many Events it published.
struct Current {
    recorder: Recorder,
    published: u32,
}

impl Events {
    /// A publisher reporting as `controller` (shown as the event's reporting controller) from the
    /// replica `instance` (its pod name).
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        Self::with_rotation(client, controller, instance, RECORDER_PUBLISHES)
    }

    /// [`new`](Self::new) with a fresh recorder every `rotate_after` publishes (at least 1).
    pub fn with_rotation(
        client: Client,
        controller: &str,
        instance: &str,
        rotate_after: u32,
    ) -> Self {
        let reporter = Reporter {
            controller: controller.to_owned(),
            instance: Some(instance.to_owned()),
        };
        let recorder = Recorder::new(client.clone(), reporter.clone());
        Self {
            client,
            reporter,
            rotate_after: rotate_after.max(1),
            current: Arc::new(Mutex::new(Current {
                recorder,
                published: 0,
            })),
        }
    }

    /// The recorder for the next publish, replaced first when it is due.
    fn recorder(&self) -> Recorder {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.published >= self.rotate_after {
            current.recorder = Recorder::new(self.client.clone(), self.reporter.clone());
            current.published = 0;
        }
        current.published += 1;
        current.recorder.clone()
    }

    /// A `Normal` event: something the user asked for happened.
    pub async fn normal(
        &self,
        regarding: &ObjectReference,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) {
        self.publish(
            regarding,
            None,
            EventType::Normal,
            reason,
            action,
            note.into(),
        )
        .await;
    }

    /// A `Normal` event about `regarding` that names `related`, e.g. the object the action
    /// created. The recorder folds Events with the same regarding object, reason, action and
    /// related object into one series that keeps the first note, so an Event that says which of
    /// several objects it is about must name it here, not only in its note: "created run-1"
    /// and "created run-2" stay two Events.
    pub async fn normal_related(
        &self,
        regarding: &ObjectReference,
        related: &ObjectReference,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) {
        self.publish(
            regarding,
            Some(related),
            EventType::Normal,
            reason,
            action,
            note.into(),
        )
        .await;
    }

    /// A `Warning` event: something went wrong or needs the user's attention.
    pub async fn warning(
        &self,
        regarding: &ObjectReference,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) {
        self.publish(
            regarding,
            None,
            EventType::Warning,
            reason,
            action,
            note.into(),
        )
        .await;
    }

    async fn publish(
        &self,
        regarding: &ObjectReference,
        related: Option<&ObjectReference>,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            // The API caps reason and action at 128 characters and the note at 1 kB.
            reason: truncate(reason.to_owned(), 128),
            action: truncate(action.to_owned(), 128),
            note: Some(truncate(note, MAX_NOTE_BYTES)),
            secondary: related.cloned(),
        };
        if let Err(error) = self.recorder().publish(&event, regarding).await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                reason,
                "publishing an Event failed"
            );
        }
    }
}
