//! The subcommands' arguments, and each subcommand as a thin adapter: flags → the engine's
//! typed options ([`crate::engine`]), open the store, run the action with a terminal progress
//! reporter and a signal-driven cancel, format the outcome ([`super::reports`]).

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::args::{CommonArgs, KeyArgs, ObjectsArgs, PipelineArgs, SourceArgs, parse_labels};
use super::output::Report;
pub use super::reports::backup_report;
use super::reports::{
    backup_outcome_report, drill_report, list_report, object_restore_report, restore_report,
    verify_report,
};
use super::snapshot_args::{SnapshotAccessArgs, SnapshotArgs};
use crate::engine::objects::ObjectRestoreRun;
use crate::engine::{
    self, BackupInput, BackupRun, DrillRun, LabelSelector, PruneOptions, RestoreInto, RestoreRun,
    RestoreSpec, VerifyRun,
};
use crate::error::BackupError;
use crate::progress::{Progress, spawn_reporter};
use crate::prune::DEFAULT_PARTIAL_GRACE;
use crate::rekey::rekey_manifest;
use crate::retention::RetentionPolicy;
use crate::store::BackupStore;

/// `backup`.
#[derive(Clone, Debug, clap::Args)]
pub struct BackupArgs {
    /// Store and output.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Backup name: 1–200 characters of A–Z a–z 0–9 . _ - (not starting with . or -, and not
    /// manifest.json, reservation.json, verification.json, objects-index.json or
    /// data-NNNNNN.vbk); the backup is
    /// the folder <prefix>/<name>/. Default `<engine>-<UTC time, ms>-<6 random hex digits>`,
    /// e.g. postgres-20260101T020000.123Z-3fa9c1. A name in use exits 8.
    #[arg(long)]
    pub name: Option<String>,
    /// The database.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Back up this file (`-` for stdin) instead of a database.
    #[arg(long, conflicts_with = "engine")]
    pub from_file: Option<PathBuf>,
    /// Or take an RDS snapshot instead of a dump.
    #[command(flatten)]
    pub snapshot: SnapshotArgs,
    /// Compression and parallelism.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Encryption key.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Labels recorded in the manifest, `key=value` (repeat).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Bucket folder to copy into the backup.
    #[command(flatten)]
    pub objects: ObjectsArgs,
}

/// `restore`.
#[derive(Clone, Debug, clap::Args)]
pub struct RestoreArgs {
    /// Store and output.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The backup to restore.
    #[arg(long)]
    pub name: String,
    /// The server to restore into (same flags as `backup`).
    #[command(flatten)]
    pub source: SourceArgs,
    /// Write the dump to this file (`-` for stdout) instead of a database.
    #[arg(long, conflicts_with = "engine")]
    pub to_file: Option<PathBuf>,
    /// PostgreSQL/MariaDB: the database to create; default `<dumped>_restore_<timestamp>`.
    #[arg(long)]
    pub target_database: Option<String>,
    /// Redis: the data directory of the server that will load the snapshot.
    #[arg(long)]
    pub target_data_dir: Option<PathBuf>,
    /// Replace the target if it exists (never the default).
    #[arg(long)]
    pub overwrite: bool,
    /// PostgreSQL: do not restore ownership; every object belongs to the restoring user
    /// (when the dump's owner roles do not exist here).
    #[arg(long)]
    pub no_owner: bool,
    /// PostgreSQL: do not restore privileges (GRANT/REVOKE), e.g. when they name roles that
    /// do not exist here. Independent of --no-owner.
    #[arg(long)]
    pub no_privileges: bool,
    /// MariaDB: keep the dump's events enabled. By default they arrive DISABLED, so the copy
    /// runs no scheduled SQL (an event that names its source database would write into it);
    /// enable them yourself once the copy may run them.
    #[arg(long)]
    pub keep_events_enabled: bool,
    /// After restoring into a database, compare its row (key) counts with those recorded at
    /// dump time; differences exit 9 (the restored target stays).
    #[arg(long)]
    pub verify: bool,
    /// Keys that may open the backup.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Chunks decoded at once (objects restored at once with --objects-to-spec).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Put the backup's copied bucket objects back into the bucket this JSON or YAML store
    /// config names (`{store: s3, bucket: …, endpoint: …, credentialsFile: …}`) instead of
    /// restoring a database.
    #[arg(long, conflicts_with_all = ["engine", "to_file", "source_spec"])]
    pub objects_to_spec: Option<PathBuf>,
    /// With --objects-to-spec: the folder to write under, any characters (default
    /// `restored/<backup name>`). Existing objects are never replaced unless --overwrite.
    #[arg(long, requires = "objects_to_spec")]
    pub objects_to_prefix: Option<String>,
}

