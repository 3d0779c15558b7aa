//! The BackupRequest controller: one run from `Pending` through `Queued` and `Running` to
//! `Succeeded` or `Failed` (issue 7 §3).
//!
//! - Settings come from the VerticeBackup or inline (`resolve.rs`); a missing VerticeBackup or
//!   Secret is `Ready=False` with its reason, retried with backoff (no hot loop).
//! - A storage location whose breaker is open fails the run fast (`breaker.rs`); the per-project
//!   limit queues it (`queue.rs`); pre hooks run, then `Running` is written, then the Job is
//!   created (`job.rs`) or the in-process task started (`in_process.rs`).
//! - Everything about a running run is derived from its Job (or task) and the store, so an
//!   operator restarted mid-run picks the run up: the Job's name is deterministic, and a run
//!   whose in-process task is gone is cleaned and retried.
//! - On completion the manifest is READ FROM THE STORE (sizes, location, backup id); the Pod's
//!   termination message only says why a run failed. A failed attempt whose manifest carries
//!   this run's UID is a success (a retry found the backup already made).
//! - The final status is written by this controller itself, then the counters, Events, post
//!   hooks and notifications follow exactly once (`backup_request/finish.rs`,
//!   `side_effects.rs`). Finished runs are never reconciled again except for deletion: no
//!   requeue timer, no API call.

mod finish;

use finish::{mark_post_run_done, post_run_done};

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use vertice_core::error::{ErrorClass, ReconcileError};
use vertice_core::tasks::{SpawnRefused, TaskPoll};
use vertice_core::{Applied, Context, Reconciler};

use super::breaker::{Breakers, Verdict};
use super::finished;
use super::history_archive::HistoryArchive;
use super::in_process::{InProcess, RunFailure};
use super::job::{self, JobParams};
use super::labels;
use super::metrics::RunMetrics;
use super::mounts::{Mounts, SECRETS_ROOT};
use super::outcome::{self, Finish};
use super::project;
use super::queue::{Admission, RunQueue};
use super::resolve::{self, ResolveError, RunSettings};
use super::run_status;
use super::secret_files;
use super::side_effects;
use crate::api::executor::ExecutorType;
use crate::api::run::{ErrorKind, RunPhase};
use crate::api::{BackupRequest, BackupRequestStatus, VerticeBackup};
use crate::error::BackupError;
use crate::notify::Notifier;

/// Reason of a run failed fast because its storage location's breaker is open.
pub const STORAGE_UNAVAILABLE: &str = "StorageUnavailable";
/// How often a running run is looked at even if its Job does not change (a safety net).
const RUNNING_RECHECK: Duration = Duration::from_secs(300);

/// Settings of the controller that come from flags.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The runner image (`--runner-image`).
    pub runner_image: String,
    /// Pod retries per Job (`--run-backoff-limit`).
    pub backoff_limit: i32,
}

/// Why a reconcile of a BackupRequest failed (a run's own failure is its status, not this).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Its settings cannot be resolved (missing VerticeBackup or Secret, …).
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// A Kubernetes API request failed.
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[source] kube::Error),
    /// The store could not be read to learn the run's result.
    #[error("reading the run's result from the store failed: {0}")]
    Store(#[source] BackupError),
    /// The run spec could not be serialized (a bug).
    #[error("the run spec cannot be serialized: {0}")]
    Spec(#[source] serde_json::Error),
    /// The in-process task could not start.
    #[error("the in-process run could not start: {0:?}")]
    Spawn(SpawnRefused),
}

impl ReconcileError for RunError {
    fn reason(&self) -> &'static str {
        match self {
            Self::Resolve(error) => error.reason(),
            Self::Kube(_) => "KubernetesApiError",
            Self::Store(_) => "StoreReadFailed",
            Self::Spec(_) => "InvalidRunSpec",
            Self::Spawn(_) => "TaskNotStarted",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            Self::Resolve(error) => error.class(),
            Self::Kube(_) | Self::Store(_) | Self::Spawn(_) => ErrorClass::Transient,
            Self::Spec(_) => ErrorClass::Permanent,
        }
    }
}

/// The BackupRequest reconciler.
pub struct BackupRequests {
    config: RunConfig,
    queue: RunQueue,
    breakers: Breakers,
    in_process: InProcess,
    metrics: RunMetrics,
    notifier: Notifier,
    history: HistoryArchive,
}

impl BackupRequests {
    /// The reconciler with its parts (built in `controller/mod.rs`).
    pub fn new(
        config: RunConfig,
        queue: RunQueue,
        breakers: Breakers,
        in_process: InProcess,
        metrics: RunMetrics,
        notifier: Notifier,
    ) -> Self {
        Self {
            config,
            queue,
            breakers,
            in_process,
            metrics,
            notifier,
            history: HistoryArchive::disabled(),
        }
    }

