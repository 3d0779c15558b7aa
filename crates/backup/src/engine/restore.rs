//! The `restore` action: a backup into a new (or, when allowed, replaced) database, a Redis
//! data directory, a file or stdout. Every byte is checked before the target is committed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::spec::{EncryptionSpec, RestoreSpec, RunSpec};
use crate::backup::default_parallelism;
use crate::error::BackupError;
use crate::isolation::IsolationReport;
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::restore::{RestoreReport, VerifiedBackup, restore_backup};
use crate::source::{DatabaseSource, ObjectCounts, RestoreStream, RestoreTarget, SourceConfig};
use crate::store::BackupStore;
use crate::verify::OpenedBackup;

/// Where a restore writes.
#[derive(Clone, Debug)]
pub enum RestoreInto {
    /// A database server (the target database is named by [`RestoreSpec`]).
    Database(SourceConfig),
    /// A file, written staged: it appears whole or not at all.
    File(PathBuf),
    /// Stdout: nothing can be staged there, so a verify pass runs first and nothing is
    /// written unless it passed (two passes).
    Stdout,
}

/// One restore to run.
#[derive(Clone, Debug)]
pub struct RestoreRun {
    /// The backup to restore.
    pub name: String,
    /// Where it goes.
    pub into: RestoreInto,
    /// Target database or data directory, overwrite, ownership and privilege choices.
    pub target: RestoreSpec,
    /// Keys that may open the backup.
    pub encryption: EncryptionSpec,
    /// Chunks decoded at once; `None` is the number of CPUs.
    pub parallelism: Option<usize>,
}

impl RestoreRun {
    /// The restore a spec describes. Errors: `Config` when it names no backup or no server.
    pub fn from_spec(spec: &RunSpec) -> Result<Self, BackupError> {
        Ok(RestoreRun {
            name: spec_name(spec)?,
            into: RestoreInto::Database(spec.source.clone().ok_or_else(|| {
                BackupError::Config("a restore needs the target server (source)".into())
            })?),
            target: spec.restore.clone(),
            encryption: spec.encryption.clone(),
            parallelism: spec.parallelism,
        })
    }
}

/// The backup name a non-backup spec must carry.
pub(super) fn spec_name(spec: &RunSpec) -> Result<String, BackupError> {
    spec.name
        .clone()
        .ok_or_else(|| BackupError::Config("the spec needs a name for this action".into()))
}

/// A finished restore.
#[derive(Debug)]
pub struct RestoreOutcome {
    /// Sizes, chunks, passes and durations.
    pub report: RestoreReport,
    /// The committed target as JSON (`RestoreTarget`'s form, a path, or `"-"`).
    pub target: serde_json::Value,
    /// The target for people (`database "app_restored"`), empty for stdout.
    pub described: String,
    /// What the restored copy reaches outside itself; `None` when the target is not a
    /// database; `Some(Err(message))` when the check could not run (the restore is done by
    /// then, so that is a warning, not a failure).
    pub isolation: Option<Result<IsolationReport, String>>,
    /// The count comparison (with `verify`, for a database target).
    pub verification: Option<CountCheck>,
}

/// The restored target's row (key) counts compared with the manifest's.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CountCheck {
    /// Tables (or Redis key spaces) the manifest counted.
    pub objects_compared: usize,
    /// Each difference, for people (empty: every count matched).
    pub differences: Vec<String>,
}