/// `verify`.
#[derive(Clone, Debug, clap::Args)]
pub struct VerifyArgs {
    /// Store and output.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The backup to verify.
    #[arg(long)]
    pub name: String,
    /// Keys that may open the backup.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Chunks decoded at once.
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Do not record the successful verification in the store (retention reads it).
    #[arg(long)]
    pub no_record: bool,
}

/// `drill`.
#[derive(Clone, Debug, clap::Args)]
pub struct DrillArgs {
    /// Store and output.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The backup to drill.
    #[arg(long)]
    pub name: String,
    /// The (scratch) server to restore into.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Keys that may open the backup.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Chunks decoded at once.
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Do not record the successful drill in the store.
    #[arg(long)]
    pub no_record: bool,
}

/// `list`.
#[derive(Clone, Debug, clap::Args)]
pub struct ListArgs {
    /// Store and output.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Only backups whose manifest labels match: `key=value`, `key!=value`, `key` or `!key`,
    /// comma-separated or repeated (all must hold).
    #[arg(long = "selector")]
    pub selectors: Vec<String>,
}

/// `prune`.
#[derive(Clone, Debug, clap::Args)]
pub struct PruneArgs {
    /// Store and output.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Keep the n newest backups.
    #[arg(long)]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the n most recent hours.
    #[arg(long)]
    pub keep_hourly: Option<u32>,
    /// … days.
    #[arg(long)]
    pub keep_daily: Option<u32>,
    /// … ISO weeks.
    #[arg(long)]
    pub keep_weekly: Option<u32>,
    /// … months.
    #[arg(long)]
    pub keep_monthly: Option<u32>,
    /// … years.
    #[arg(long)]
    pub keep_yearly: Option<u32>,
    /// Delete backups older than this many seconds.
    #[arg(long)]
    pub max_age_seconds: Option<u64>,
    /// Never delete the n newest good backups.
    #[arg(long, default_value_t = 1)]
    pub min_keep: u32,
    /// "Good" also requires a passed verify/drill.
    #[arg(long)]
    pub require_verified: bool,
    /// Only print what would be deleted or reclaimed, and why.
    #[arg(long)]
    pub dry_run: bool,
    /// Folders without a manifest (left by a run that was killed) are reclaimed once their
    /// newest object is this many seconds old; younger ones may still be being written.
    #[arg(long, default_value_t = DEFAULT_PARTIAL_GRACE.as_secs())]
    pub partial_grace_seconds: u64,
    /// Apply the policy only to backups whose manifest labels match (`key=value`,
    /// `key!=value`, `key`, `!key`; comma-separated or repeated): others are neither counted
    /// nor deleted, so policies sharing a prefix never prune each other's backups.
    #[arg(long = "selector")]
    pub selectors: Vec<String>,
    /// Credentials for deleting the RDS snapshots of the backups it deletes.
    #[command(flatten)]
    pub snapshots: SnapshotAccessArgs,
}

/// `rekey`.
#[derive(Clone, Debug, clap::Args)]
pub struct RekeyArgs {
    /// Store and output.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The backup whose data key is re-wrapped.
    #[arg(long)]
    pub name: String,
    /// The key(s) that open it now.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// The new key-encryption key's file.
    #[arg(long)]
    pub new_key_file: PathBuf,
    /// The new key's id (default its fingerprint).
    #[arg(long)]
    pub new_key_id: Option<String>,
}

