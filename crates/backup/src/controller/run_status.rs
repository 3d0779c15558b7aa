//! What BackupRequest and RestoreRequest statuses have in common and how both controllers move
//! them: the phase with its `Ready` condition, the start/completion times and duration, and the
//! write through the status subresource.

use kube::{Api, Resource, ResourceExt};
use vertice_core::status::{ManagedResource, ObjectStatus};
use vertice_core::{Context, conditions, status};

use crate::api::run::{RunPhase, RunTimes};
use crate::api::{BackupRequestStatus, RestoreRequestStatus};

/// A run's status: its phase and times besides the conditions every status has.
pub trait RunStatus: ObjectStatus {
    /// The phase.
    fn phase_mut(&mut self) -> &mut RunPhase;
    /// Start, completion and duration.
    fn times_mut(&mut self) -> &mut RunTimes;
}

impl RunStatus for BackupRequestStatus {
    fn phase_mut(&mut self) -> &mut RunPhase {
        &mut self.phase
    }
    fn times_mut(&mut self) -> &mut RunTimes {
        &mut self.times
    }
}

impl RunStatus for RestoreRequestStatus {
    fn phase_mut(&mut self) -> &mut RunPhase {
        &mut self.phase
    }
    fn times_mut(&mut self) -> &mut RunTimes {
        &mut self.times
    }
}

/// `status` in `phase`, with `Ready` = (status, reason, message) merged in (its transition time
/// moves only when its status changes) and `observedGeneration` of `object`.
pub fn with_phase<K: Resource, S: RunStatus>(
    object: &K,
    mut status: S,
    phase: RunPhase,
    ready: (bool, &str, String),
    ctx: &Context,
) -> S {
    *status.phase_mut() = phase;
    let desired = vec![conditions::new("Ready", ready.0, ready.1, ready.2)];
    let merged = conditions::merge(
        status.conditions(),
        desired,
        object.meta().generation,
        &conditions::time(ctx.now()),
    );
    *status.conditions_mut() = merged;
    status.set_observed_generation(object.meta().generation);
    status
}

/// Stamps the start time (now).
pub fn mark_started<S: RunStatus>(status: &mut S, ctx: &Context) {
    status.times_mut().start_time = Some(conditions::time(ctx.now()));
}

/// Stamps the completion time (now) and the duration in seconds (millisecond precision); a run
/// without a start time (it ended before starting) started now.
pub fn mark_completed<S: RunStatus>(status: &mut S, ctx: &Context) {
    let completion = conditions::time(ctx.now());
    let times = status.times_mut();
    let start = times
        .start_time
        .clone()
        .unwrap_or_else(|| completion.clone());
    let millis = (completion.0.as_millisecond() - start.0.as_millisecond()).max(0);
    #[allow(clippy::cast_precision_loss)] // milliseconds of a run
    let seconds = millis as f64 / 1000.0;
    times.start_time = Some(start);
    times.completion_time = Some(completion);
    times.duration_seconds = Some(seconds);
}

/// Writes `status` to `object`'s status subresource (server-side apply, the operator's field
/// manager).
pub async fn write<K>(object: &K, status: &K::Status, ctx: &Context) -> Result<(), kube::Error>
where
    K: ManagedResource,
{
    let api: Api<K> = ctx.api(&object.namespace().unwrap_or_default());
    status::apply(&api, &object.name_any(), status, ctx.field_manager()).await
}
