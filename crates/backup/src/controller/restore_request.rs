//! The RestoreRequest controller: restores one backup into a database through a Job running
//! `vertice-backup runner` (action `restore`), into a new database by default.
//!
//! Phases: `Pending` (waiting for its BackupRequest to succeed, or for a Secret) → `Running`
//! (the Job exists) → `Succeeded` | `Failed`. `Running` is written before the Job is created,
//! the Job's name is deterministic and the target database's default name too, so an operator
//! restarted at any point follows the same Job instead of starting a second restore. A finished
//! RestoreRequest is never reconciled again (no timer).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::{Api, Resource, ResourceExt};
use vertice_core::error::{ErrorClass, ReconcileError};
use vertice_core::{Applied, Context, Reconciler};

use super::backup_request::RunConfig;
use super::finished;
use super::history_archive::HistoryArchive;
use super::job::{self, JobParams};
use super::job_result::{JobState, job_state};
use super::labels;
use super::metrics::RunMetrics;
use super::mounts::{Mounts, SECRETS_ROOT};
use super::resolve::{self, ResolveError};
use super::restore_resolve::{self, RestoreResolveError, RestoreSettings, SourceState};
use super::run_status;
use crate::api::executor::ExecutorType;
use crate::api::restore_request::{
    RestoreRequest, RestoreRequestStatus, RestoreResult, RestoreVerification, VerificationResult,
};
use crate::api::run::{ErrorKind, RunPhase};
use crate::api::{BackupRequest, VerticeBackup};

/// How often a running restore's Job is looked at besides its own changes (a safety net: Job
/// changes wake the RestoreRequest through the owner reference).
const RUNNING_RECHECK: Duration = Duration::from_secs(300);

/// Why a reconcile of a RestoreRequest failed (its class decides retry or wait).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The backup, its VerticeBackup or a Secret is missing.
    #[error(transparent)]
    Resolve(#[from] RestoreResolveError),
    /// A Kubernetes API request failed.
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[source] kube::Error),
    /// The run spec did not serialize (a bug).
    #[error("the run spec cannot be serialized: {0}")]
    Spec(#[source] serde_json::Error),
}

impl From<ResolveError> for RestoreError {
    fn from(error: ResolveError) -> Self {
        Self::Resolve(error.into())
    }
}

impl ReconcileError for RestoreError {
    fn reason(&self) -> &'static str {
        match self {
            Self::Resolve(error) => error.reason(),
            Self::Kube(_) => "KubernetesApiError",
            Self::Spec(_) => "InvalidRunSpec",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            Self::Resolve(error) => error.class(),
            Self::Kube(_) => ErrorClass::Transient,
            Self::Spec(_) => ErrorClass::Permanent,
        }
    }
}

/// The RestoreRequest reconciler.
pub struct RestoreRequests {
    config: RunConfig,
    metrics: RunMetrics,
    history: HistoryArchive,
}

impl RestoreRequests {
    /// Restores run in the `config.runner_image`; finished ones count in `metrics`.
    pub fn new(config: RunConfig, metrics: RunMetrics) -> Self {
        Self {
            config,
            metrics,
            history: HistoryArchive::disabled(),
        }
    }

    /// Records finished restores in `history` (`--history-database-url`).
    #[must_use]
    pub fn with_history(mut self, history: HistoryArchive) -> Self {
        self.history = history;
        self
    }
}

/// Whether `restore` restores from `run` (for the BackupRequest watch: a run that finishes
/// wakes the restores waiting for it).
pub fn restores_from(restore: &RestoreRequest, run: &BackupRequest) -> bool {
    restore.namespace() == run.namespace()
        && restore
            .spec
            .source
            .backup_request_ref
            .as_ref()
            .is_some_and(|reference| reference.name == run.name_any())
}

/// The Job name of a restore: prefixed so it never collides with a BackupRequest's Job of
/// the same name.
fn restore_job_name(request: &RestoreRequest) -> String {
    job::job_name(&format!("restore-{}", request.name_any()), 1)
}

