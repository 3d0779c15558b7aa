//! `BackupRequest`: one backup run, created by a VerticeBackup's schedule or by hand. Its spec
//! never changes, and once it finished neither does its result.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::executor::ExecutorSpec;
use super::object_copy::ObjectCopySpec;
use super::policy::{CompressionSpec, EncryptionSpec};
use super::project::LABEL_VALUE_PATTERN;
use super::refs::LocalRef;
use super::run::{ErrorKind, RunPhase, RunTimes};
use super::snapshot::SnapshotTarget;
use super::storage::StorageSpec;
use super::target::DatabaseTarget;

/// One backup run.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "backup.vertice.dev",
    version = "v1alpha1",
    kind = "BackupRequest",
    plural = "backuprequests",
    shortname = "br",
    category = "vertice",
    namespaced,
    status = "BackupRequestStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Policy","type":"string","jsonPath":".spec.backupRef.name"}"#,
    printcolumn = r#"{"name":"Project","type":"string","jsonPath":".spec.projectId"}"#,
    printcolumn = r#"{"name":"Environment","type":"string","jsonPath":".spec.environment"}"#,
    printcolumn = r#"{"name":"Backup","type":"string","jsonPath":".status.result.backupName"}"#,
    printcolumn = r#"{"name":"Size","type":"integer","format":"int64","jsonPath":".status.result.storedSize"}"#,
    printcolumn = r#"{"name":"Raw","type":"integer","format":"int64","jsonPath":".status.result.rawSize","priority":1}"#,
    printcolumn = r#"{"name":"Objects","type":"integer","format":"int64","jsonPath":".status.result.objectCount","priority":1}"#,
    printcolumn = r#"{"name":"Duration","type":"number","jsonPath":".status.durationSeconds"}"#,
    printcolumn = r#"{"name":"Attempts","type":"integer","jsonPath":".status.attempts"}"#,
    printcolumn = r#"{"name":"Error","type":"string","jsonPath":".status.result.errorKind","priority":1}"#,
    printcolumn = r#"{"name":"Location","type":"string","jsonPath":".status.result.location","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self == oldSelf").message("spec is immutable: create a new BackupRequest"),
    validation = Rule::new("has(self.backupRef) != (has(self.target) || has(self.snapshot) || has(self.objectStore))").message("set exactly one of `backupRef` (use a VerticeBackup's settings) or an inline run's parts (`target` or `snapshot`, and/or `objectStore`)"),
    validation = Rule::new("!(has(self.target) && has(self.snapshot))").message("set one database part: `target` (a dump) or `snapshot` (a managed-database snapshot), not both"),
    validation = Rule::new("has(self.backupRef) || (has(self.storage) && has(self.encryption))").message("an inline run needs `storage` and `encryption`"),
    validation = Rule::new("!has(self.backupRef) || (!has(self.storage) && !has(self.encryption) && !has(self.compression))").message("with `backupRef`, storage, encryption and compression come from the VerticeBackup"),
)]
pub struct BackupRequestSpec {
    /// The VerticeBackup whose target, storage, encryption, compression, hooks and
    /// notifications this run uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_ref: Option<LocalRef>,
    /// Inline run: the database to dump (instead of `backupRef`). An inline run has at least
    /// one part: `target` and/or `objectStore`; they run in that order, into one backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<DatabaseTarget>,
    /// Inline run: a managed-database snapshot (AWS RDS) instead of a dump of `target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotTarget>,
    /// Inline run: a bucket folder to copy into the backup, after the database part (if
    /// any). The run succeeds only if every part does, and one manifest records them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_store: Option<ObjectCopySpec>,
    /// Inline run: where to store the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// Inline run: encryption (a key Secret or `disabled: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,
    /// Inline run: compression. Default zstd level 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionSpec>,
    /// Where the run executes; default the VerticeBackup's executor, else a Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorSpec>,
    /// The backup's name in the store. Default: this object's name. 1–200 characters of
    /// `A–Z a–z 0–9 . _ -`, not starting with `.` or `-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 200),
        regex(pattern = "^[A-Za-z0-9_][A-Za-z0-9._-]*$")
    )]
    pub backup_name: Option<String>,
    /// Labels recorded in the backup's manifest (the operator adds its own owner labels).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The project this run belongs to, e.g. `shop`: the label `vertice.dev/project` on this
    /// run, its Job and its manifest, the `project` label of its metrics, and the key of the
    /// per-project concurrency limit (`--max-concurrent-runs-per-project`, default 2).
    /// Default: the VerticeBackup's `projectId`, else this object's `vertice.dev/project`
    /// label, else the namespace. A label value: 1–63 characters of `A–Z a–z 0–9 - _ .`,
    /// starting and ending with a letter or digit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = LABEL_VALUE_PATTERN))]
    pub project_id: Option<String>,
    /// The project's environment, e.g. `production`: the label `vertice.dev/environment` on
    /// this run, its Job and its manifest, and the `environment` label of its metrics.
    /// Default: the VerticeBackup's `environment`, else this object's `vertice.dev/environment`
    /// label, else none. A label value like `projectId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = LABEL_VALUE_PATTERN))]
    pub environment: Option<String>,
}

/// How a backup run ended. Written once, when the run finishes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupResult {
    /// The backup's name in the store (its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_name: Option<String>,
    /// Where it is, e.g. `s3://backups/team/app/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Bytes of the dump before compression and encryption (read from the stored manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_size: Option<i64>,
    /// Bytes stored (read from the stored manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_size: Option<i64>,
    /// The ARN of the run's managed-database snapshot (read from the stored manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_arn: Option<String>,
    /// Why it failed, by kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// What went wrong, without secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Object copy: objects in the backup (copied or referenced), from the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_count: Option<i64>,
    /// Object copy: their total bytes, from the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_bytes: Option<i64>,
    /// Object copy: objects whose bytes this run copied, from the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects_copied: Option<i64>,
    /// Object copy: unchanged objects referenced from an earlier backup instead of copied,
    /// from the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects_skipped: Option<i64>,
}

/// Observed state of a BackupRequest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(oldSelf.phase) || !(oldSelf.phase in ['Succeeded', 'Failed']) || (self.phase == oldSelf.phase && has(self.result) == has(oldSelf.result) && (!has(oldSelf.result) || self.result == oldSelf.result))").message("a finished run's phase and result are immutable"))]
pub struct BackupRequestStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the run is healthy or finished well) and `Succeeded`/`Failed` details.
    #[serde(default)]
    #[schemars(schema_with = "vertice_core::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// `Pending`, `Queued`, `Running`, `Succeeded` or `Failed`.
    #[serde(default)]
    pub phase: RunPhase,
    /// Start, completion and duration.
    #[serde(flatten)]
    pub times: RunTimes,
    /// Attempts started: with the Job executor, the Pods of the run's one Job (Kubernetes retries a
    /// failed Pod up to the operator's `--run-backoff-limit`); in process, each start (a run an
    /// operator restart interrupted starts again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<BackupResult>,
}

vertice_core::object_status!(BackupRequestStatus);
