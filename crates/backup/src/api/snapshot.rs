//! A run's database part as a managed-database snapshot (issue 8 §2) instead of a dump: the
//! `snapshot` field of a BackupRequest or VerticeBackup. Only AWS RDS is implemented; `gcp` and
//! `azure` are accepted by the enum so that the refusal can say why (there is no emulator here
//! to test them honestly), and refused at admission.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::refs::SecretRef;

/// The cloud whose managed database is snapshotted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotCloud {
    /// Amazon RDS: a DB instance snapshot.
    Aws,
    /// Google Cloud SQL: not supported yet (refused at admission).
    Gcp,
    /// Azure Database: not supported yet (refused at admission).
    Azure,
}

/// A snapshot of a managed database, taken, tagged, waited for until `available`, recorded in
/// the backup's manifest (ARN, engine and version), and deleted with the backup by retention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.provider == 'aws'").message("snapshot provider gcp and azure are not supported yet: only aws (RDS) snapshots are implemented"),
    validation = Rule::new("!has(self.tags) || self.tags.all(k, !k.lowerAscii().startsWith('aws:'))").message("snapshot tag keys must not start with `aws:` (AWS reserves them)")
)]
pub struct SnapshotTarget {
    /// The cloud: `aws` (RDS). `gcp` and `azure` are not supported yet.
    pub provider: SnapshotCloud,
    /// The DB instance identifier (RDS `DBInstanceIdentifier`), e.g. `app-prod`.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[A-Za-z][A-Za-z0-9-]*$"))]
    pub instance_id: String,
    /// The instance's region, e.g. `eu-west-1`.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9-]+$"))]
    pub region: String,
    /// The Secret with the AWS credentials: keys `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` (optionally `AWS_SESSION_TOKEN`). They need
    /// `rds:CreateDBSnapshot`, `rds:DescribeDBSnapshots`, `rds:AddTagsToResource`,
    /// `rds:ListTagsForResource` and, for retention, `rds:DeleteDBSnapshot`. Credentials are
    /// never taken from the environment or instance metadata.
    pub credentials_secret_ref: SecretRef,
    /// The RDS API endpoint, e.g. a VPC endpoint (`https://vpce-….rds.eu-west-1.vpce.amazonaws.com`);
    /// default: the region's public endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// Tags put on the snapshot (the operator adds its own owner tags, which win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 40))]
    pub tags: BTreeMap<String, String>,
    /// Seconds the snapshot may take to become `available` before the run fails. Default
    /// 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_seconds: Option<i32>,
}