/// Cancels `token` on SIGINT or SIGTERM, so a run aborts its uploads cleanly.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
    });
}

/// Runs `action` with a progress sink that prints to the terminal (when stderr is one).
async fn with_reporter<T>(
    label: &'static str,
    action: impl std::future::Future<Output = T>,
    progress: &Arc<Progress>,
) -> T {
    let stop = CancellationToken::new();
    let reporter = spawn_reporter(label, progress.clone(), stop.clone());
    let outcome = action.await;
    stop.cancel();
    if let Some(reporter) = reporter {
        let _ = reporter.await;
    }
    outcome
}

/// Runs a backup from parsed arguments.
pub async fn backup(args: BackupArgs) -> Result<Report, BackupError> {
    let store = BackupStore::open(&args.common.store)?;
    // The key is checked before the source, as the README's error order has it.
    args.keys.writing_key()?;
    let labels = parse_labels(&args.labels)?;
    let objects = args.objects.config()?;
    let input = match (
        args.source.config()?,
        &args.from_file,
        args.snapshot.config()?,
        &objects,
    ) {
        (Some(config), _, None, _) => BackupInput::Database(config),
        (None, Some(path), None, _) => BackupInput::File(path.clone()),
        (None, None, Some(snapshot), _) => BackupInput::Snapshot(snapshot),
        (None, None, None, Some(_)) => BackupInput::Nothing,
        (None, None, None, None) => {
            return Err(BackupError::Config(
                "name a database (--engine …, or --source-spec), --from-file, --rds-snapshot \
                 or --objects-spec"
                    .into(),
            ));
        }
        (_, _, Some(_), _) => {
            return Err(BackupError::Config(
                "--rds-snapshot takes the place of the database: not with --engine, \
                 --source-spec or --from-file"
                    .into(),
            ));
        }
    };
    let run = BackupRun {
        name: args.name.clone(),
        input,
        pipeline: args.pipeline.settings(),
        encryption: args.keys.to_spec(),
        labels,
        objects,
    };
    let progress = Progress::new();
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let outcome = with_reporter(
        "backup",
        engine::backup(&store, &run, &progress, &cancel),
        &progress,
    )
    .await?;
    backup_outcome_report(&outcome)
}

/// Restores a backup: in one pass into a staged target (a database, a data directory, a
/// file), in two passes to stdout (see [`crate::engine::restore()`]).
pub async fn restore(args: RestoreArgs) -> Result<Report, BackupError> {
    let store = BackupStore::open(&args.common.store)?;
    if let Some(path) = &args.objects_to_spec {
        return restore_objects(&store, &args, path).await;
    }
    let into = match (args.source.config()?, &args.to_file) {
        (Some(config), _) => RestoreInto::Database(config),
        (None, Some(path)) if path.as_os_str() == "-" => RestoreInto::Stdout,
        (None, Some(path)) => RestoreInto::File(path.clone()),
        (None, None) => {
            return Err(BackupError::Config(
                "name the target server (--engine …, or --source-spec) or --to-file".into(),
            ));
        }
    };
    let run = RestoreRun {
        name: args.name.clone(),
        into,
        target: RestoreSpec {
            target_database: args.target_database.clone(),
            target_data_dir: args.target_data_dir.clone(),
            overwrite: args.overwrite,
            no_owner: args.no_owner,
            no_privileges: args.no_privileges,
            keep_events_enabled: args.keep_events_enabled,
            verify: args.verify,
        },
        encryption: args.keys.to_spec(),
        parallelism: args.parallelism,
    };
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let progress = Progress::new();
    let outcome = with_reporter(
        "restore",
        engine::restore(&store, &run, &progress, &cancel),
        &progress,
    )
    .await?;
    restore_report(&outcome)
}