/// How a restore ended.
struct Outcome {
    kind: Option<ErrorKind>,
    message: String,
    result: RestoreResult,
    verification: Option<RestoreVerification>,
}

impl Outcome {
    fn failed(kind: ErrorKind, message: String, backup_name: Option<String>) -> Self {
        Self {
            kind: Some(kind),
            message: message.clone(),
            result: RestoreResult {
                backup_name,
                error_kind: Some(kind),
                error_message: Some(message),
                ..RestoreResult::default()
            },
            verification: Some(RestoreVerification {
                result: VerificationResult::Skipped,
                objects_compared: None,
                message: Some("the restore did not succeed".into()),
            }),
        }
    }
}

/// The verification a finished restore reports: the runner's `verification` object when it
/// has one, else `Skipped` with why.
fn verification(request: &RestoreRequest, result: &serde_json::Value) -> RestoreVerification {
    if request.spec.verify == Some(false) {
        return RestoreVerification {
            result: VerificationResult::Skipped,
            objects_compared: None,
            message: Some("verify: false".into()),
        };
    }
    if let Some(differences) = result.get("differences") {
        // A drill's result: its own count comparison (and isolation, which fails the Job).
        let differences = strings(differences);
        return RestoreVerification {
            result: if differences.is_empty() {
                VerificationResult::Passed
            } else {
                VerificationResult::Failed
            },
            objects_compared: result
                .get("expected")
                .map(numeric_leaves)
                .and_then(|count| i32::try_from(count).ok()),
            message: (!differences.is_empty()).then(|| differences.join("; ")),
        };
    }
    let Some(found) = result.get("verification") else {
        return RestoreVerification {
            result: VerificationResult::Skipped,
            objects_compared: None,
            message: Some("the runner reported no count comparison".into()),
        };
    };
    let differences = found.get("differences").map(strings).unwrap_or_default();
    let compared = found
        .get("objectsCompared")
        .and_then(serde_json::Value::as_i64)
        .and_then(|count| i32::try_from(count).ok());
    RestoreVerification {
        result: if differences.is_empty() {
            VerificationResult::Passed
        } else {
            VerificationResult::Failed
        },
        objects_compared: compared,
        message: (!differences.is_empty()).then(|| differences.join("; ")),
    }
}

/// The strings of a JSON array (nothing for anything else).
fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// How many numbers `value` holds at its leaves: the tables (or key spaces) a drill's
/// `expected` counts name.
fn numeric_leaves(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Number(_) => 1,
        serde_json::Value::Array(items) => items.iter().map(numeric_leaves).sum(),
        serde_json::Value::Object(fields) => fields.values().map(numeric_leaves).sum(),
        _ => 0,
    }
}

impl RestoreRequests {
    /// Creates the restore's Job (an existing one is this restore's: names are deterministic).
    async fn launch(
        &self,
        request: &RestoreRequest,
        settings: &RestoreSettings,
        ctx: &Context,
    ) -> Result<(), RestoreError> {
        let namespace = request.namespace().unwrap_or_default();
        let mut mounts = Mounts::new(SECRETS_ROOT);
        let spec = restore_resolve::restore_spec(request, settings, &mut mounts)?;
        let owner = request.controller_owner_ref(&()).ok_or_else(|| {
            RestoreError::Resolve(
                ResolveError::Unsupported("the RestoreRequest has no UID yet".into()).into(),
            )
        })?;
        let name = request.name_any();
        let job_name = format!("restore-{name}");
        let params = JobParams {
            run_name: &job_name,
            namespace: &namespace,
            attempt: 1,
            owner,
            default_image: &self.config.runner_image,
            backoff_limit: self.config.backoff_limit,
            labels: [(labels::RESTORE.to_owned(), name.chars().take(63).collect())].into(),
        };
        let built =
            job::build(&params, &spec, &mounts, &settings.executor).map_err(RestoreError::Spec)?;
        let jobs: Api<Job> = ctx.api(&namespace);
        job::create(&jobs, &built).await.map_err(RestoreError::Kube)
    }

