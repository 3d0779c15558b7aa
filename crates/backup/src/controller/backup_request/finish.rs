//! The end of a run: the final status written once, then the counters, the breaker, Events,
//! post hooks and notifications — each exactly once (`post_run_done` marks the last step, so
//! an operator restarted in between finishes what is left and repeats nothing).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Resource, ResourceExt};
use vertice_core::Context;

use super::super::outcome::{self, Finish};
use super::super::resolve::{self, RunSettings};
use super::super::run_status;
use super::super::side_effects::{self, Ended};
use super::super::{finished, labels};
use super::{BackupRequests, RunError, STORAGE_UNAVAILABLE};
use crate::api::run::{ErrorKind, RunPhase};
use crate::api::{BackupRequest, BackupRequestStatus};

impl BackupRequests {
    /// Writes the final status, then counts, announces and notifies (once).
    pub(super) async fn finish(
        &self,
        request: &BackupRequest,
        settings: &RunSettings,
        mut status: BackupRequestStatus,
        finish: Finish,
        ctx: &Context,
    ) -> Result<BackupRequestStatus, RunError> {
        run_status::mark_completed(&mut status, ctx);
        status.result = Some(finish.result.clone());
        let phase = if finish.success {
            RunPhase::Succeeded
        } else {
            RunPhase::Failed
        };
        let status = run_status::with_phase(
            request,
            status,
            phase,
            (finish.success, &finish.reason, finish.message.clone()),
            ctx,
        );
        run_status::write(request, &status, ctx)
            .await
            .map_err(RunError::Kube)?;
        self.history.backup_finished(request, &status, ctx);
        let mut done = request.clone();
        done.status = Some(status.clone());
        self.metrics.sizes.observe(&done);

        let namespace = request.namespace().unwrap_or_default();
        let backup = settings.backup_label(request);
        let seconds = status.times.duration_seconds.unwrap_or(0.0);
        self.metrics.run_finished(
            &namespace,
            &backup,
            &settings.identity,
            finish.success,
            seconds,
        );
        if finish.success {
            self.metrics.objects.run_succeeded(
                &namespace,
                &backup,
                &settings.identity,
                &finish.result,
            );
        }
        if let Some(seconds) = finish.snapshot_seconds {
            self.metrics
                .snapshots
                .snapshot_taken(&namespace, &settings.identity.project, seconds);
        }
        self.queue.release(request);
        if finish.kind == Some(ErrorKind::StorageFailed)
            && finish.reason != STORAGE_UNAVAILABLE
            && self.destination_failed(request, settings, ctx).await
        {
            self.breakers.trip(
                &resolve::storage_key(&settings.storage, &namespace),
                &finish.message,
                ctx.now(),
            );
        }
        let reference = request.object_ref(&());
        if finish.success {
            ctx.events()
                .normal(&reference, "Succeeded", "Backup", finish.message.clone())
                .await;
        } else {
            ctx.events()
                .warning(&reference, &finish.reason, "Backup", finish.message.clone())
                .await;
        }
        self.post_run(request, settings, &status, ctx).await;
        Ok(status)
    }

    /// Whether a run that failed with a store error failed at its backup storage (the
    /// breaker's location). A run with an object part may have failed at its copy's SOURCE
    /// bucket instead, which says nothing about the storage: the storage is probed then, so
    /// a tenant's wrong source credentials never fail other runs to the same storage fast.
    async fn destination_failed(
        &self,
        request: &BackupRequest,
        settings: &RunSettings,
        ctx: &Context,
    ) -> bool {
        if settings.object_store.is_none() {
            return true;
        }
        let secrets: Api<Secret> = ctx.api(&request.namespace().unwrap_or_default());
        outcome::probe(&secrets, settings).await.is_err()
    }

    /// Post hooks and notifications of a finished run, unless already done; then marks them
    /// done.
    pub(super) async fn post_run(
        &self,
        request: &BackupRequest,
        settings: &RunSettings,
        status: &BackupRequestStatus,
        ctx: &Context,
    ) {
        let namespace = request.namespace().unwrap_or_default();
        let secrets: Api<Secret> = ctx.api(&namespace);
        let result = status.result.clone().unwrap_or_default();
        let ended = Ended {
            error: result
                .error_kind
                .map(|kind| (kind, result.error_message.clone().unwrap_or_default())),
            backup_name: result.backup_name.clone(),
            raw_bytes: result.raw_size.and_then(|size| u64::try_from(size).ok()),
            stored_bytes: result.stored_size.and_then(|size| u64::try_from(size).ok()),
            duration: status
                .times
                .duration_seconds
                .map(|seconds| Duration::from_secs_f64(seconds.max(0.0))),
            location: result.location.clone(),
        };
        let event = side_effects::event(request, settings, Some(&ended), ctx.now());
        let failures = side_effects::post_run(
            &self.notifier,
            &secrets,
            settings,
            &event,
            &self.metrics,
            &settings.backup_label(request),
        )
        .await;
        for note in failures {
            ctx.events()
                .warning(
                    &request.object_ref(&()),
                    "NotificationFailed",
                    "Notify",
                    note,
                )
                .await;
        }
        mark_post_run_done(request, ctx).await;
    }
}

/// Records that the post-run work is done; the last step of a run, so the same write labels
/// it finished (it leaves the operator's caches: `finished.rs`).
pub(super) async fn mark_post_run_done(request: &BackupRequest, ctx: &Context) {
    let annotations = serde_json::json!({labels::POST_RUN_DONE: "true"});
    finished::label(request, annotations, ctx).await;
}

pub(super) fn post_run_done(request: &BackupRequest) -> bool {
    request
        .annotations()
        .get(labels::POST_RUN_DONE)
        .is_some_and(|value| value == "true")
}
