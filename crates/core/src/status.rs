//! The status subresource: what every status type provides, and writing it with server-side apply
//! only when it changed.
//!
//! Writing an unchanged status costs an API call, a new resourceVersion and a watch event in
//! every client watching the kind; with no per-pass timestamps in status (see
//! [`conditions`](crate::conditions)) an unchanged reconcile produces an identical status, and
//! the comparison below turns it into no write at all.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    core::object::HasStatus,
};
use serde::{Serialize, de::DeserializeOwned};

/// Implemented by every operator's status type. By convention the fields are named
/// `conditions` and `observedGeneration` in JSON, as in built-in Kubernetes kinds.
///
/// ```
/// use vertice_core::k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
///
/// #[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
/// #[serde(rename_all = "camelCase")]
/// pub struct SampleStatus {
///     #[serde(default, skip_serializing_if = "Option::is_none")]
///     pub observed_generation: Option<i64>,
///     #[serde(default)]
///     pub conditions: Vec<Condition>,
/// }
///
/// impl vertice_core::status::ObjectStatus for SampleStatus {
///     fn conditions(&self) -> &[Condition] { &self.conditions }
///     fn conditions_mut(&mut self) -> &mut Vec<Condition> { &mut self.conditions }
///     fn set_observed_generation(&mut self, generation: Option<i64>) {
///         self.observed_generation = generation;
///     }
/// }
/// ```
pub trait ObjectStatus: Default + Clone + Serialize + Send + Sync + 'static {
    /// The conditions, `Ready` among them.
    fn conditions(&self) -> &[Condition];
    /// The conditions, for the runtime to merge and stamp.
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
    /// Records which `metadata.generation` this status describes.
    fn set_observed_generation(&mut self, generation: Option<i64>);
}

/// Implements [`ObjectStatus`] for a status struct whose fields are named `conditions`
/// (`Vec<Condition>`) and `observed_generation` (`Option<i64>`), as every operator's are.
///
/// ```
/// use vertice_core::k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
///
/// #[derive(Clone, Debug, Default, serde::Serialize)]
/// pub struct SampleStatus {
///     pub observed_generation: Option<i64>,
///     pub conditions: Vec<Condition>,
/// }
/// vertice_core::object_status!(SampleStatus);
/// ```
#[macro_export]
macro_rules! object_status {
    ($status:ty) => {
        impl $crate::status::ObjectStatus for $status {
            fn conditions(
                &self,
            ) -> &[$crate::k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
                &self.conditions
            }
            fn conditions_mut(
                &mut self,
            ) -> &mut Vec<$crate::k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
                &mut self.conditions
            }
            fn set_observed_generation(&mut self, generation: Option<i64>) {
                self.observed_generation = generation;
            }
        }
    };
}

/// A custom resource the runtime can drive: namespaced, typed, with a status subresource whose
/// type implements [`ObjectStatus`]. Implemented automatically for every `#[derive(CustomResource)]`
/// type with `#[kube(namespaced, status = "…")]` whose status implements [`ObjectStatus`].
pub trait ManagedResource:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + HasStatus<Status: ObjectStatus + DeserializeOwned>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> ManagedResource for K where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + HasStatus<Status: ObjectStatus + DeserializeOwned>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// Whether `desired` differs from `current` as the API would see it (compared as JSON, so field
/// order and types without `PartialEq` do not matter).
pub fn differs<S: Serialize>(current: Option<&S>, desired: &S) -> Result<bool, serde_json::Error> {
    let current = serde_json::to_value(current)?;
    let desired = serde_json::to_value(desired)?;
    Ok(current != desired)
}

/// Server-side applies `status` to the status subresource of the object `name` as
/// `field_manager`, with `force` so that the operator always owns its status fields. Every field
/// this manager set before and that `status` omits is removed: always pass the complete status.
///
/// `K` may be a [`DeserializeGuard`](kube::core::DeserializeGuard), so the response of an object
/// that does not deserialize does not turn a successful write into an error.
pub async fn apply<K, S>(
    api: &Api<K>,
    name: &str,
    status: &S,
    field_manager: &str,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// [`apply`] only when `status` differs from `obj`'s current status. Returns whether it wrote.
pub async fn apply_if_changed<K>(
    api: &Api<K>,
    obj: &K,
    status: &K::Status,
    field_manager: &str,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + HasStatus + Clone + DeserializeOwned + std::fmt::Debug,
    K::Status: Serialize,
{
    if !differs(obj.status(), status).map_err(kube::Error::SerdeError)? {
        return Ok(false);
    }
    apply(api, &obj.name_any(), status, field_manager).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default, Serialize)]
    struct Status {
        phase: Option<String>,
        count: u32,
    }

    #[test]
    fn equal_status_does_not_differ() -> Result<(), serde_json::Error> {
        let status = Status {
            phase: Some("Ready".into()),
            count: 1,
        };
        assert!(!differs(Some(&status.clone()), &status)?);
        Ok(())
    }

    #[test]
    fn missing_or_changed_status_differs() -> Result<(), serde_json::Error> {
        let status = Status::default();
        assert!(differs(None, &status)?);
        let changed = Status {
            count: 2,
            ..Status::default()
        };
        assert!(differs(Some(&status), &changed)?);
        Ok(())
    }
}