    /// A `Pending` restore whose backup is ready: check Secrets, write `Running`, create the Job.
    async fn start(
        &self,
        request: &RestoreRequest,
        settings: &RestoreSettings,
        status: RestoreRequestStatus,
        ctx: &Context,
    ) -> Result<RestoreRequestStatus, RestoreError> {
        let namespace = request.namespace().unwrap_or_default();
        let secrets: Api<Secret> = ctx.api(&namespace);
        resolve::check_secrets(&secrets, &restore_resolve::secret_keys(request, settings)).await?;
        let target = if restore_resolve::is_drill(request) {
            "a scratch database (a restore drill)".to_owned()
        } else {
            restore_resolve::target_database(request, settings)
        };
        let mut running = run_status::with_phase(
            request,
            status,
            RunPhase::Running,
            (
                false,
                "Running",
                format!("restoring {} into {target}", settings.backup_name),
            ),
            ctx,
        );
        run_status::mark_started(&mut running, ctx);
        running.attempts = Some(1);
        run_status::write(request, &running, ctx)
            .await
            .map_err(RestoreError::Kube)?;
        self.launch(request, settings, ctx).await?;
        ctx.events()
            .normal(
                &request.object_ref(&()),
                "Started",
                "Restore",
                format!(
                    "restoring backup {} into {target} (Job {})",
                    settings.backup_name,
                    restore_job_name(request)
                ),
            )
            .await;
        Ok(running)
    }

    /// A `Running` restore: follow its Job.
    async fn follow(
        &self,
        request: &RestoreRequest,
        settings: &RestoreSettings,
        mut status: RestoreRequestStatus,
        ctx: &Context,
    ) -> Result<RestoreRequestStatus, RestoreError> {
        let namespace = request.namespace().unwrap_or_default();
        let jobs: Api<Job> = ctx.api(&namespace);
        let pods: Api<Pod> = ctx.api(&namespace);
        let state = job_state(&jobs, &pods, &restore_job_name(request))
            .await
            .map_err(RestoreError::Kube)?;
        let target = restore_resolve::target_database(request, settings);
        let described = restore_resolve::describe_target(&request.spec.target, &target);
        let outcome = match state {
            JobState::Missing => {
                // Restarted between writing Running and creating the Job, or it was deleted.
                self.launch(request, settings, ctx).await?;
                return Ok(status);
            }
            JobState::Running { pods } => {
                status.attempts = Some(pods.max(1));
                return Ok(status);
            }
            JobState::Succeeded { pods, result } => {
                status.attempts = Some(pods.max(1));
                let result = result.unwrap_or_default();
                let verification = verification(request, &result);
                let raw_size = result
                    .get("rawSize")
                    .or_else(|| result.pointer("/restore/rawSize"))
                    .and_then(serde_json::Value::as_i64);
                let described = match result.get("scratchTarget").and_then(|t| t.as_str()) {
                    Some(scratch) => format!("{scratch} (a drill's scratch copy, removed)"),
                    None => described,
                };
                let failed_check = verification.result == VerificationResult::Failed;
                Outcome {
                    kind: failed_check.then_some(ErrorKind::VerificationFailed),
                    message: if failed_check {
                        format!("restored into {described}, but the counts differ from the dump's")
                    } else {
                        format!("backup {} restored into {described}", settings.backup_name)
                    },
                    result: RestoreResult {
                        backup_name: Some(settings.backup_name.clone()),
                        target: Some(described),
                        raw_size,
                        error_kind: failed_check.then_some(ErrorKind::VerificationFailed),
                        error_message: failed_check
                            .then(|| "restored counts differ from the dump's".to_owned()),
                    },
                    verification: Some(verification),
                }
            }
            JobState::Failed {
                pods,
                kind,
                message,
            } => {
                status.attempts = Some(pods.max(1));
                Outcome::failed(kind, message, Some(settings.backup_name.clone()))
            }
        };
        self.finish(request, status, outcome, ctx).await
    }

