//! How backups are written and kept: compression, encryption, retention and verification
//! drills. Retention fields are the engine's policy (`crate::retention::RetentionPolicy`).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::refs::SecretKeyRef;
use super::target::ServerConnection;

/// Compression algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompressionAlgorithm {
    /// Zstandard (the default: fast and compact).
    #[default]
    Zstd,
    /// gzip, for tools that only read gzip.
    Gzip,
    /// Store the dump uncompressed.
    None,
}

/// Compression of the dump before encryption.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.level) || self.algorithm != 'none'").message("`level` needs a compressing algorithm"),
    validation = Rule::new("!has(self.level) || self.algorithm != 'gzip' || self.level <= 9").message("gzip levels are 1–9"),
)]
pub struct CompressionSpec {
    /// `zstd` (default), `gzip` or `none`.
    #[serde(default)]
    pub algorithm: CompressionAlgorithm,
    /// Level: zstd 1–19 (default 1), gzip 1–9 (default 6). Higher is smaller and slower.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 19))]
    pub level: Option<i32>,
}

/// Encryption of every backup: AES-256-GCM with a data key per backup, wrapped by the key in
/// `keySecretRef`. Required: turning it off takes an explicit `disabled: true`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.keySecretRef) != (has(self.disabled) && self.disabled)").message("set exactly one of `keySecretRef` or `disabled: true`"),
    validation = Rule::new("has(self.keySecretRef) || !has(self.previousKeySecretRefs) || size(self.previousKeySecretRefs) == 0").message("`previousKeySecretRefs` needs `keySecretRef`"),
)]
pub struct EncryptionSpec {
    /// The Secret key holding the 32-byte key-encryption key (raw, base64 or hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretKeyRef>,
    /// Older keys, to read backups made before a key rotation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub previous_key_secret_refs: Vec<SecretKeyRef>,
    /// Store backups unencrypted. Must be set explicitly; there is no silent default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// Which backups to keep. A backup is kept when any rule keeps it; the newest good backup is
/// never deleted. Counts of 0 or absent disable a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Keep the n newest successful backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub keep_last: Option<i32>,
    /// Keep the newest backup of each of the n most recent hours that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub keep_hourly: Option<i32>,
    /// Keep the newest backup of each of the n most recent days that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub keep_daily: Option<i32>,
    /// Keep the newest backup of each of the n most recent ISO weeks that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub keep_weekly: Option<i32>,
    /// Keep the newest backup of each of the n most recent months that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub keep_monthly: Option<i32>,
    /// Keep the newest backup of each of the n most recent years that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub keep_yearly: Option<i32>,
    /// Delete backups older than this, e.g. `720h` (30 days): hours, minutes, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::validation::duration_schema")]
    pub max_age: Option<String>,
    /// The number of newest good backups never deleted, whatever the other rules say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub min_keep: Option<i32>,
    /// Count a backup as good (for `minKeep`) only once a verification drill passed on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_verified: Option<bool>,
    /// A sweep that would delete more than this percentage of the policy's backups stops and
    /// waits for the annotation `backup.vertice.dev/allow-large-prune=true` on the
    /// VerticeBackup (removed by the operator after that sweep). Default: the operator's
    /// `--retention-max-delete-percent` (50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_delete_percent: Option<i32>,
}

/// Restore drills: a backup restored into a scratch database and its row or key counts
/// compared with those taken at dump time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSpec {
    /// When drills run (5-field cron or a macro such as `@weekly`), in `timeZone`.
    #[schemars(schema_with = "super::validation::schedule_schema")]
    pub schedule: String,
    /// IANA time zone of `schedule`; default the VerticeBackup's `timeZone`, else UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::validation::time_zone_schema")]
    pub time_zone: Option<String>,
    /// Pause drills without deleting this section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// The server that drills restore into (a scratch database is created and dropped there).
    /// Default: the target server itself. Redis drills run a private `redis-server` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch: Option<ServerConnection>,
}
