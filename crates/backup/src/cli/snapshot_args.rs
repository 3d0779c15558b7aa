//! The `--rds-*` flags: `backup` takes an RDS snapshot instead of a dump, `prune` deletes the
//! snapshots of the backups it deletes. Credentials come from a file only (see
//! [`SnapshotConfig::credentials_file`]), never from the environment.

use std::path::PathBuf;

use crate::error::BackupError;
use crate::snapshot::{SnapshotAccess, SnapshotConfig, SnapshotProvider};

/// `backup --rds-snapshot <instance> …`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SnapshotArgs {
    /// Take a snapshot of this RDS DB instance instead of a dump (needs --rds-region and
    /// --rds-credentials-file); the backup records it and holds its description.
    #[arg(long, value_name = "INSTANCE_ID", requires_all = ["rds_region", "rds_credentials_file"])]
    pub rds_snapshot: Option<String>,
    /// The instance's AWS region.
    #[arg(long)]
    pub rds_region: Option<String>,
    /// A file (or mounted Secret folder) with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
    /// (optionally AWS_SESSION_TOKEN).
    #[arg(long)]
    pub rds_credentials_file: Option<PathBuf>,
    /// The RDS API endpoint (a VPC endpoint, an emulator); default: the region's.
    #[arg(long)]
    pub rds_endpoint: Option<String>,
    /// A tag for the snapshot, `key=value` (repeat).
    #[arg(long = "rds-tag")]
    pub rds_tags: Vec<String>,
    /// Fail when the snapshot is not available after this many seconds.
    #[arg(long, default_value_t = crate::snapshot::DEFAULT_TIMEOUT.as_secs())]
    pub rds_timeout_seconds: u64,
}

impl SnapshotArgs {
    /// The snapshot to take, if `--rds-snapshot` was given. Errors: `Config` for a tag that is
    /// not `key=value`.
    pub fn config(&self) -> Result<Option<SnapshotConfig>, BackupError> {
        let (Some(instance_id), Some(region), Some(credentials_file)) = (
            &self.rds_snapshot,
            &self.rds_region,
            &self.rds_credentials_file,
        ) else {
            return Ok(None);
        };
        let mut tags = std::collections::BTreeMap::new();
        for tag in &self.rds_tags {
            let Some((key, value)) = tag.split_once('=') else {
                return Err(BackupError::Config(format!(
                    "--rds-tag {tag:?} is not key=value"
                )));
            };
            tags.insert(key.to_owned(), value.to_owned());
        }
        Ok(Some(SnapshotConfig {
            provider: SnapshotProvider::Aws,
            instance_id: instance_id.clone(),
            region: region.clone(),
            credentials_file: credentials_file.clone(),
            endpoint: self.rds_endpoint.clone(),
            tags,
            timeout_seconds: Some(self.rds_timeout_seconds),
        }))
    }
}

/// `prune --rds-credentials-file …`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SnapshotAccessArgs {
    /// Credentials for deleting the RDS snapshots of deleted backups (a file or mounted Secret
    /// folder with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY). Without it, a backup that
    /// holds a snapshot is not deleted and prune fails naming it.
    #[arg(long)]
    pub rds_credentials_file: Option<PathBuf>,
    /// The RDS API endpoint; default: the one the manifest records, else the region's.
    #[arg(long)]
    pub rds_endpoint: Option<String>,
}

impl SnapshotAccessArgs {
    /// The access, when credentials were given.
    pub fn access(&self) -> Option<SnapshotAccess> {
        self.rds_credentials_file
            .as_ref()
            .map(|credentials_file| SnapshotAccess {
                credentials_file: credentials_file.clone(),
                endpoint: self.rds_endpoint.clone(),
            })
    }
}