    /// Records finished runs in `history` (`--history-database-url`).
    #[must_use]
    pub fn with_history(mut self, history: HistoryArchive) -> Self {
        self.history = history;
        self
    }
}

/// The labels of a run's Job (and its Pods).
fn job_labels(
    request: &BackupRequest,
    settings: &RunSettings,
) -> std::collections::BTreeMap<String, String> {
    let mut labels = project::identity_labels(&settings.identity);
    labels.extend([
        (
            labels::REQUEST.to_owned(),
            truncate_label(&request.name_any()),
        ),
        (
            labels::REQUEST_UID.to_owned(),
            request.uid().unwrap_or_default(),
        ),
    ]);
    labels
}

/// Label values are at most 63 characters; object names may be longer.
fn truncate_label(value: &str) -> String {
    let cut: String = value.chars().take(63).collect();
    cut.trim_end_matches(['-', '.', '_']).to_owned()
}

impl BackupRequests {
    /// A `Pending` or `Queued` run: breaker, limit, pre hooks, then start.
    async fn start(
        &self,
        request: &BackupRequest,
        settings: &RunSettings,
        status: BackupRequestStatus,
        ctx: &Context,
    ) -> Result<BackupRequestStatus, RunError> {
        let namespace = request.namespace().unwrap_or_default();
        let secrets: Api<Secret> = ctx.api(&namespace);
        resolve::check_secrets(&secrets, &resolve::data_secret_keys(settings)).await?;

        let storage_key = resolve::storage_key(&settings.storage, &namespace);
        match self.breakers.check(&storage_key, ctx.now()) {
            Verdict::Closed => {}
            Verdict::FailFast(reason) => {
                let finish = Finish::failed(
                    ErrorKind::StorageFailed,
                    STORAGE_UNAVAILABLE,
                    format!(
                        "the storage location failed a recent run and has not answered since; no Job was started: {reason}"
                    ),
                );
                return self.finish(request, settings, status, finish, ctx).await;
            }
            Verdict::Probe => match outcome::probe(&secrets, settings).await {
                Ok(()) => self.breakers.close(&storage_key),
                Err(message) => {
                    let finish = Finish::failed(
                        ErrorKind::StorageFailed,
                        STORAGE_UNAVAILABLE,
                        format!(
                            "the storage location does not answer; no Job was started: {message}"
                        ),
                    );
                    return self.finish(request, settings, status, finish, ctx).await;
                }
            },
        }

        if let admission @ Admission::Wait { .. } = self.queue.admit(request) {
            return Ok(run_status::with_phase(
                request,
                status,
                RunPhase::Queued,
                (false, "Queued", admission.message()),
                ctx,
            ));
        }

        let event = side_effects::event(request, settings, None, ctx.now());
        match side_effects::pre_hooks(&self.notifier, &secrets, settings, &event).await {
            Ok(ignored) => {
                for note in ignored {
                    ctx.events()
                        .warning(&request.object_ref(&()), "HookFailed", "PreHook", note)
                        .await;
                }
            }
            Err(message) => {
                let finish = Finish::failed(ErrorKind::HookFailed, "HookFailed", message);
                return self.finish(request, settings, status, finish, ctx).await;
            }
        }

        // Running is written before the Job exists: a restart in between creates the same Job
        // and never calls the pre hooks again.
        let mut running = run_status::with_phase(
            request,
            status,
            RunPhase::Running,
            (
                false,
                "Running",
                format!("backup {} is running", settings.backup_name),
            ),
            ctx,
        );
        run_status::mark_started(&mut running, ctx);
        running.attempts = Some(1);
        run_status::write(request, &running, ctx)
            .await
            .map_err(RunError::Kube)?;
        self.launch(request, settings, ctx).await?;
        let how = match settings.executor.type_ {
            ExecutorType::Job => format!("Job {}", job::job_name(&request.name_any(), 1)),
            ExecutorType::InProcess => "in the operator".to_owned(),
        };
        ctx.events()
            .normal(
                &request.object_ref(&()),
                "Started",
                "Backup",
                format!("backup {} started ({how})", settings.backup_name),
            )
            .await;
        Ok(running)
    }

