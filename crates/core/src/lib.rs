//! The shared runtime of the Vértice operators.
//!
//! Everything two operators would otherwise write twice lives here, so the four operators move
//! together: the controller loop, per-object backoff, leader election, finalizers, conditions,
//! server-side-apply status, events, metrics, the admin server, logging and the CLI shape.
//! `kube`, `k8s_openapi` and `schemars` are re-exported so every operator uses the same versions.
//!
//! # Using it from an operator
//!
//! The operator implements [`Reconciler`] for its kind (apply returns the status to write; the
//! runtime adds `Ready`, `observedGeneration` and `lastTransitionTime` and writes only changes),
//! implements [`ReconcileError`](error::ReconcileError) for its error, and its `main.rs` does:
//!
//! ```no_run
//! use std::sync::Arc;
//! use vertice_core::{Applied, Context, ControllerBuilder, Operator, Reconciler};
//! use vertice_core::error::{ErrorClass, ReconcileError};
//! use vertice_core::k8s_openapi::{api::batch::v1::Job, apimachinery::pkg::apis::meta::v1::Condition};
//! use vertice_core::kube::CustomResource;
//! # use serde::{Deserialize, Serialize};
//!
//! #[derive(CustomResource, Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
//! #[kube(group = "backup.vertice.dev", version = "v1alpha1", kind = "VerticeBackup",
//!        namespaced, status = "VerticeBackupStatus")]
//! pub struct VerticeBackupSpec { pub schedule: String }
//!
//! #[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
//! #[serde(rename_all = "camelCase")]
//! pub struct VerticeBackupStatus {
//!     #[serde(default, skip_serializing_if = "Option::is_none")]
//!     pub observed_generation: Option<i64>,
//!     #[serde(default)]
//!     pub conditions: Vec<Condition>,
//! }
//! impl vertice_core::status::ObjectStatus for VerticeBackupStatus {
//!     fn conditions(&self) -> &[Condition] { &self.conditions }
//!     fn conditions_mut(&mut self) -> &mut Vec<Condition> { &mut self.conditions }
//!     fn set_observed_generation(&mut self, g: Option<i64>) { self.observed_generation = g; }
//! }
//!
//! #[derive(Debug, thiserror::Error)]
//! pub enum Error {
//!     #[error("spec.schedule is not a cron expression")]
//!     InvalidSchedule,
//! }
//! impl ReconcileError for Error {
//!     fn reason(&self) -> &'static str { "InvalidSchedule" }
//!     fn class(&self) -> ErrorClass { ErrorClass::Permanent }
//! }
//!
//! struct Backups;
//! impl Reconciler<VerticeBackup> for Backups {
//!     type Error = Error;
//!     async fn apply(&self, backup: Arc<VerticeBackup>, ctx: &Context)
//!         -> Result<Applied<VerticeBackupStatus>, Error> {
//!         if backup.spec.schedule.is_empty() {
//!             return Err(Error::InvalidSchedule); // Ready=False + Warning, no retry until edited
//!         }
//!         Ok(Applied::new(VerticeBackupStatus::default())) // Ready=True, written if changed
//!     }
//!     async fn cleanup(&self, backup: Arc<VerticeBackup>, ctx: &Context) -> Result<(), Error> {
//!         Ok(()) // delete the objects in the bucket; must work even if apply never ran
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     # let args: vertice_core::cli::RunArgs = todo!();
//!     // `args` is the `run` subcommand's `vertice_core::cli::RunArgs`.
//!     let mut operator = Operator::new("backup", args);
//!     // operator.registry() takes the operator's own metrics (prefix `vertice_backup_`).
//!     operator
//!         .controller(
//!             ControllerBuilder::new(Backups)
//!                 .finalizer("backup.vertice.dev/cleanup")
//!                 .owns::<Job>(),
//!         )
//!         .run()
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! What [`Operator::run`] does: logging (text/JSON, env filter), the admin server (`/metrics`,
//! `/healthz`, `/readyz`), leader election on a Lease, the controllers with bounded concurrency
//! and a span per reconcile, and a graceful stop on SIGTERM/SIGINT. The RBAC an operator needs
//! for the runtime itself: its kinds (`get/list/watch/patch`, `patch` on `…/status`),
//! `events.k8s.io/events` (`create`, `patch`) and `coordination.k8s.io/leases`
//! (`get`, `create`, `update`).
//!
//! Modules, one idea each: [`runner`] (the controller), [`operator`] (the process),
//! [`error`], [`backoff`], [`conditions`], [`status`], [`finalizer`], [`events`], [`metrics`],
//! [`admin`], [`leader`], [`shutdown`], [`telemetry`], [`context`], [`cli`].

pub use k8s_openapi;
pub use kube;
pub use schemars;

pub mod admin;
pub mod backoff;
pub mod cli;
pub mod conditions;
pub mod context;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod runner;
pub mod schema;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod tls;

pub use context::Context;
pub use operator::{Operator, OperatorError};
pub use runner::{Applied, ControllerBuilder, Reconciler, WatchedKind};
