//! `VerticeBackup`: a backup policy — what to back up, when, where, how long to keep it, and
//! who to tell. Each scheduled time creates a `BackupRequest` (one run).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::executor::ExecutorSpec;
use super::notify::{HooksSpec, NotificationSpec};
use super::object_copy::ObjectCopySpec;
use super::policy::{CompressionSpec, EncryptionSpec, RetentionSpec, VerificationSpec};
use super::project::LABEL_VALUE_PATTERN;
use super::refs::LocalRef;
use super::snapshot::SnapshotTarget;
use super::storage::StorageSpec;
use super::target::DatabaseTarget;

/// What a new scheduled run does while another run of the same VerticeBackup is active
/// (CronJob's `concurrencyPolicy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Skip the new run (the default): one backup of a database at a time.
    #[default]
    Forbid,
    /// Start it anyway.
    Allow,
    /// Cancel the active run and start the new one.
    Replace,
}

/// What deleting the VerticeBackup does to the backups in storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep them (the default).
    #[default]
    Retain,
    /// Delete every backup this policy made (only those carrying its owner label).
    Delete,
}

/// A backup policy.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "backup.vertice.dev",
    version = "v1alpha1",
    kind = "VerticeBackup",
    plural = "verticebackups",
    shortname = "vb",
    category = "vertice",
    namespaced,
    status = "VerticeBackupStatus",
    printcolumn = r#"{"name":"Engine","type":"string","jsonPath":".spec.target.engine"}"#,
    printcolumn = r#"{"name":"Project","type":"string","jsonPath":".spec.projectId"}"#,
    printcolumn = r#"{"name":"Environment","type":"string","jsonPath":".spec.environment"}"#,
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Suspend","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Last Success","type":"date","jsonPath":".status.lastSuccessfulBackup.time"}"#,
    printcolumn = r#"{"name":"Next","type":"date","jsonPath":".status.nextScheduleTime"}"#,
    printcolumn = r#"{"name":"Size","type":"integer","format":"int64","jsonPath":".status.lastSuccessfulBackup.storedSize","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.target) || has(self.snapshot) || has(self.objectStore)").message("set at least one part to back up: `target` (a database dump) or `snapshot` (a managed-database snapshot), and/or `objectStore` (a bucket copy)"),
    validation = Rule::new("!(has(self.target) && has(self.snapshot))").message("set one database part: `target` (a dump) or `snapshot` (a managed-database snapshot), not both"),
    validation = Rule::new("!has(self.retentionDays) || !has(self.retention) || !has(self.retention.maxAge)").message("set `retentionDays` or `retention.maxAge`, not both (`retentionDays` is shorthand for `retention.maxAge`)"),
)]
pub struct VerticeBackupSpec {
    /// The database to dump. A VerticeBackup has at least one part: a database part
    /// (`target` or `snapshot`) and/or `objectStore`; each run takes them in that order, into
    /// one backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<DatabaseTarget>,
    /// A managed-database snapshot (AWS RDS) as the database part instead of a dump of
    /// `target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotTarget>,
    /// A bucket folder to copy into each backup, after the database part (if any). A run
    /// succeeds only if every part does, and one manifest records them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_store: Option<ObjectCopySpec>,
    /// When backups run: a 5-field cron expression (minute hour day-of-month month
    /// day-of-week) or a macro (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`).
    #[schemars(schema_with = "super::validation::schedule_schema")]
    pub schedule: String,
    /// IANA time zone of `schedule`, e.g. `Europe/Madrid`. Default UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::validation::time_zone_schema")]
    pub time_zone: Option<String>,
    /// Stop scheduling new runs; active runs finish. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// `Forbid` (default), `Allow` or `Replace` a run while one is active.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// A scheduled run that cannot start within this many seconds of its time is skipped
    /// and counted as missed. Default: no deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 86400))]
    pub starting_deadline_seconds: Option<i64>,
    /// Where backups are stored.
    pub storage: StorageSpec,
    /// Compression. Default zstd level 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionSpec>,
    /// Encryption: a key Secret, or `disabled: true`. Required.
    pub encryption: EncryptionSpec,
    /// Which backups to keep. Default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
    /// Delete backups older than this many days (7–365): shorthand for `retention.maxAge`
    /// of `days × 24h`, combined with the other `retention` rules; set one or the other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 7, max = 365))]
    pub retention_days: Option<i32>,
    /// Restore drills that prove the backups restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationSpec>,
    /// HTTP calls before and after each run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<HooksSpec>,
    /// Who is told about runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("notification names must be unique"))]
    pub notifications: Vec<NotificationSpec>,
    /// Where runs execute. Default: a Job per run with the operator's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorSpec>,
    /// Finished successful BackupRequests kept as objects (the backups themselves follow
    /// `retention`). Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub successful_runs_history_limit: Option<i32>,
    /// Finished failed BackupRequests kept as objects. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub failed_runs_history_limit: Option<i32>,
    /// `Retain` (default) or `Delete` the stored backups when this object is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// The project these backups belong to, e.g. `shop`; copied to every run it creates
    /// (see BackupRequest `projectId`: labels, metrics, the per-project concurrency limit).
    /// Default: this object's `vertice.dev/project` label, else the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = LABEL_VALUE_PATTERN))]
    pub project_id: Option<String>,
    /// The project's environment, e.g. `production`; copied to every run it creates (label
    /// `vertice.dev/environment`, metric label `environment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = LABEL_VALUE_PATTERN))]
    pub environment: Option<String>,
}