    /// Creates the Job (if it does not exist) or starts the in-process task.
    async fn launch(
        &self,
        request: &BackupRequest,
        settings: &RunSettings,
        ctx: &Context,
    ) -> Result<(), RunError> {
        let namespace = request.namespace().unwrap_or_default();
        match settings.executor.type_ {
            ExecutorType::InProcess => {
                match self
                    .in_process
                    .start(ctx, request, settings, ctx.api(&namespace))
                {
                    Ok(()) | Err(SpawnRefused::AlreadyRunning | SpawnRefused::ResultWaiting) => {
                        Ok(())
                    }
                    Err(refused) => Err(RunError::Spawn(refused)),
                }
            }
            ExecutorType::Job => {
                let mut mounts = Mounts::new(SECRETS_ROOT);
                let spec = resolve::backup_spec(settings, &mut mounts)?;
                let params = JobParams {
                    run_name: &request.name_any(),
                    namespace: &namespace,
                    attempt: 1,
                    owner: request.controller_owner_ref(&()).unwrap_or_default(),
                    default_image: &self.config.runner_image,
                    backoff_limit: self.config.backoff_limit,
                    labels: job_labels(request, settings),
                };
                let job = job::build(&params, &spec, &mounts, &settings.executor)
                    .map_err(RunError::Spec)?;
                let jobs: Api<Job> = ctx.api(&namespace);
                job::create(&jobs, &job).await.map_err(RunError::Kube)
            }
        }
    }

    /// A `Running` run: follow its Job or task.
    async fn follow(
        &self,
        request: &BackupRequest,
        settings: &RunSettings,
        status: BackupRequestStatus,
        ctx: &Context,
    ) -> Result<BackupRequestStatus, RunError> {
        match settings.executor.type_ {
            ExecutorType::Job => self.follow_job(request, settings, status, ctx).await,
            ExecutorType::InProcess => self.follow_task(request, settings, status, ctx).await,
        }
    }

    async fn follow_job(
        &self,
        request: &BackupRequest,
        settings: &RunSettings,
        mut status: BackupRequestStatus,
        ctx: &Context,
    ) -> Result<BackupRequestStatus, RunError> {
        let namespace = request.namespace().unwrap_or_default();
        let name = job::job_name(&request.name_any(), 1);
        let jobs: Api<Job> = ctx.api(&namespace);
        let Some(found) = jobs.get_opt(&name).await.map_err(RunError::Kube)? else {
            // Restarted between writing Running and creating the Job, or the Job was deleted.
            self.launch(request, settings, ctx).await?;
            return Ok(status);
        };
        let job_status = found.status.clone().unwrap_or_default();
        let pods = job_status.succeeded.unwrap_or(0)
            + job_status.failed.unwrap_or(0)
            + job_status.active.unwrap_or(0);
        status.attempts = Some(status.attempts.unwrap_or(1).max(pods));
        let condition = |type_: &str| {
            job_status
                .conditions
                .iter()
                .flatten()
                .find(|condition| condition.type_ == type_ && condition.status == "True")
                .cloned()
        };
        if condition("Complete").is_some() {
            let finish = outcome::read_result(request, settings, ctx, None).await?;
            return self.finish(request, settings, status, finish, ctx).await;
        }
        if let Some(failed) = condition("Failed") {
            let why = outcome::termination(&ctx.api(&namespace), &name).await;
            let fallback = match (why, failed.reason.as_deref()) {
                (Some(failure), _) => failure,
                (None, Some("DeadlineExceeded")) => RunFailure {
                    kind: ErrorKind::Cancelled,
                    message: "the run exceeded executor.activeDeadlineSeconds".into(),
                },
                (None, _) => RunFailure {
                    kind: ErrorKind::Internal,
                    message: format!(
                        "the Job failed ({}) and its Pod left no result",
                        failed.reason.unwrap_or_default()
                    ),
                },
            };
            let finish = outcome::read_result(request, settings, ctx, Some(fallback)).await?;
            return self.finish(request, settings, status, finish, ctx).await;
        }
        Ok(status)
    }

    async fn follow_task(
        &self,
        request: &BackupRequest,
        settings: &RunSettings,
        mut status: BackupRequestStatus,
        ctx: &Context,
    ) -> Result<BackupRequestStatus, RunError> {
        match self.in_process.poll(request) {
            TaskPoll::Running => Ok(status),
            TaskPoll::Finished(Ok(Ok(()))) => {
                let finish = outcome::read_result(request, settings, ctx, None).await?;
                self.finish(request, settings, status, finish, ctx).await
            }
            TaskPoll::Finished(Ok(Err(failure))) => {
                let finish = outcome::read_result(request, settings, ctx, Some(failure)).await?;
                self.finish(request, settings, status, finish, ctx).await
            }
            TaskPoll::Finished(Err(panicked)) => {
                let finish = Finish::failed(
                    ErrorKind::Internal,
                    "Internal",
                    format!("the in-process run panicked: {}", panicked.message),
                );
                self.finish(request, settings, status, finish, ctx).await
            }
            TaskPoll::Idle => {
                // A dead run (the operator restarted, or leadership moved, mid-run): its backup
                // may be complete; otherwise delete what it left and run it again.
                let attempts = status.attempts.unwrap_or(1);
                if let Some(finish) = self.dead_run(request, settings, ctx, attempts).await? {
                    return self.finish(request, settings, status, finish, ctx).await;
                }
                status.attempts = Some(attempts + 1);
                run_status::write(request, &status, ctx)
                    .await
                    .map_err(RunError::Kube)?;
                self.launch(request, settings, ctx).await?;
                ctx.events()
                    .normal(
                        &request.object_ref(&()),
                        "Restarted",
                        "Backup",
                        format!(
                            "the in-process run was interrupted; its partial objects were deleted and attempt {} started",
                            attempts + 1
                        ),
                    )
                    .await;
                Ok(status)
            }
        }
    }

