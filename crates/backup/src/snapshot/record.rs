//! The manifest's record of a run's database snapshot: enough to find it again (ARN, region,
//! endpoint), to tell what it holds (instance, engine and version) and to delete it with the
//! backup. No credentials.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::SnapshotProvider;

/// One snapshot, as recorded in the manifest's `snapshot` field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRecord {
    /// The cloud.
    pub provider: SnapshotProvider,
    /// The snapshot's ARN (`arn:aws:rds:<region>:<account>:snapshot:<id>`).
    pub arn: String,
    /// Its identifier (RDS `DBSnapshotIdentifier`), `vertice-<backup name>-<random>`.
    pub snapshot_id: String,
    /// The DB instance it was taken of.
    pub instance_id: String,
    /// The instance's engine (`postgres`, `mysql`, …) as RDS reports it.
    pub engine: String,
    /// The engine's version as RDS reports it.
    pub engine_version: String,
    /// The region.
    pub region: String,
    /// The endpoint it was taken through, when not the region's public one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// When RDS started the snapshot (`SnapshotCreateTime`), else when we asked for it.
    pub created_at: DateTime<Utc>,
    /// Seconds from the request until the snapshot was `available`.
    pub duration_seconds: f64,
}
