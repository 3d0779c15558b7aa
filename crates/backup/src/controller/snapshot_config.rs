//! The engine's snapshot settings from a run's `snapshot` part (see `api/snapshot.rs`):
//! credentials as the mounted Secret's folder (one file per key, read as `KEY=VALUE` lines,
//! like an S3 store's), never as values in the spec.

use super::mounts::Mounts;
use super::resolve::ResolveError;
use crate::api::snapshot::{SnapshotCloud, SnapshotTarget};
use crate::snapshot::{SnapshotConfig, SnapshotProvider};

/// Keys of the snapshot credentials Secret (the CRD's `credentialsSecretRef` doc).
const AWS_KEYS: [&str; 2] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];

/// The engine's [`SnapshotConfig`] for `snapshot`, its Secret under `mounts`. Errors:
/// `Unsupported` for a provider other than `aws` (admission refuses those already).
pub fn snapshot_config(
    snapshot: &SnapshotTarget,
    mounts: &mut Mounts,
) -> Result<SnapshotConfig, ResolveError> {
    let provider = match snapshot.provider {
        SnapshotCloud::Aws => SnapshotProvider::Aws,
        SnapshotCloud::Gcp | SnapshotCloud::Azure => {
            return Err(ResolveError::Unsupported(
                "snapshot provider gcp and azure are not supported yet: only aws".into(),
            ));
        }
    };
    Ok(SnapshotConfig {
        provider,
        instance_id: snapshot.instance_id.clone(),
        region: snapshot.region.clone(),
        credentials_file: mounts.secret_dir(&snapshot.credentials_secret_ref.name),
        endpoint: snapshot.endpoint.clone(),
        tags: snapshot.tags.clone(),
        timeout_seconds: snapshot
            .timeout_seconds
            .and_then(|seconds| u64::try_from(seconds).ok()),
    })
}

/// The (secret, key) pairs the snapshot part reads.
pub fn snapshot_secret_keys(snapshot: &SnapshotTarget) -> Vec<(String, String)> {
    AWS_KEYS
        .iter()
        .map(|key| {
            (
                snapshot.credentials_secret_ref.name.clone(),
                (*key).to_owned(),
            )
        })
        .collect()
}
