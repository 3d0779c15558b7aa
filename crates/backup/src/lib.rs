//! The backup operator: a streaming data path (dump → compress → encrypt → hash → object
//! store, and back), usable as a CLI with no cluster, plus (later) the controllers.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

pub mod api;
pub mod backup;
pub mod cli;
pub mod controller;
pub mod drill;
pub mod engine;
pub mod error;
pub mod format;
pub mod history;
// The on-store format's types live in `format/`; their old paths stay.
pub use format::{keys, manifest, seal as manifest_seal};
pub mod isolation;
pub mod names;
pub mod notify;
pub mod pipeline;
pub mod progress;
pub mod prune;
pub mod rekey;
pub mod restore;
pub mod retention;
pub mod run_part;
pub mod snapshot;
pub mod source;
pub mod store;
pub mod verify;

/// The CustomResourceDefinitions this operator serves.
pub fn crds() -> Vec<CustomResourceDefinition> {
    api::crds()
}