    /// Writes the final status, counts it and says so in an Event.
    async fn finish(
        &self,
        request: &RestoreRequest,
        status: RestoreRequestStatus,
        outcome: Outcome,
        ctx: &Context,
    ) -> Result<RestoreRequestStatus, RestoreError> {
        let success = outcome.kind.is_none();
        let (phase, reason) = match outcome.kind {
            None => (RunPhase::Succeeded, "Succeeded".to_owned()),
            Some(kind) => (RunPhase::Failed, format!("{kind:?}")),
        };
        let mut done = run_status::with_phase(
            request,
            status,
            phase,
            (success, &reason, outcome.message.clone()),
            ctx,
        );
        run_status::mark_completed(&mut done, ctx);
        done.result = Some(outcome.result);
        done.verification = outcome.verification;
        run_status::write(request, &done, ctx)
            .await
            .map_err(RestoreError::Kube)?;
        self.history.restore_finished(request, &done, ctx);
        let namespace = request.namespace().unwrap_or_default();
        self.metrics.restore_finished(&namespace, success);
        let reference = request.object_ref(&());
        if success {
            ctx.events()
                .normal(&reference, "Succeeded", "Restore", outcome.message)
                .await;
        } else {
            ctx.events()
                .warning(&reference, &reason, "Restore", outcome.message)
                .await;
        }
        // All done: the run leaves the operator's caches.
        finished::label(request, serde_json::json!({}), ctx).await;
        Ok(done)
    }
}

impl Reconciler<RestoreRequest> for RestoreRequests {
    type Error = RestoreError;

    async fn apply(
        &self,
        request: Arc<RestoreRequest>,
        ctx: &Context,
    ) -> Result<Applied<RestoreRequestStatus>, RestoreError> {
        let status = request.status.clone().unwrap_or_default();
        if status.phase.is_finished() {
            // Again on every reconcile of a finished run (after a restart): see history_archive.rs.
            self.history.restore_finished(&request, &status, ctx);
            if !finished::is_labelled(request.as_ref()) {
                finished::label(request.as_ref(), serde_json::json!({}), ctx).await;
            }
            return Ok(Applied::new(status));
        }
        let namespace = request.namespace().unwrap_or_default();
        let runs: Api<BackupRequest> = ctx.api(&namespace);
        let policies: Api<VerticeBackup> = ctx.api(&namespace);
        let settings = match restore_resolve::source(&request, &runs, &policies).await? {
            SourceState::Ready(settings) => settings,
            SourceState::Waiting(message) => {
                let waiting = run_status::with_phase(
                    request.as_ref(),
                    status,
                    RunPhase::Pending,
                    (false, "WaitingForBackup", message.clone()),
                    ctx,
                );
                return Ok(Applied::new(waiting));
            }
            SourceState::BackupFailed(message) => {
                let done = self
                    .finish(
                        &request,
                        status,
                        Outcome::failed(ErrorKind::NotFound, message, None),
                        ctx,
                    )
                    .await?;
                return Ok(Applied::new(done));
            }
        };
        if settings.executor.type_ == ExecutorType::InProcess {
            let message =
                "restores run as Jobs; executor.type InProcess is not supported for restores yet"
                    .to_owned();
            let done = self
                .finish(
                    &request,
                    status,
                    Outcome::failed(ErrorKind::InvalidConfiguration, message, None),
                    ctx,
                )
                .await?;
            return Ok(Applied::new(done));
        }
        if let Err(unsupported) =
            restore_resolve::restore_spec(&request, &settings, &mut Mounts::new(SECRETS_ROOT))
        {
            let done = self
                .finish(
                    &request,
                    status,
                    Outcome::failed(
                        ErrorKind::InvalidConfiguration,
                        unsupported.to_string(),
                        None,
                    ),
                    ctx,
                )
                .await?;
            return Ok(Applied::new(done));
        }
        let status = match status.phase {
            RunPhase::Pending | RunPhase::Queued => {
                self.start(&request, &settings, status, ctx).await?
            }
            _ => self.follow(&request, &settings, status, ctx).await?,
        };
        // The status carries its own Ready condition (see `with_phase`).
        let running = status.phase == RunPhase::Running;
        let applied = Applied::new(status);
        Ok(if running {
            applied.requeue_after(RUNNING_RECHECK)
        } else {
            applied
        })
    }
}
