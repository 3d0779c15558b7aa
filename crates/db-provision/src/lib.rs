//! The db-provision operator.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// The CustomResourceDefinitions this operator serves (none yet: a later issue adds them).
pub fn crds() -> Vec<CustomResourceDefinition> {
    Vec::new()
}
