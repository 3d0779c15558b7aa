//! Where backups are stored: the engine's store settings (`crate::store::StoreConfig`) as a
//! custom resource section, with credentials from a Secret. A cloud store always needs its own
//! credentials: a tenant that gives none must not borrow the operator's cloud identity.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::refs::{LocalRef, SecretRef};

/// Kind of object store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A PersistentVolumeClaim mounted into the run (`persistentVolumeClaim`).
    Local,
    /// Amazon S3 or any S3-compatible server (MinIO, Ceph RGW, …).
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage (`bucket` is the container).
    Azure,
}

/// The regex of a prefix: `/`-separated segments of `A–Z a–z 0–9 . _ -`, each 1–200
/// characters and not starting with `.` or `-` (the engine's `names::check_prefix`).
pub const PREFIX_PATTERN: &str =
    "^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}(/[A-Za-z0-9_][A-Za-z0-9._-]{0,199})*$";

/// Storage settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.store != 'local' || (has(self.persistentVolumeClaim) && !has(self.bucket))").message("a local store needs `persistentVolumeClaim` and no `bucket`"),
    validation = Rule::new("self.store == 'local' || (has(self.bucket) && !has(self.persistentVolumeClaim))").message("s3, gcs and azure stores need `bucket` (the Azure container) and no `persistentVolumeClaim`"),
    validation = Rule::new("self.store == 'local' || has(self.credentialsSecretRef)").message("a cloud store needs `credentialsSecretRef`: runs never use the operator's own cloud identity"),
    validation = Rule::new("self.store != 's3' || !has(self.bucket) || self.bucket.matches('^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$')").message("an S3 bucket name is 3–63 characters of a–z 0–9 . - (no `/`): put folders in `prefix`"),
    validation = Rule::new("self.store != 'gcs' || !has(self.bucket) || self.bucket.matches('^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$')").message("a GCS bucket name is 3–222 characters of a–z 0–9 . _ - (no `/`): put folders in `prefix`"),
    validation = Rule::new("self.store != 'azure' || !has(self.bucket) || (self.bucket.matches('^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$') && !self.bucket.contains('--'))").message("an Azure container name is 3–63 characters of a–z 0–9 - without `--` (no `/`): put folders in `prefix`"),
    validation = Rule::new("self.store == 'azure' || !has(self.account)").message("`account` is for azure only"),
    validation = Rule::new("self.store == 's3' || (!has(self.region) && !has(self.pathStyle))").message("`region` and `pathStyle` are for s3 only")
)]
pub struct StorageSpec {
    /// Kind of store: `local`, `s3`, `gcs` or `azure`.
    pub store: StoreKind,
    /// s3 and gcs: the bucket; azure: the container. Only the bucket's own name: folders go in
    /// `prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 222))]
    pub bucket: Option<String>,
    /// Folder inside the bucket (or the volume) that holds this policy's backups, e.g.
    /// `team/app`. Segments are 1–200 characters of `A–Z a–z 0–9 . _ -`, not starting with `.`
    /// or `-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024), regex(pattern = PREFIX_PATTERN))]
    pub prefix: Option<String>,
    /// Custom endpoint for S3-compatible servers and emulators, e.g. `https://minio.infra:9000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() in ['http', 'https']").message("must be an http:// or https:// URL"))]
    pub endpoint: Option<String>,
    /// s3: the region, e.g. `eu-west-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub region: Option<String>,
    /// s3: address buckets as `endpoint/bucket` (path style). Default: on when `endpoint` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// azure: the storage account name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 24), regex(pattern = "^[a-z0-9]+$"))]
    pub account: Option<String>,
    /// The Secret with the store's credentials, by store: s3 — keys `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`; azure — key `AZURE_STORAGE_ACCOUNT_KEY`; gcs — key
    /// `service-account.json` (a service account key file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// local: the PersistentVolumeClaim that holds the backups (mounted into each run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<LocalRef>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefix_pattern_agrees_with_the_engine() {
        let pattern = regex::Regex::new(super::PREFIX_PATTERN).unwrap_or_else(|e| panic!("{e}"));
        for prefix in ["team", "team/app", "a_b/c.d/e-f", "X"] {
            assert!(pattern.is_match(prefix), "{prefix}");
            assert!(crate::names::check_prefix(prefix).is_ok(), "{prefix}");
        }
        for prefix in ["/team", "team/", "team//app", ".hidden", "a/-b", "a b", "é"] {
            assert!(!pattern.is_match(prefix), "{prefix}");
        }
    }
}
