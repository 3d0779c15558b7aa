//! One reconcile of one object: the span and metrics around it, the finalizer, the operator's
//! apply or cleanup, the status with `Ready`, and the reporting of errors (log, Event,
//! `Ready=False`) with per-object backoff.

use std::{marker::PhantomData, sync::Arc, time::Duration};

use kube::{
    Api, Resource, ResourceExt,
    core::{DeserializeGuard, object::HasStatus},
    runtime::{
        controller::Action,
        finalizer::{self as kube_finalizer, Event as FinalizerEvent},
    },
};
use tracing::Instrument;

use super::{Applied, Reconciler};
use crate::{
    backoff::ObjectBackoff,
    conditions::{self, READY},
    context::Context,
    error::{Error, ErrorClass, FinalizerError, MAX_NOTE_BYTES, ReconcileError, error_chain},
    finalizer, freshness,
    metrics::{RESULT_BEHIND, RESULT_SUCCESS, ReconcileMetrics},
    status::{self, ManagedResource, ObjectStatus},
};

/// What every reconcile of one controller shares.
pub(super) struct Shared<K, R> {
    pub(super) reconciler: R,
    pub(super) ctx: Context,
    pub(super) backoff: ObjectBackoff,
    pub(super) metrics: ReconcileMetrics,
    pub(super) finalizer: Option<String>,
    pub(super) requeue_after: Duration,
    /// See [`ControllerBuilder::latest_only`](super::ControllerBuilder::latest_only).
    pub(super) latest_only: bool,
    pub(super) _kind: PhantomData<fn() -> K>,
}

/// The backoff key of an object: its UID, or namespace/name for an object without one.
fn object_key(meta: &kube::api::ObjectMeta) -> String {
    meta.uid.clone().unwrap_or_else(|| {
        format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        )
    })
}

pub(super) async fn reconcile<K: ManagedResource, R: Reconciler<K>>(
    object: Arc<DeserializeGuard<K>>,
    shared: Arc<Shared<K, R>>,
) -> Result<Action, Error<R::Error>> {
    let meta = object.meta();
    let span = tracing::info_span!(
        "reconcile",
        controller = %shared.ctx.controller(),
        namespace = meta.namespace.as_deref().unwrap_or_default(),
        name = meta.name.as_deref().unwrap_or_default(),
        generation = meta.generation.unwrap_or_default(),
    );
    reconcile_in_span(object, shared).instrument(span).await
}

async fn reconcile_in_span<K: ManagedResource, R: Reconciler<K>>(
    object: Arc<DeserializeGuard<K>>,
    shared: Arc<Shared<K, R>>,
) -> Result<Action, Error<R::Error>> {
    let controller = shared.ctx.controller();
    let _timer = shared.metrics.start(controller);
    let result = match is_latest(&object, &shared).await {
        Ok(false) => {
            tracing::debug!("the cached copy is behind the API server; reconciling it later");
            shared.metrics.record_result(controller, RESULT_BEHIND);
            return Ok(Action::requeue(freshness::CATCH_UP));
        }
        Err(error) => Err(error),
        Ok(true) => match &object.0 {
            Ok(valid) => reconcile_valid(Arc::new(valid.clone()), &shared).await,
            Err(invalid) => reconcile_invalid(&object, &invalid.error, &shared).await,
        },
    };
    match &result {
        Ok(action) => {
            shared.backoff.reset(&object_key(object.meta()));
            shared.metrics.record_result(controller, RESULT_SUCCESS);
            tracing::debug!(?action, "reconciled");
        }
        Err(error) => {
            shared
                .metrics
                .record_result(controller, error.class().result_label());
            shared.metrics.record_error(controller, error.reason());
            report_error(&object, error, &shared).await;
        }
    }
    result
}

/// Whether `object` is the API server's latest version, for a controller that reconciles only
/// that ([`ControllerBuilder::latest_only`](super::ControllerBuilder::latest_only)); true for
/// the others without asking.
async fn is_latest<K: ManagedResource, R: Reconciler<K>>(
    object: &DeserializeGuard<K>,
    shared: &Shared<K, R>,
) -> Result<bool, Error<R::Error>> {
    if !shared.latest_only {
        return Ok(true);
    }
    let api: Api<DeserializeGuard<K>> = shared.ctx.api(&object.namespace().unwrap_or_default());
    freshness::is_current(&api, object)
        .await
        .map_err(Error::Kube)
}