impl VerticeBackupSpec {
    /// The retention rules in force: `retention` with `retentionDays` as its `maxAge`
    /// (`<days × 24>h`). `None` when neither is set (every backup is kept). Admission refuses
    /// both `retentionDays` and `retention.maxAge`; should both arrive anyway, `maxAge` wins.
    pub fn effective_retention(&self) -> Option<RetentionSpec> {
        let days = self.retention_days.filter(|days| *days > 0);
        match (&self.retention, days) {
            (None, None) => None,
            (retention, days) => {
                let mut spec = retention.clone().unwrap_or_default();
                if spec.max_age.is_none() {
                    spec.max_age = days.map(|days| format!("{}h", i64::from(days) * 24));
                }
                Some(spec)
            }
        }
    }
}

/// The newest successful backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    /// The backup's name in the store.
    pub name: String,
    /// The BackupRequest that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// When it completed.
    pub time: Time,
    /// Bytes of the dump before compression and encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_size: Option<i64>,
    /// Bytes stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_size: Option<i64>,
    /// Where it is, e.g. `s3://backups/team/app/nightly-20260101T030000Z`.
    pub location: String,
}

/// One backup that the next retention sweep deletes, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionCandidate {
    /// The backup's name in the store.
    pub name: String,
    /// Why it goes, e.g. `older than maxAge 720h` or `beyond keepLast 7`.
    pub reason: String,
}

/// What retention would do now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPreview {
    /// Backups kept by the policy.
    pub kept: i32,
    /// The backups the next sweep deletes (at most 20 listed), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next_deletions: Vec<RetentionCandidate>,
    /// When the preview was computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_time: Option<Time>,
}

/// Observed state of a VerticeBackup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerticeBackupStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Scheduled`, `LastBackupSucceeded`, `Verified`.
    #[serde(default)]
    #[schemars(schema_with = "vertice_core::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// The newest scheduled time acted on: its run was created, or it was skipped
    /// (`concurrencyPolicy: Forbid` with a run active, or past `startingDeadlineSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// The next scheduled time (absent while suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// The newest successful backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_backup: Option<BackupRecord>,
    /// When the newest verification drill passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_time: Option<Time>,
    /// The BackupRequests running or queued now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<LocalRef>,
    /// Scheduled times skipped (concurrency, deadline, operator down) since the newest run was
    /// created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_schedules: Option<i32>,
    /// What retention would delete next, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPreview>,
}

vertice_core::object_status!(VerticeBackupStatus);
