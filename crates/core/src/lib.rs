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
//! use vertice_core::{Applied, Context, ControllerBuilder, Operator, PrimaryStoreExt, Reconciler};
//! use vertice_core::error::{ErrorClass, ReconcileError};
//! use vertice_core::k8s_openapi::api::{batch::v1::Job, core::v1::Secret};
//! use vertice_core::k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
//! use vertice_core::kube::{CustomResource, ResourceExt, runtime::watcher::Config};
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
//!     let (wake_backups, wake) = vertice_core::trigger::channel::<VerticeBackup>();
//!     operator
//!         .controller(
//!             ControllerBuilder::new(Backups)
//!                 .finalizer("backup.vertice.dev/cleanup")
//!                 // Only the Jobs this operator labelled, not every Job of the cluster.
//!                 .owns_with::<Job>(Config::default().labels("app.kubernetes.io/managed-by=vertice-backup"))
//!                 // A changed Secret reconciles every backup naming it (metadata only: no data
//!                 // in memory); `backups` is the controller's cache of VerticeBackups.
//!                 .watches_metadata_with_store::<Secret, _>(|secret, backups| {
//!                     backups.refs_where(|backup| backup.spec.schedule == secret.name_any())
//!                 })
//!                 // Per-object series, gone with the object: vertice_backup_schedule_info{…} 1.
//!                 .cache_gauge("schedule_info", "The schedule of each backup", |backup| {
//!                     let labels = vec![
//!                         ("namespace", backup.namespace().unwrap_or_default()),
//!                         ("backup", backup.name_any()),
//!                     ];
//!                     vec![(labels, 1.0)]
//!                 })
//!                 // `wake_backups.reconcile_object(&backup)` from any task reconciles it.
//!                 .reconcile_on(wake),
//!         )
//!         .run()
//!         .await?;
//!     # drop(wake_backups);
//!     Ok(())
//! }
//! ```
//!
//! # Beyond one reconcile
//!
//! - **The controller's cache** ([`PrimaryStore`]): created with the builder
//!   ([`ControllerBuilder::store`], or [`ControllerBuilder::new_with_store`] to hand it to the
//!   reconciler), read by mappers ([`watches_with_store`](ControllerBuilder::watches_with_store),
//!   [`watches_metadata_with_store`](ControllerBuilder::watches_metadata_with_store)) through
//!   [`PrimaryStoreExt`].
//! - **Narrow watches of children**: [`owns_with`](ControllerBuilder::owns_with) (a label
//!   selector), [`owns_metadata`](ControllerBuilder::owns_metadata).
//! - **Waking a reconcile from outside the watches**: [`trigger::channel`] and
//!   [`ControllerBuilder::reconcile_on`].
//! - **Background work per object** ([`tasks::ObjectTasks`]): at most one task per object, its
//!   end reconciles the object, which then takes the result; cancelled through
//!   [`Context::stop_token`] on shutdown or lost leadership, and awaited before the Lease is
//!   released.
//! - **Time**: [`Context::now`] reads the operator's [`clock::Clock`] ([`Operator::clock`]; tests
//!   use [`clock::ManualClock`]); conditions' `lastTransitionTime` is stamped with it.
//! - **Per-object gauges** computed from the cache at scrape time:
//!   [`ControllerBuilder::cache_gauge`].
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
//! [`admin`], [`leader`], [`shutdown`], [`telemetry`], [`context`], [`cli`], [`clock`],
//! [`trigger`], [`tasks`].

pub use k8s_openapi;
pub use kube;
pub use schemars;

pub mod admin;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod conditions;
pub mod context;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod freshness;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod process_metrics;
pub mod runner;
mod runtime;
pub mod schema;
pub mod shutdown;
pub mod status;
pub mod tasks;
pub mod telemetry;
pub mod tls;
pub mod trigger;

pub use context::Context;
pub use operator::{Operator, OperatorError};
pub use runner::{
    Applied, ControllerBuilder, PrimaryStore, PrimaryStoreExt, Reconciler, WatchedKind,
};
