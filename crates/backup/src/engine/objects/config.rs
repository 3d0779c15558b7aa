//! The object-storage part of a run: which bucket folder to copy into the backup (issue 8 §1).

use serde::{Deserialize, Serialize};

use crate::store::StoreConfig;

/// A bucket folder to copy into the backup's store as part of a backup run.
///
/// ```yaml
/// objects:
///   source: {store: s3, bucket: uploads, endpoint: "http://minio:9000",
///            credentialsFile: /secrets/uploads, credentials: explicit}
///   prefix: "media/"            # any characters; "" = the whole bucket
///   exclude: ["**/thumbnails/**", "*.tmp"]
///   include: []                 # empty = everything not excluded
///   full: false                 # false = incremental (the default)
///   parallelism: 8
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectCopyConfig {
    /// The bucket (or container) to copy from, with its own credentials (the operator: an
    /// explicit credentials file from the source's Secret). Its `prefix` is not used (a store
    /// prefix only allows backup-name characters): the folder to copy is [`Self::prefix`].
    pub source: StoreConfig,
    /// The folder inside the source bucket to copy, as the cloud spells keys: any characters
    /// (spaces, `+`, `%`, unicode); `""` copies the whole bucket. A prefix that does not end in
    /// `/` is treated as a folder all the same (`media` copies `media/...`, not `media2/...`).
    #[serde(default)]
    pub prefix: String,
    /// Glob patterns (`*` within one `/`-separated segment, `**` across segments, `?`, `[...]`,
    /// `{a,b}`) on each key relative to `prefix`: when not empty, only keys matching one of
    /// them are copied.
    #[serde(default)]
    pub include: Vec<String>,
    /// Glob patterns (as `include`) on each key relative to `prefix`: matching keys are never
    /// copied, even when an `include` pattern matches them (e.g. `**/thumbnails/**`, `**/*.tmp`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Copy every object again. By default (`false`, incremental) an object whose size and
    /// ETag match the newest backup in the same store that copied the same source and prefix is
    /// referenced in the new backup's index instead of being copied again.
    #[serde(default)]
    pub full: bool,
    /// Objects copied at once (default 8, at least 1). Memory is bounded by this times the
    /// copy buffer of one object (see [`super::copy`]).
    pub parallelism: Option<usize>,
}