async fn reconcile_valid<K: ManagedResource, R: Reconciler<K>>(
    object: Arc<K>,
    shared: &Shared<K, R>,
) -> Result<Action, Error<R::Error>> {
    let Some(finalizer_name) = &shared.finalizer else {
        if object.meta().deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        return apply(object, shared).await;
    };
    let api: Api<K> = shared.ctx.api(&object.namespace().unwrap_or_default());
    kube_finalizer::finalizer(&api, finalizer_name, object, |event| async move {
        match event {
            FinalizerEvent::Apply(object) => apply(object, shared).await,
            FinalizerEvent::Cleanup(object) => cleanup(object, shared).await,
        }
    })
    .await
    .map_err(|error| match error {
        kube_finalizer::Error::ApplyFailed(inner) | kube_finalizer::Error::CleanupFailed(inner) => {
            inner
        }
        kube_finalizer::Error::AddFinalizer(source) => {
            Error::Finalizer(FinalizerError::Add(source))
        }
        kube_finalizer::Error::RemoveFinalizer(source) => {
            Error::Finalizer(FinalizerError::Remove(source))
        }
        other => Error::Finalizer(FinalizerError::Invalid(other.to_string())),
    })
}

async fn apply<K: ManagedResource, R: Reconciler<K>>(
    object: Arc<K>,
    shared: &Shared<K, R>,
) -> Result<Action, Error<R::Error>> {
    let Applied {
        mut status,
        requeue_after,
        ready: (ready_status, ready_reason, ready_message),
    } = shared
        .reconciler
        .apply(object.clone(), &shared.ctx)
        .await
        .map_err(Error::Reconcile)?;

    let generation = object.meta().generation;
    let previous = object
        .status()
        .map(|status| status.conditions().to_vec())
        .unwrap_or_default();
    let mut desired = std::mem::take(status.conditions_mut());
    if conditions::find(&desired, READY).is_none() {
        desired.insert(
            0,
            conditions::new(READY, ready_status, &ready_reason, ready_message),
        );
    }
    *status.conditions_mut() = conditions::merge(
        &previous,
        desired,
        generation,
        &conditions::time(shared.ctx.now()),
    );
    status.set_observed_generation(generation);

    let api: Api<DeserializeGuard<K>> = shared.ctx.api(&object.namespace().unwrap_or_default());
    let changed = status::differs(object.status(), &status)
        .map_err(|error| Error::Status(kube::Error::SerdeError(error)))?;
    if changed {
        status::apply(
            &api,
            &object.name_any(),
            &status,
            shared.ctx.field_manager(),
        )
        .await
        .map_err(Error::Status)?;
        tracing::debug!("status written");
        announce_ready_transition(object.as_ref(), &previous, status.conditions(), shared).await;
    }
    Ok(Action::requeue(
        requeue_after.unwrap_or(shared.requeue_after),
    ))
}

/// A Normal event when `Ready` flips, so `kubectl describe` tells the story of the object.
async fn announce_ready_transition<K: ManagedResource, R: Reconciler<K>>(
    object: &K,
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    current: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    shared: &Shared<K, R>,
) {
    let Some(ready) = conditions::find(current, READY) else {
        return;
    };
    let before = conditions::find(previous, READY).map(|condition| condition.status.as_str());
    if before == Some(ready.status.as_str()) {
        return;
    }
    let note = if ready.message.is_empty() {
        format!("Ready is {}", ready.status)
    } else {
        format!("Ready is {}: {}", ready.status, ready.message)
    };
    shared
        .ctx
        .events()
        .normal(&object.object_ref(&()), &ready.reason, "Reconcile", note)
        .await;
}

