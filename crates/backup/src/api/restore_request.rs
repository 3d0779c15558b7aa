//! `RestoreRequest`: restore one backup into a database — a new one by default; replacing an
//! existing one takes `overwrite: true`, and even then the old data is replaced only after the
//! restore succeeded.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::executor::ExecutorSpec;
use super::policy::EncryptionSpec;
use super::refs::{LocalRef, SecretKeyRef};
use super::run::{ErrorKind, RunPhase, RunTimes};
use super::storage::StorageSpec;
use super::target::EngineKind;

/// Which backup to restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.backupRequestRef) != has(self.storage)").message("set exactly one of `backupRequestRef` or `storage` + `backupName`"),
    validation = Rule::new("!has(self.storage) || (has(self.backupName) && has(self.encryption))").message("restoring from `storage` needs `backupName` and `encryption`"),
    validation = Rule::new("has(self.storage) || (!has(self.backupName) && !has(self.encryption))").message("with `backupRequestRef`, the backup name and encryption come from the BackupRequest"),
)]
pub struct RestoreSource {
    /// A succeeded BackupRequest whose backup to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_request_ref: Option<LocalRef>,
    /// Or: the store holding the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// With `storage`: the backup's name in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 200),
        regex(pattern = "^[A-Za-z0-9_][A-Za-z0-9._-]*$")
    )]
    pub backup_name: Option<String>,
    /// With `storage`: the key that decrypts it (or `disabled: true` for an unencrypted one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,
}

/// Where the restore writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.engine == 'redis' || (has(self.host) && has(self.user) && has(self.passwordSecretRef))").message("postgres and mariadb targets need `host`, `user` and `passwordSecretRef`"),
    validation = Rule::new("self.engine != 'redis' || has(self.persistentVolumeClaim)").message("a redis restore writes an RDB file into `persistentVolumeClaim`"),
    validation = Rule::new("self.engine == 'redis' || (!has(self.persistentVolumeClaim) && !has(self.dataPath))").message("`persistentVolumeClaim` and `dataPath` are for redis"),
    validation = Rule::new("self.engine != 'redis' || !has(self.database)").message("`database` is for postgres and mariadb"),
)]
pub struct RestoreTargetSpec {
    /// The engine; must be the backup's.
    pub engine: EngineKind,
    /// Host name or IP address of the server (postgres, mariadb).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub host: Option<String>,
    /// TCP port; default 5432 (postgres) or 3306 (mariadb).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Login role or user; it needs the right to create databases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub user: Option<String>,
    /// The Secret key holding the password of `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// The database to create. Default: a new name derived from the backup's database; an
    /// existing database is refused unless `overwrite` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub database: Option<String>,
    /// redis: the volume of the server that will load the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<LocalRef>,
    /// redis: the data directory inside that volume. Default: its root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub data_path: Option<String>,
}

/// One restore.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "backup.vertice.dev",
    version = "v1alpha1",
    kind = "RestoreRequest",
    plural = "restorerequests",
    shortname = "rr",
    category = "vertice",
    namespaced,
    status = "RestoreRequestStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Backup","type":"string","jsonPath":".status.result.backupName"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".status.result.target"}"#,
    printcolumn = r#"{"name":"Verified","type":"string","jsonPath":".status.verification.result"}"#,
    printcolumn = r#"{"name":"Duration","type":"number","jsonPath":".status.durationSeconds"}"#,
    printcolumn = r#"{"name":"Error","type":"string","jsonPath":".status.result.errorKind","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message("spec is immutable: create a new RestoreRequest"))]
pub struct RestoreRequestSpec {
    /// The backup to restore.
    pub source: RestoreSource,
    /// Where to restore it.
    pub target: RestoreTargetSpec,
    /// Replace an existing target database (or RDB file). The old one is replaced only after
    /// the restore succeeded. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrite: Option<bool>,
    /// postgres: do not restore object ownership (`pg_restore --no-owner`), for a server
    /// without the dump's roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_owner: Option<bool>,
    /// postgres: do not restore privileges (`pg_restore --no-privileges`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_privileges: Option<bool>,
    /// After restoring, compare the restored row or key counts with those taken at dump time.
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
    /// Where the restore executes; default a Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorSpec>,
}

/// How a restore ended. Written once, when it finishes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResult {
    /// The backup restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_name: Option<String>,
    /// Where it went, e.g. `postgres://db:5432/app_restored`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Bytes of dump restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_size: Option<i64>,
    /// Why it failed, by kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// What went wrong, without secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// Outcome of comparing restored counts with the dump's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum VerificationResult {
    /// Every count matched.
    Passed,
    /// Some count differed (`message` lists them).
    Failed,
    /// Not run (`verify: false`, or the restore failed first).
    Skipped,
}

/// The restore's verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreVerification {
    /// `Passed`, `Failed` or `Skipped`.
    pub result: VerificationResult,
    /// Tables (or key spaces) compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects_compared: Option<i32>,
    /// The differences, or why it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Observed state of a RestoreRequest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(oldSelf.phase) || !(oldSelf.phase in ['Succeeded', 'Failed']) || (self.phase == oldSelf.phase && has(self.result) == has(oldSelf.result) && (!has(oldSelf.result) || self.result == oldSelf.result))").message("a finished restore's phase and result are immutable"))]
pub struct RestoreRequestStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and details.
    #[serde(default)]
    #[schemars(schema_with = "vertice_core::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// `Pending`, `Queued`, `Running`, `Succeeded` or `Failed`.
    #[serde(default)]
    pub phase: RunPhase,
    /// Start, completion and duration.
    #[serde(flatten)]
    pub times: RunTimes,
    /// Attempts started: the Pods of the restore's Job (Kubernetes retries a failed Pod up to
    /// the operator's `--run-backoff-limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RestoreResult>,
    /// The count comparison after the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<RestoreVerification>,
}

vertice_core::object_status!(RestoreRequestStatus);