/// Restores a backup. When `cancel` fires the tool is stopped and the staging target removed
/// (`Cancelled`); the target stays as it was. Progress bytes are raw bytes written.
///
/// Errors: `NotFound`, `WrongKey`/`Integrity`/`UnsupportedFormat` (the backup cannot be read
/// as it should: nothing is committed), `Config` (an engine mismatch, a bad target name),
/// `Source` (incl. `TargetExists` without overwrite), `Store`, `Cancelled`.
pub async fn restore(
    store: &BackupStore,
    run: &RestoreRun,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<RestoreOutcome, BackupError> {
    if let RestoreInto::Stdout = run.into {
        return tokio::select! {
            outcome = restore_to_stdout(store, run, progress) => outcome,
            () = cancel.cancelled() => Err(BackupError::Cancelled),
        };
    }
    let parallelism = run.parallelism.unwrap_or_else(default_parallelism);
    let opened =
        OpenedBackup::open(store, &run.name, &run.encryption.key_ring()?, parallelism).await?;
    progress.set_phase("restore");
    let (stream, target, described, database) = match &run.into {
        RestoreInto::Database(config) => {
            let source = DatabaseSource::new(config.clone());
            if let Some(info) = &opened.manifest().source
                && info.engine != source.engine()
            {
                return Err(BackupError::Config(format!(
                    "backup {} holds a {:?} dump, not {:?}",
                    run.name,
                    info.engine,
                    source.engine()
                )));
            }
            let target = source
                .as_engine()
                .restore_target(&run.target, opened.manifest())?;
            let stream = source.restore(&target).await?;
            let json = serde_json::to_value(&target)
                .map_err(|error| BackupError::Internal(error.to_string()))?;
            let described = target.describe();
            (stream, json, described, Some((source, target)))
        }
        RestoreInto::File(path) => {
            let (file, staged) =
                crate::source::staged_file::stage_file(path, run.target.overwrite, None).await?;
            let stream = RestoreStream {
                writer: Box::pin(file),
                completion: Box::pin(async { Ok(()) }),
                staged,
            };
            (
                stream,
                serde_json::json!(path),
                path.display().to_string(),
                None,
            )
        }
        RestoreInto::Stdout => return Err(BackupError::Internal("stdout handled above".into())),
    };
    let report = restore_backup(&opened, stream, progress, cancel)
        .await
        .map_err(|error| match error {
            // The hint's recovery commands name this backup.
            BackupError::Source(error) => BackupError::Source(error.for_backup(&run.name)),
            other => other,
        })?;
    let (isolation, verification) = match database {
        Some((source, target)) => {
            let isolation = source
                .isolation_report(&target, &opened.manifest().databases)
                .await
                .map_err(|error| error.to_string());
            let verification = if run.target.verify {
                Some(check_counts(&source, &target, opened.manifest()).await?)
            } else {
                None
            };
            (Some(isolation), verification)
        }
        None => (None, None),
    };
    Ok(RestoreOutcome {
        report,
        target,
        described,
        isolation,
        verification,
    })
}

/// Counts the committed target and compares with the manifest's counts. A manifest without
/// counts (an older or a file backup) compares nothing. Errors: the count queries' (`Source`).
async fn check_counts(
    source: &DatabaseSource,
    target: &RestoreTarget,
    manifest: &Manifest,
) -> Result<CountCheck, BackupError> {
    let Some(expected) = &manifest.counts else {
        return Ok(CountCheck {
            objects_compared: 0,
            differences: Vec::new(),
        });
    };
    let restored = source.count_restored(target, &manifest.databases).await?;
    Ok(CountCheck {
        objects_compared: objects_counted(expected),
        differences: crate::drill::compare_counts(expected, &restored),
    })
}

/// How many tables (or Redis key spaces) `counts` holds.
fn objects_counted(counts: &ObjectCounts) -> usize {
    match counts {
        ObjectCounts::Rows(schemas) => schemas.values().map(BTreeMap::len).sum(),
        ObjectCounts::Tables(tables) => tables.len(),
        ObjectCounts::Keys(_) | ObjectCounts::RedisKeys(_) => 1,
    }
}

/// Two passes to stdout: verify everything, then write (checking everything again).
async fn restore_to_stdout(
    store: &BackupStore,
    run: &RestoreRun,
    progress: &Arc<Progress>,
) -> Result<RestoreOutcome, BackupError> {
    let parallelism = run.parallelism.unwrap_or_else(default_parallelism);
    let opened =
        OpenedBackup::open(store, &run.name, &run.encryption.key_ring()?, parallelism).await?;
    progress.set_phase("verify");
    let verified = VerifiedBackup::verify(opened, progress).await?;
    progress.set_phase("restore");
    let (raw_size, duration) = verified
        .write_to(&mut tokio::io::stdout(), progress)
        .await?;
    Ok(RestoreOutcome {
        report: RestoreReport {
            name: run.name.clone(),
            raw_size,
            chunks: verified.report().chunks,
            objects: verified.report().objects,
            passes: 2,
            verify_seconds: verified.report().duration.as_secs_f64(),
            restore_seconds: duration.as_secs_f64(),
        },
        target: serde_json::json!("-"),
        described: String::new(),
        isolation: None,
        verification: None,
    })
}