async fn cleanup<K: ManagedResource, R: Reconciler<K>>(
    object: Arc<K>,
    shared: &Shared<K, R>,
) -> Result<Action, Error<R::Error>> {
    let reference = object.object_ref(&());
    match shared.reconciler.cleanup(object, &shared.ctx).await {
        Ok(()) => {
            shared
                .ctx
                .events()
                .normal(
                    &reference,
                    "CleanedUp",
                    "Cleanup",
                    "external resources released",
                )
                .await;
            Ok(Action::await_change())
        }
        Err(error) if error.class() == ErrorClass::Permanent => {
            // Retrying cannot help; keeping the finalizer would only make deletion hang.
            let note = format!(
                "cleanup cannot succeed and was abandoned; release what remains by hand: {}",
                error_chain(&error, MAX_NOTE_BYTES)
            );
            tracing::warn!(reason = error.reason(), "{note}");
            shared
                .ctx
                .events()
                .warning(&reference, "CleanupAbandoned", "Cleanup", note)
                .await;
            Ok(Action::await_change())
        }
        Err(error) => Err(Error::Reconcile(error)),
    }
}

async fn reconcile_invalid<K: ManagedResource, R: Reconciler<K>>(
    object: &DeserializeGuard<K>,
    message: &str,
    shared: &Shared<K, R>,
) -> Result<Action, Error<R::Error>> {
    if object.meta().deletion_timestamp.is_none() {
        return Err(Error::InvalidObject(message.to_owned()));
    }
    if let Some(finalizer_name) = &shared.finalizer {
        let api: Api<DeserializeGuard<K>> = shared.ctx.api(&object.namespace().unwrap_or_default());
        if finalizer::remove(&api, object, finalizer_name)
            .await
            .map_err(Error::Kube)?
        {
            shared
                .ctx
                .events()
                .warning(
                    &object.object_ref(&()),
                    "CleanupSkipped",
                    "Cleanup",
                    format!("the object could not be read, so cleanup was skipped to let deletion proceed: {message}"),
                )
                .await;
        }
    }
    Ok(Action::await_change())
}

/// Logs the error, publishes a Warning event and, for errors the user must act on, writes
/// `Ready=False` with the reason and the error chain.
async fn report_error<K: ManagedResource, R: Reconciler<K>>(
    object: &DeserializeGuard<K>,
    error: &Error<R::Error>,
    shared: &Shared<K, R>,
) {
    let chain = error_chain(error, MAX_NOTE_BYTES);
    let class = error.class();
    tracing::warn!(reason = error.reason(), class = ?class, "reconcile failed: {chain}");
    let reference = object.object_ref(&());
    shared
        .ctx
        .events()
        .warning(&reference, error.reason(), "Reconcile", chain.clone())
        .await;

    let deleting = object.meta().deletion_timestamp.is_some();
    if class == ErrorClass::Transient || deleting {
        return;
    }
    let current: Option<&K::Status> = object.0.as_ref().ok().and_then(HasStatus::status);
    let mut status = current.cloned().unwrap_or_default();
    let generation = object.meta().generation;
    conditions::set(
        status.conditions_mut(),
        conditions::new(READY, false, error.reason(), chain),
        generation,
        &conditions::time(shared.ctx.now()),
    );
    status.set_observed_generation(generation);
    // An unreadable object has no status we can compare with; it is written once per
    // generation anyway, because status writes do not trigger reconciles.
    let changed = object.0.is_err() || status::differs(current, &status).unwrap_or(true);
    if !changed {
        return;
    }
    let api: Api<DeserializeGuard<K>> = shared.ctx.api(&object.namespace().unwrap_or_default());
    if let Err(write_error) = status::apply(
        &api,
        &object.name_any(),
        &status,
        shared.ctx.field_manager(),
    )
    .await
    {
        tracing::warn!(
            error = &write_error as &dyn std::error::Error,
            "writing the Ready=False condition failed"
        );
    }
}

pub(super) fn error_policy<K: ManagedResource, R: Reconciler<K>>(
    object: Arc<DeserializeGuard<K>>,
    error: &Error<R::Error>,
    shared: Arc<Shared<K, R>>,
) -> Action {
    let meta = object.meta();
    match error.class() {
        // Retrying the same generation cannot help; the spec change will trigger a reconcile.
        ErrorClass::Permanent => Action::await_change(),
        ErrorClass::Transient | ErrorClass::Wait => {
            let key = object_key(meta);
            let delay = shared.backoff.next_delay(&key);
            tracing::info!(
                controller = %shared.ctx.controller(),
                namespace = meta.namespace.as_deref().unwrap_or_default(),
                name = meta.name.as_deref().unwrap_or_default(),
                attempt = shared.backoff.attempts(&key),
                retry_in = ?delay,
                "will retry"
            );
            Action::requeue(delay)
        }
    }
}
