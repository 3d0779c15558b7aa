//! Background work per object, beside the reconcile: an in-process backup, a 1 s prober.
//!
//! A reconcile must return quickly, so long work runs in a task that [`ObjectTasks`] keys by the
//! object's UID:
//! - [`spawn`](ObjectTasks::spawn) starts it with a [`CancellationToken`] that fires when this
//!   replica stops acting (SIGTERM, lost leadership) — the controller drains the reconciles in
//!   flight on stop, but not work they started, so the task must watch the token;
//! - when the task ends, its result is kept and the object is reconciled again through a
//!   [`Trigger`]; that reconcile takes the result with [`poll`](ObjectTasks::poll);
//! - at most one task runs per object: a second `spawn` while one runs, or while its result
//!   waits to be taken, is refused;
//! - the operator waits for all tasks after stopping and before releasing the Lease, so a new
//!   leader never overlaps with this replica's work.
//!
//! Tasks of objects that left the controller's cache (deleted) are cancelled, and their results
//! dropped, the next time any object's task is spawned or polled; a controller with a finalizer
//! should [`cancel`](ObjectTasks::cancel) in its cleanup to stop the work at once.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use vertice_core::{Applied, Context, ControllerBuilder, Reconciler, trigger};
//! # use vertice_core::tasks::{ObjectTasks, TaskPoll};
//! # fn example<K: vertice_core::status::ManagedResource, R: Reconciler<K>>(make: impl FnOnce(ObjectTasks<K, u64>) -> R) {
//! let (wake_me, wake) = trigger::channel::<K>();
//! let builder = ControllerBuilder::new_with_store(|store| make(ObjectTasks::new(wake_me, store)))
//!     .reconcile_on(wake);
//! // In apply:
//! //   match tasks.poll(&object) {
//! //       TaskPoll::Idle => { tasks.spawn(ctx, &object, |stop| run_backup(stop))?; … }
//! //       TaskPoll::Running => { /* report progress */ }
//! //       TaskPoll::Finished(Ok(result)) => { /* write the result to status */ }
//! //       TaskPoll::Finished(Err(panicked)) => { /* report the failure */ }
//! //   }
//! # }
//! ```

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, PoisonError},
};

use futures::FutureExt;
use kube::{Resource, runtime::reflector::ObjectRef};
use tokio_util::sync::CancellationToken;

use crate::{
    context::Context,
    runner::{PrimaryStore, guard_ref},
    status::ManagedResource,
    trigger::Trigger,
};

/// What [`ObjectTasks::poll`] found for an object.
#[derive(Debug)]
pub enum TaskPoll<T> {
    /// No task runs and no result waits.
    Idle,
    /// The task is still running.
    Running,
    /// The task ended; its result is handed over once and forgotten here.
    Finished(Result<T, TaskPanicked>),
}

/// The task panicked instead of returning a result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the background task panicked: {message}")]
pub struct TaskPanicked {
    /// The panic message, if it was a string.
    pub message: String,
}

/// Why [`ObjectTasks::spawn`] started nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpawnRefused {
    /// A task for this object is already running.
    #[error("a background task for this object is already running")]
    AlreadyRunning,
    /// A task for this object has ended and its result has not been taken with `poll` yet.
    #[error("the result of this object's previous background task has not been taken yet")]
    ResultWaiting,
    /// The object has no UID (it was not read from the API server).
    #[error("the object has no metadata.uid")]
    NoUid,
}

enum State<T> {
    Running,
    Finished(Result<T, TaskPanicked>),
}

struct Entry<K: ManagedResource, T> {
    /// Distinguishes this task from a later one for the same UID.
    id: u64,
    reference: ObjectRef<K>,
    token: CancellationToken,
    state: State<T>,
}

