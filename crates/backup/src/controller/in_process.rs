//! The InProcess executor: the run's spec executed by the engine inside the operator, in a
//! background task keyed by the BackupRequest's UID ([`ObjectTasks`]), so a reconcile never
//! waits for a dump. The task's token is cancelled on shutdown, on lost leadership and when the
//! BackupRequest is deleted; a cancelled run leaves its partial objects, which the next
//! leader deletes before it retries the run (see `backup_request.rs`: a `Running` run with no
//! task is a dead run).
//!
//! Secrets reach the engine as files in a private temporary directory (see `secret_files.rs`
//! for why), removed when the task ends.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use vertice_core::Context;
use vertice_core::tasks::{ObjectTasks, SpawnRefused, TaskPoll};

use super::mounts::Mounts;
use super::resolve::{RunSettings, backup_spec};
use super::secret_files::SecretFiles;
use crate::api::BackupRequest;
use crate::api::run::ErrorKind;
use crate::cli::output::OutputFormat;
use crate::error::BackupError;

/// Why an in-process run failed: the engine's error kind and message (free of secrets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFailure {
    /// The kind (the runner's exit-code class).
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
}

impl RunFailure {
    fn from_engine(error: &BackupError) -> Self {
        Self {
            kind: ErrorKind::from_exit_code(i32::from(error.exit_code())),
            message: error.to_string(),
        }
    }

    fn setup(message: String) -> Self {
        Self {
            kind: ErrorKind::InvalidConfiguration,
            message,
        }
    }
}

/// What an in-process task returns.
pub type TaskOutcome = Result<(), RunFailure>;

/// The in-process runs of one operator process.
#[derive(Clone)]
pub struct InProcess {
    tasks: ObjectTasks<BackupRequest, TaskOutcome>,
}

impl InProcess {
    /// Runs kept in `tasks` (built with the controller's trigger and store).
    pub fn new(tasks: ObjectTasks<BackupRequest, TaskOutcome>) -> Self {
        Self { tasks }
    }

    /// The state of `request`'s task (a finished task's outcome is handed over once).
    pub fn poll(&self, request: &BackupRequest) -> TaskPoll<TaskOutcome> {
        self.tasks.poll(request)
    }

    /// Starts `request`'s backup in the background.
    pub fn start(
        &self,
        ctx: &Context,
        request: &BackupRequest,
        settings: &RunSettings,
        secrets: Api<Secret>,
    ) -> Result<(), SpawnRefused> {
        let settings = settings.clone();
        self.tasks.spawn(ctx, request, move |stop| async move {
            let files = SecretFiles::new().map_err(|error| RunFailure::setup(error.to_string()))?;
            let mut mounts = Mounts::new(files.root());
            let spec = backup_spec(&settings, &mut mounts)
                .map_err(|error| RunFailure::setup(error.to_string()))?;
            if mounts.claim.is_some() {
                return Err(RunFailure::setup(
                    "a local store (a PersistentVolumeClaim) needs the Job executor: the operator cannot mount it".into(),
                ));
            }
            files
                .write(&secrets, &mounts)
                .await
                .map_err(|error| RunFailure::setup(error.to_string()))?;
            let outcome = tokio::select! {
                outcome = crate::cli::runner::run_spec(spec, OutputFormat::Json) => outcome,
                () = stop.cancelled() => Err(BackupError::Cancelled),
            };
            drop(files);
            outcome
                .map(|_| ())
                .map_err(|error| RunFailure::from_engine(&error))
        })
    }
}
