//! Whether an object read from a controller's cache is still the API server's latest version.
//!
//! The cache follows a watch, so right after a write (most often the controller's own status
//! write) it can still hold the version before it. A reconcile of that older copy would repeat
//! what the newer one already records (hooks, notifications, starting work again) and write its
//! older status over the newer one. A controller built with
//! [`ControllerBuilder::latest_only`](crate::ControllerBuilder::latest_only) checks with
//! [`is_current`] before each reconcile and, when the cache is behind, comes back after
//! [`CATCH_UP`].

use std::time::Duration;

use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// How long to wait for a lagging cache before reconciling again: watch events arrive within
/// milliseconds, so one second is long enough and short enough not to leave work waiting.
pub const CATCH_UP: Duration = Duration::from_secs(1);

/// Whether `object` (from the cache) has the resourceVersion the API server holds now. False when
/// the object changed since, and when it no longer exists. One metadata-only GET.
///
/// # Errors
/// The API request failed.
pub async fn is_current<K>(api: &Api<K>, object: &K) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let meta = object.meta();
    let (Some(name), Some(version)) = (meta.name.as_deref(), meta.resource_version.as_deref())
    else {
        return Ok(false);
    };
    let latest = api.get_metadata_opt(name).await?;
    Ok(latest.is_some_and(|latest| latest.metadata.resource_version.as_deref() == Some(version)))
}
