//! One trait per database engine: everything the engine layer (backup, restore, drill) asks of
//! a database, so an engine is one module (`postgres`, `mariadb`, `redis`) implementing
//! [`DatabaseEngine`], and the rest of the crate calls the trait. Adding an engine means: its
//! module, its variant in the serialized enums ([`super::SourceConfig`],
//! [`super::RestoreTarget`], [`super::Engine`]) and the one `match` in
//! [`super::DatabaseSource::as_engine`].

use async_trait::async_trait;
use chrono::Utc;

use super::identifier::generated_name;
use super::{
    Engine, ObjectCounts, RestoreStream, RestoreTarget, SourceError, SourceInfo, StartedDump,
};
use crate::engine::RestoreSpec;
use crate::error::BackupError;
use crate::isolation::IsolationReport;
use crate::manifest::Manifest;

/// A database server of one engine: dump it, restore into it, count and inspect what a
/// restore produced. Passwords never appear on a command line or in an error.
#[async_trait]
pub trait DatabaseEngine: Send + Sync {
    /// Which engine.
    fn engine(&self) -> Engine;

    /// The server's and the client tools' versions (recorded in the manifest).
    async fn info(&self) -> Result<SourceInfo, SourceError>;

    /// Starts a streaming dump with its counts and database properties.
    async fn dump(&self) -> Result<StartedDump, SourceError>;

    /// The target a user's restore of `manifest`'s backup writes to, from `spec` (target
    /// database or data directory, overwrite, ownership). Errors: `Config` for a target name
    /// the engine cannot hold or a missing setting.
    fn restore_target(
        &self,
        spec: &RestoreSpec,
        manifest: &Manifest,
    ) -> Result<RestoreTarget, BackupError>;

    /// Starts a restore into `target` (staged: see [`super::staging`]). Errors: `Other` for a
    /// target of another engine.
    async fn restore(&self, target: &RestoreTarget) -> Result<RestoreStream, SourceError>;

    /// Counts of what a restore produced in `target`, keyed as the dump-time counts of a
    /// backup of `dumped_databases` are.
    async fn count_restored(
        &self,
        target: &RestoreTarget,
        dumped_databases: &[String],
    ) -> Result<ObjectCounts, SourceError>;

    /// What the restored copy in `target` reaches outside itself (see [`crate::isolation`]).
    async fn isolation_report(
        &self,
        target: &RestoreTarget,
        dumped_databases: &[String],
    ) -> Result<IsolationReport, SourceError>;

    /// A fresh scratch target for a drill of `manifest`'s backup; `suffix` makes it unique.
    /// Returns the target and, for targets on disk, the directory that holds it (removed with
    /// it). Errors: `Config` when the engine cannot drill such a backup on one server.
    fn scratch_target(
        &self,
        manifest: &Manifest,
        suffix: &str,
    ) -> Result<(RestoreTarget, Option<tempfile::TempDir>), BackupError>;

    /// Removes a drill's scratch target from the server (a directory goes with its TempDir).
    async fn remove_scratch(&self, target: &RestoreTarget) -> Result<(), BackupError>;
}

/// `<dumped>_restore_<UTC timestamp>`, shortened (with a hash of the dumped name) to fit
/// `engine`'s database name limit: a restore's default target database.
pub fn default_target_database(manifest: &Manifest, engine: Engine) -> String {
    let base = manifest
        .databases
        .first()
        .map_or("restored", String::as_str);
    let suffix = format!("_restore_{}", Utc::now().format("%Y%m%d%H%M%S"));
    generated_name(engine, base, &suffix)
}

/// A drill's scratch database name, `vertice_drill_<suffix>` within `engine`'s limit.
pub fn scratch_database(engine: Engine, suffix: &str) -> String {
    generated_name(engine, "vertice_drill", &format!("_{suffix}"))
}

/// The error for a target of another engine.
pub fn wrong_target(engine: Engine, target: &RestoreTarget) -> SourceError {
    SourceError::Other(format!(
        "a {engine:?} source cannot use a {} target",
        target.engine_name()
    ))
}
