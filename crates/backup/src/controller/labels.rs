//! The label and annotation keys the backup operator puts on BackupRequests, RestoreRequests,
//! Jobs and stored manifests. One place defines them; every controller and the retention filter
//! use these constants (the helper guide's shared conventions, issue 7 §1 and §3).

/// The project a run counts against for the per-project concurrency limit: its spec
/// `projectId`, else its VerticeBackup's, else the namespace (issue 8 §3). On BackupRequests and
/// RestoreRequests, copied onto their Jobs and manifests.
pub const PROJECT: &str = "vertice.dev/project";

/// The environment of the run's project (spec `environment`, issue 8 §3), e.g. `production`.
/// On BackupRequests, their Jobs and manifests, when the run has one.
pub const ENVIRONMENT: &str = "vertice.dev/environment";

/// The VerticeBackup's name: on the BackupRequests a schedule creates and in manifests.
pub const POLICY: &str = "backup.vertice.dev/policy";

/// The VerticeBackup's UID: in manifests, so retention of one policy never touches another
/// policy's backups even when both share a storage prefix.
pub const POLICY_UID: &str = "backup.vertice.dev/policy-uid";

/// The BackupRequest's name: in manifests and on Jobs.
pub const REQUEST: &str = "backup.vertice.dev/request";

/// The BackupRequest's UID: in manifests and on Jobs. A retried attempt finding a manifest with
/// this run's UID knows the backup already exists (no duplicate).
pub const REQUEST_UID: &str = "backup.vertice.dev/request-uid";

/// The RestoreRequest's name, on the Jobs of a restore.
pub const RESTORE: &str = "backup.vertice.dev/restore";

/// The attempt number (1-based) on a run's Job.
pub const ATTEMPT: &str = "backup.vertice.dev/attempt";

/// The standard "who manages this" label key: on Jobs and on BackupRequests a schedule creates.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// The value of [`MANAGED_BY`] for everything the backup operator creates.
pub const MANAGED_BY_VALUE: &str = "vertice-backup";

/// Annotation on a BackupRequest a schedule creates: the slot it runs for (RFC 3339).
pub const SCHEDULED_TIME: &str = "backup.vertice.dev/scheduled-time";

/// Annotation on a finished BackupRequest: the post-run side effects (post hooks,
/// notifications) already done, so an operator restart never repeats them.
pub const POST_RUN_DONE: &str = "backup.vertice.dev/post-run-done";

/// The label selector of the Jobs (and other children) this operator manages.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={MANAGED_BY_VALUE}")
}

/// On a BackupRequest or RestoreRequest: `true` once all its work is done; the operator's
/// watches leave such runs out of memory (`finished.rs`).
pub const FINISHED: &str = "backup.vertice.dev/finished";