/// Puts a backup's copied objects back into the bucket `target_spec` names.
async fn restore_objects(
    store: &BackupStore,
    args: &RestoreArgs,
    target_spec: &std::path::Path,
) -> Result<Report, BackupError> {
    let run = ObjectRestoreRun {
        name: args.name.clone(),
        target: super::args::read_store_spec(target_spec)?,
        prefix: args.objects_to_prefix.clone(),
        overwrite: args.overwrite,
        encryption: args.keys.to_spec(),
        parallelism: args.parallelism,
    };
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let progress = Progress::new();
    let outcome = with_reporter(
        "restore objects",
        engine::objects::restore_objects(store, &run, &progress, &cancel),
        &progress,
    )
    .await?;
    object_restore_report(&outcome)
}

/// Verifies a backup.
pub async fn verify(args: VerifyArgs) -> Result<Report, BackupError> {
    let store = BackupStore::open(&args.common.store)?;
    let run = VerifyRun {
        name: args.name.clone(),
        encryption: args.keys.to_spec(),
        parallelism: args.parallelism,
        record: !args.no_record,
    };
    let progress = Progress::new();
    // `verify` has never taken signals: an interrupted verify writes nothing to undo.
    let never = CancellationToken::new();
    let report = with_reporter(
        "verify",
        engine::verify(&store, &run, &progress, &never),
        &progress,
    )
    .await?;
    verify_report(&report)
}

/// Drills a backup.
pub async fn drill(args: DrillArgs) -> Result<Report, BackupError> {
    let store = BackupStore::open(&args.common.store)?;
    let server = args
        .source
        .config()?
        .ok_or_else(|| BackupError::Config("a drill needs a server (--engine …)".into()))?;
    let run = DrillRun {
        name: args.name.clone(),
        server,
        encryption: args.keys.to_spec(),
        parallelism: args.parallelism,
        record: !args.no_record,
    };
    let progress = Progress::new();
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let report = engine::drill(&store, &run, &progress, &cancel).await?;
    drill_report(&report)
}

/// Lists backups.
pub async fn list(args: ListArgs) -> Result<Report, BackupError> {
    let store = BackupStore::open(&args.common.store)?;
    let selector = LabelSelector::parse_all(&args.selectors)?;
    list_report(&engine::list(&store, &selector).await?)
}

/// Applies (or, with `--dry-run`, prints) a retention policy, and reclaims what interrupted
/// runs left (see [`crate::prune`]).
pub async fn prune(args: PruneArgs) -> Result<Report, BackupError> {
    let store = BackupStore::open(&args.common.store)?;
    let selector = LabelSelector::parse_all(&args.selectors)?;
    let options = PruneOptions {
        policy: RetentionPolicy {
            keep_last: args.keep_last,
            keep_hourly: args.keep_hourly,
            keep_daily: args.keep_daily,
            keep_weekly: args.keep_weekly,
            keep_monthly: args.keep_monthly,
            keep_yearly: args.keep_yearly,
            max_age: args.max_age_seconds.map(std::time::Duration::from_secs),
            min_keep: args.min_keep,
            require_verified: args.require_verified,
        },
        partial_grace: std::time::Duration::from_secs(args.partial_grace_seconds),
        dry_run: args.dry_run,
        snapshots: args.snapshots.access(),
    };
    let never = CancellationToken::new();
    let outcome = engine::prune(&store, &options, &selector, Utc::now(), &never).await?;
    let text = outcome.text();
    Report::new(&outcome, text)
}

/// Re-wraps a backup's data key with a new key; the data is not touched.
pub async fn rekey(args: RekeyArgs) -> Result<Report, BackupError> {
    let store = BackupStore::open(&args.common.store)?;
    let mut manifest = store.read_manifest(&args.name).await?;
    let new_key =
        crate::keys::KeyEncryptionKey::from_file(&args.new_key_file, args.new_key_id.clone())?;
    let wrapped = rekey_manifest(&mut manifest, &args.keys.key_ring()?, &new_key)?;
    store.write_manifest(&manifest).await?;
    let json = serde_json::json!({"name": args.name, "oldKeyId": wrapped.key_id, "newKeyId": new_key.id()});
    let text = format!(
        "backup {} now opens with key {} (was {})",
        args.name,
        new_key.id(),
        wrapped.key_id
    );
    Ok(Report {
        json,
        text,
        exit_code: 0,
    })
}