struct Inner<K: ManagedResource, T> {
    trigger: Trigger<K>,
    store: PrimaryStore<K>,
    entries: Mutex<HashMap<String, Entry<K, T>>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// Background tasks of one controller, at most one per object, with results of type `T`.
/// Cheap to clone (shared).
pub struct ObjectTasks<K: ManagedResource, T> {
    inner: Arc<Inner<K, T>>,
}

impl<K: ManagedResource, T> Clone for ObjectTasks<K, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K: ManagedResource, T: Send + 'static> ObjectTasks<K, T> {
    /// Tasks that wake the controller through `trigger` (whose receiver is passed to
    /// [`ControllerBuilder::reconcile_on`](crate::ControllerBuilder::reconcile_on)) and forget
    /// objects that left `store` (the controller's
    /// [`store`](crate::ControllerBuilder::store)).
    pub fn new(trigger: Trigger<K>, store: PrimaryStore<K>) -> Self {
        Self {
            inner: Arc::new(Inner {
                trigger,
                store,
                entries: Mutex::new(HashMap::new()),
                next_id: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// Starts `task` for `object` unless one runs or its result waits. `task` gets a token
    /// cancelled when the replica stops acting, when [`cancel`](Self::cancel) is called or when
    /// the object is deleted; it should then stop soon and return what it has (the operator
    /// waits for it before releasing the Lease). When the task ends, `object` is reconciled.
    pub fn spawn<F, Fut>(&self, ctx: &Context, object: &K, task: F) -> Result<(), SpawnRefused>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let uid = object.meta().uid.clone().ok_or(SpawnRefused::NoUid)?;
        self.forget_deleted();
        let token = ctx.stop_token();
        let id = self
            .inner
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let mut entries = self.inner.lock();
            match entries.get(&uid).map(|entry| &entry.state) {
                Some(State::Running) => return Err(SpawnRefused::AlreadyRunning),
                Some(State::Finished(_)) => return Err(SpawnRefused::ResultWaiting),
                None => {}
            }
            entries.insert(
                uid.clone(),
                Entry {
                    id,
                    reference: ObjectRef::from_obj(object),
                    token: token.clone(),
                    state: State::Running,
                },
            );
        }
        let work = task(token);
        let inner = self.inner.clone();
        ctx.tasks().spawn(async move {
            let result = AssertUnwindSafe(work)
                .catch_unwind()
                .await
                .map_err(|panic| TaskPanicked {
                    message: panic_message(panic.as_ref()),
                });
            if let Some(reference) = inner.finish(&uid, id, result) {
                inner.trigger.reconcile(reference);
            }
        });
        Ok(())
    }

    /// The state of `object`'s task; a finished task's result is handed over (once).
    pub fn poll(&self, object: &K) -> TaskPoll<T> {
        self.forget_deleted();
        let Some(uid) = object.meta().uid.as_deref() else {
            return TaskPoll::Idle;
        };
        let mut entries = self.inner.lock();
        match entries.get(uid).map(|entry| &entry.state) {
            None => TaskPoll::Idle,
            Some(State::Running) => TaskPoll::Running,
            Some(State::Finished(_)) => match entries.remove(uid).map(|entry| entry.state) {
                Some(State::Finished(result)) => TaskPoll::Finished(result),
                _ => TaskPoll::Idle,
            },
        }
    }

    /// Whether a task for `object` is running.
    pub fn is_running(&self, object: &K) -> bool {
        object.meta().uid.as_deref().is_some_and(|uid| {
            matches!(
                self.inner.lock().get(uid).map(|entry| &entry.state),
                Some(State::Running)
            )
        })
    }

    /// Asks `object`'s running task to stop (cancels its token). Its result still arrives
    /// through [`poll`](Self::poll). Returns whether a task was running.
    pub fn cancel(&self, object: &K) -> bool {
        let Some(uid) = object.meta().uid.as_deref() else {
            return false;
        };
        match self.inner.lock().get(uid) {
            Some(entry) if matches!(entry.state, State::Running) => {
                entry.token.cancel();
                true
            }
            _ => false,
        }
    }

    /// How many tasks are running.
    pub fn running(&self) -> usize {
        self.inner
            .lock()
            .values()
            .filter(|entry| matches!(entry.state, State::Running))
            .count()
    }

    /// Cancels the tasks, and drops the results, of objects no longer in the store. Only once
    /// the store has its first full listing: before that, absence proves nothing.
    fn forget_deleted(&self) {
        let synced = self.inner.store.wait_until_ready().now_or_never();
        if !matches!(synced, Some(Ok(()))) {
            return;
        }
        self.inner.lock().retain(|uid, entry| {
            let present = self
                .inner
                .store
                .get(&guard_ref(entry.reference.clone()))
                .is_some_and(|object| object.meta().uid.as_deref() == Some(uid.as_str()));
            if !present {
                tracing::debug!(object = %entry.reference, "object deleted: its background task is cancelled");
                entry.token.cancel();
            }
            present
        });
    }
}

impl<K: ManagedResource, T> Inner<K, T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<K, T>>> {
        // Every update is one insert, remove or field assignment: a poisoned map is consistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores the result of task `id`; returns the object to wake, unless the entry was
    /// forgotten meanwhile (the object was deleted).
    fn finish(&self, uid: &str, id: u64, result: Result<T, TaskPanicked>) -> Option<ObjectRef<K>> {
        let mut entries = self.lock();
        let entry = entries.get_mut(uid).filter(|entry| entry.id == id)?;
        entry.state = State::Finished(result);
        Some(entry.reference.clone())
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}