    /// For a dead in-process run: `Some(finish)` if it needs no new attempt (its manifest
    /// exists, or no attempts are left); else deletes its partial objects and returns `None`.
    async fn dead_run(
        &self,
        request: &BackupRequest,
        settings: &RunSettings,
        ctx: &Context,
        attempts: i32,
    ) -> Result<Option<Finish>, RunError> {
        let secrets: Api<Secret> = ctx.api(&request.namespace().unwrap_or_default());
        let Some((store, _files)) = secret_files::open_store(&secrets, &settings.storage).await?
        else {
            return Ok(Some(Finish::failed(
                ErrorKind::InvalidConfiguration,
                "InvalidConfiguration",
                "a local store needs the Job executor",
            )));
        };
        match store.read_manifest(&settings.backup_name).await {
            Ok(_) => {
                return outcome::read_result(request, settings, ctx, None)
                    .await
                    .map(Some);
            }
            Err(BackupError::NotFound(_)) => {}
            Err(error) => return Err(RunError::Store(error)),
        }
        if attempts > self.config.backoff_limit {
            return Ok(Some(Finish::failed(
                ErrorKind::Cancelled,
                "Cancelled",
                format!("the in-process run was interrupted {attempts} times"),
            )));
        }
        store
            .delete_folder(&settings.backup_name)
            .await
            .map_err(RunError::Store)?;
        Ok(None)
    }
}

/// Merges `labels` into the run's labels.
async fn write_labels(
    request: &BackupRequest,
    labels: &std::collections::BTreeMap<String, String>,
    ctx: &Context,
) -> Result<(), RunError> {
    let api: Api<BackupRequest> = ctx.api(&request.namespace().unwrap_or_default());
    let patch = serde_json::json!({"metadata": {"labels": labels}});
    api.patch(
        &request.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(drop)
    .map_err(RunError::Kube)
}

impl Reconciler<BackupRequest> for BackupRequests {
    type Error = RunError;

    async fn apply(
        &self,
        request: Arc<BackupRequest>,
        ctx: &Context,
    ) -> Result<Applied<BackupRequestStatus>, RunError> {
        let status = request.status.clone().unwrap_or_default();
        if status.phase.is_finished() {
            // Again on every reconcile of a finished run (after a restart): see history_archive.rs.
            self.history.backup_finished(&request, &status, ctx);
            self.metrics.sizes.observe(&request);
            if post_run_done(&request) {
                // Done by an operator older than the finished label, or its patch failed.
                if !finished::is_labelled(request.as_ref()) {
                    finished::label(request.as_ref(), serde_json::json!({}), ctx).await;
                }
            } else {
                // The operator stopped between the final status and the post-run work.
                let policies: Api<VerticeBackup> =
                    ctx.api(&request.namespace().unwrap_or_default());
                match resolve::settings(&request, &policies).await {
                    Ok(settings) => self.post_run(&request, &settings, &status, ctx).await,
                    Err(error) => {
                        tracing::warn!("post-run hooks and notifications skipped: {error}");
                        mark_post_run_done(&request, ctx).await;
                    }
                }
            }
            return Ok(Applied::new(status));
        }
        let policies: Api<VerticeBackup> = ctx.api(&request.namespace().unwrap_or_default());
        let settings = match resolve::settings(&request, &policies).await {
            Ok(settings) => settings,
            Err(error) => {
                // A run that has not started does not hold a slot while it waits for a
                // missing object; a running one still runs (its Job or task goes on).
                if status.phase != RunPhase::Running {
                    self.queue.release(&request);
                }
                return Err(error.into());
            }
        };
        if status.phase != RunPhase::Running
            && let Some(missing) = project::labels_to_write(&request, &settings.identity)
        {
            // The run carries its project before it is admitted, so the per-project limit
            // (which reads runs from the cache) counts it where it belongs. The label
            // change wakes this run again.
            write_labels(&request, &missing, ctx).await?;
            return Ok(Applied::new(status));
        }
        let status = match status.phase {
            RunPhase::Pending | RunPhase::Queued => {
                self.start(&request, &settings, status, ctx).await?
            }
            _ => self.follow(&request, &settings, status, ctx).await?,
        };
        let running = status.phase == RunPhase::Running;
        let applied = Applied::new(status);
        Ok(if running {
            applied.requeue_after(RUNNING_RECHECK)
        } else {
            applied
        })
    }
}
