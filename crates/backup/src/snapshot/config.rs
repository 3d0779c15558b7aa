//! What a run's database snapshot is: the engine settings built from a `snapshot` part of a
//! BackupRequest or VerticeBackup (or a spec file), serialized in the run's [`RunSpec`].
//!
//! [`RunSpec`]: crate::engine::spec::RunSpec

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long a snapshot may take to become `available` when the spec does not say: one hour
/// (RDS snapshots of large instances take tens of minutes; the first one of an instance copies
/// all its storage).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// The cloud whose managed database is snapshotted. Only AWS RDS is implemented: there is no
/// emulator here to test GCP or Azure honestly, so the API refuses them at admission.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotProvider {
    /// Amazon RDS (a DB instance snapshot).
    #[default]
    Aws,
}

/// One managed-database snapshot to take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotConfig {
    /// The cloud (only `aws`).
    #[serde(default)]
    pub provider: SnapshotProvider,
    /// The DB instance identifier (RDS `DBInstanceIdentifier`).
    pub instance_id: String,
    /// The instance's region, e.g. `eu-west-1`.
    pub region: String,
    /// The credentials: a file of `AWS_ACCESS_KEY_ID=…`, `AWS_SECRET_ACCESS_KEY=…` (and
    /// optionally `AWS_SESSION_TOKEN=…`) lines, or a mounted Secret's folder with those keys.
    /// Required: credentials are never taken from the environment or instance metadata.
    pub credentials_file: PathBuf,
    /// The RDS API endpoint, e.g. a VPC endpoint or an emulator (`http://127.0.0.1:5000`);
    /// default: the region's public endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Tags put on the snapshot, besides the owner tags the engine adds (see
    /// [`super::rds::owner_tags`]).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// How long the snapshot may take to become `available`, in seconds (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

impl SnapshotConfig {
    /// The wait bound: `timeout_seconds`, else [`DEFAULT_TIMEOUT`].
    pub fn timeout(&self) -> Duration {
        self.timeout_seconds
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs)
    }
}

/// What deleting snapshots needs (retention and prune): the credentials and, optionally, the
/// endpoint; the region and the snapshot come from each manifest's [`super::SnapshotRecord`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotAccess {
    /// See [`SnapshotConfig::credentials_file`].
    pub credentials_file: PathBuf,
    /// See [`SnapshotConfig::endpoint`]; `None` uses the endpoint the record names, else the
    /// region's public one.
    pub endpoint: Option<String>,
}

impl From<&SnapshotConfig> for SnapshotAccess {
    fn from(config: &SnapshotConfig) -> Self {
        SnapshotAccess {
            credentials_file: config.credentials_file.clone(),
            endpoint: config.endpoint.clone(),
        }
    }
}
