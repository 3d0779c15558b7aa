//! Finalizers: our cleanup runs before an object goes away, and deletion never sticks because of
//! us.
//!
//! The normal path is kube's [`finalizer`](kube::runtime::finalizer::finalizer) helper (add the
//! finalizer, run Apply or Cleanup, remove the finalizer after a successful cleanup). Around it
//! the runner guarantees:
//! - cleanup gets the fresh object from the event and must tolerate apply never having run (the
//!   object may be deleted right after the finalizer was added);
//! - a cleanup that fails *permanently* (it can never succeed) is reported with a Warning event
//!   and the finalizer is removed anyway: holding the object forever helps nobody;
//! - an object that cannot even be deserialized cannot be cleaned up with the operator's types;
//!   its finalizer is removed (see [`remove`]) with a Warning, instead of blocking deletion until
//!   someone edits a half-deleted object.
//!
//! Only operators that own something outside Kubernetes need a finalizer; children inside the
//! cluster are removed by ownerReferences and the garbage collector.

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::de::DeserializeOwned;

/// Removes `finalizer` from `obj` if present. The merge patch carries the resourceVersion we read,
/// so a concurrent edit of the finalizer list makes it fail with 409 (and the next reconcile
/// retries with the fresh list) instead of dropping someone else's finalizer.
pub async fn remove<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let finalizers = obj.finalizers();
    if !finalizers.iter().any(|name| name == finalizer) {
        return Ok(false);
    }
    let remaining: Vec<&String> = finalizers
        .iter()
        .filter(|name| *name != finalizer)
        .collect();
    let patch = serde_json::json!({
        "metadata": {
            "finalizers": remaining,
            "resourceVersion": obj.resource_version(),
        }
    });
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(true)
}
