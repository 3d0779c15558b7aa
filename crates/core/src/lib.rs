//! The shared runtime of the Vértice operators.
//!
//! Everything two operators would otherwise write twice lives here, so the four operators move
//! together: the controller loop, per-object backoff, leader election, finalizers, conditions,
//! server-side-apply status, events, metrics, the admin server, logging and the CLI shape.
//! `kube`, `k8s_openapi` and `schemars` are re-exported so every operator uses the same versions.

pub use k8s_openapi;
pub use kube;
pub use schemars;

pub mod cli;
