//! The backup operator: a streaming data path (dump → compress → encrypt → hash → object
//! store, and back), usable as a CLI with no cluster, plus (later) the controllers.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

pub mod source;

/// The CustomResourceDefinitions this operator serves (none yet: a later issue adds them).
pub fn crds() -> Vec<CustomResourceDefinition> {
    Vec::new()
}
