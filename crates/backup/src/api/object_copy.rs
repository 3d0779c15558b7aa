//! The object-storage part of a run (issue 8 §1, §3): a bucket folder copied into the backup
//! storage under the run's folder, next to (after) the database dump. The engine's settings
//! are `crate::engine::objects::ObjectCopyConfig`; the operator builds them from this section
//! with the source's credentials as a mounted Secret, like the backup storage's own.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::storage::StorageSpec;

/// Longest source folder: S3 and GCS object keys are at most 1024 bytes.
pub const MAX_PREFIX_LENGTH: u32 = 1024;

/// A bucket folder to back up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.source.store != 'local'").message("the `objectStore` source is a bucket (s3, gcs or azure), not a local volume"),
    validation = Rule::new("!has(self.source.prefix)").message("put the source folder in `objectStore.prefix` (any characters), not in `source.prefix`"),
)]
pub struct ObjectCopySpec {
    /// The bucket to copy from: `store` (`s3`, `gcs` or `azure`), `bucket`, `endpoint`,
    /// `region`, `account` and `credentialsSecretRef` as in `storage` (the same Secret keys);
    /// the folder goes in `prefix` below. Its credentials need only read and list access.
    pub source: StorageSpec,
    /// The folder of the source bucket to copy, e.g. `uploads/` or `Documentos de 2024/`:
    /// any characters (spaces, `+`, `%`, unicode), taken literally; without a trailing `/`
    /// it is a folder all the same (`media` copies `media/…`, not `media2/…`). Empty or
    /// absent: the whole bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub prefix: Option<String>,
    /// Glob patterns on each object's key relative to `prefix` (`*` within one `/`-separated
    /// segment, `**` across segments, `?`, `[…]`, `{a,b}`): when any is given, only the
    /// objects matching one are copied (e.g. `**/*.pdf`). Default: every object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 1024)))]
    pub include: Vec<String>,
    /// Glob patterns on each object's key relative to `prefix`: matching objects are not
    /// copied, even when `include` matches them (e.g. generated files: `**/thumbnails/**`,
    /// `*.tmp`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 1024)))]
    pub exclude: Vec<String>,
    /// Copy every object again. Default false: incremental — an object whose size and hash
    /// match the previous successful copy is referenced from the backup that holds its bytes,
    /// not copied again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<bool>,
}
