//! The subcommands' arguments and bodies: each opens the store, calls the engine, and returns a
//! [`Report`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::args::{CommonArgs, KeyArgs, PipelineArgs, SourceArgs, parse_labels};
use super::output::Report;
use crate::backup::{DumpInput, run_backup_measured};
use crate::drill::run_drill_until;
use crate::error::BackupError;
use crate::error::exit_code;
use crate::manifest::Manifest;
use crate::names::new_default_backup_name;
use crate::progress::{Progress, human_bytes, spawn_reporter};
use crate::prune::{DEFAULT_PARTIAL_GRACE, PruneOptions};
use crate::rekey::rekey_manifest;
use crate::restore::{VerifiedBackup, restore_backup};
use crate::retention::RetentionPolicy;
use crate::source::identifier::{check_database_name, generated_name};
use crate::source::mariadb::MariadbRestoreOptions;
use crate::source::postgres::PostgresRestoreOptions;
use crate::source::redis::RedisRestoreOptions;
use crate::source::{DatabaseProperties, DatabaseSource, Engine, RestoreTarget};
use crate::store::BackupStore;
use crate::verify::OpenedBackup;

/// `backup`.
#[derive(Clone, Debug, clap::Args)]
pub struct BackupArgs {
    /// Store and output.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Backup name: 1–200 characters of A–Z a–z 0–9 . _ - (not starting with . or -, and not
    /// manifest.json, reservation.json, verification.json or data-NNNNNN.vbk); the backup is
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
    /// Compression and parallelism.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Encryption key.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Labels recorded in the manifest, `key=value` (repeat).
    #[arg(long = "label")]
    pub labels: Vec<String>,
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
    /// Keys that may open the backup.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Chunks decoded at once.
    #[arg(long)]
    pub parallelism: Option<usize>,
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

/// What `backup` reports.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BackupResult<'a> {
    name: &'a str,
    store: &'a str,
    raw_size: u64,
    stored_size: u64,
    chunks: usize,
    objects: usize,
    seconds: f64,
    raw_mb_per_second: f64,
    key_id: Option<&'a str>,
    counts: &'a Option<crate::source::ObjectCounts>,
}

/// Runs a backup from parsed arguments (also used by the runner).
pub async fn backup(args: BackupArgs) -> Result<Report, BackupError> {
    let store = BackupStore::open(&args.common.store)?;
    let key = args.keys.writing_key()?;
    let labels = parse_labels(&args.labels)?;
    let source = args.source.config()?.map(DatabaseSource::new);
    let what = match (&source, &args.from_file) {
        (Some(source), _) => format!("{:?}", source.engine()).to_lowercase(),
        (None, Some(_)) => "file".to_string(),
        (None, None) => {
            return Err(BackupError::Config(
                "name a database (--engine …, or --source-spec) or --from-file".into(),
            ));
        }
    };
    let name = match &args.name {
        Some(name) => name.clone(),
        None => new_default_backup_name(&what)?,
    };
    let options = args.pipeline.options(&name, key, labels)?;
    if store.exists(&name).await? {
        return Err(BackupError::AlreadyExists(name));
    }
    let input = match (&source, &args.from_file) {
        (Some(source), _) => DumpInput::from_started(source.dump().await?),
        (None, Some(path)) if path.as_os_str() == "-" => DumpInput::plain(tokio::io::stdin()),
        (None, Some(path)) => {
            DumpInput::plain(tokio::fs::File::open(path).await.map_err(|error| {
                BackupError::Config(format!("cannot open {}: {error}", path.display()))
            })?)
        }
        (None, None) => return Err(BackupError::Internal("no input".into())),
    };
    let progress = Progress::new();
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let stop = CancellationToken::new();
    let reporter = spawn_reporter("backup", progress.clone(), stop.clone());
    let started = Instant::now();
    let outcome = run_backup_measured(&store, &options, input, progress, cancel).await;
    stop.cancel();
    if let Some(reporter) = reporter {
        let _ = reporter.await;
    }
    let outcome = outcome?;
    let seconds = started.elapsed().as_secs_f64();
    let mut report = backup_report(&store, &outcome.manifest, seconds)?;
    // CPU seconds per pipeline stage: what `cargo xtask bench backup` prints as shares.
    if let serde_json::Value::Object(fields) = &mut report.json {
        let cpu = serde_json::to_value(&outcome.cpu)
            .map_err(|error| BackupError::Internal(format!("cannot serialize: {error}")))?;
        fields.insert("stageCpu".into(), cpu);
    }
    Ok(report)
}

/// The report of a finished backup.
pub fn backup_report(
    store: &BackupStore,
    manifest: &Manifest,
    seconds: f64,
) -> Result<Report, BackupError> {
    let result = BackupResult {
        name: &manifest.name,
        store: store.description(),
        raw_size: manifest.raw_size,
        stored_size: manifest.stored_size,
        chunks: manifest.chunks.len(),
        objects: manifest.objects.len(),
        seconds,
        raw_mb_per_second: manifest.raw_size as f64 / seconds.max(0.001) / 1e6,
        key_id: manifest.encryption.as_ref().map(|key| key.key_id.as_str()),
        counts: &manifest.counts,
    };
    let text = format!(
        "backup {} complete: {} raw, {} stored, {:.1} s ({:.1} MB/s) in {}",
        manifest.name,
        human_bytes(manifest.raw_size),
        human_bytes(manifest.stored_size),
        seconds,
        result.raw_mb_per_second,
        store.description()
    );
    Report::new(&result, text)
}

async fn verified(
    store: &BackupStore,
    name: &str,
    keys: &KeyArgs,
    parallelism: Option<usize>,
    progress: &Arc<Progress>,
) -> Result<VerifiedBackup, BackupError> {
    let parallelism = parallelism.unwrap_or_else(crate::backup::default_parallelism);
    let opened = OpenedBackup::open(store, name, &keys.key_ring()?, parallelism).await?;
    let stop = CancellationToken::new();
    let reporter = spawn_reporter("verify", progress.clone(), stop.clone());
    let verified = VerifiedBackup::verify(opened, progress).await;
    stop.cancel();
    if let Some(reporter) = reporter {
        let _ = reporter.await;
    }
    verified
}

/// `<dumped>_restore_<UTC timestamp>`, shortened (with a hash of the dumped name) to fit
/// `engine`'s database name limit.
fn default_target_database(manifest: &Manifest, engine: Engine) -> String {
    let base = manifest
        .databases
        .first()
        .map_or("restored", String::as_str);
    let suffix = format!("_restore_{}", Utc::now().format("%Y%m%d%H%M%S"));
    generated_name(engine, base, &suffix)
}

/// The restore target for `source`'s engine from the flags.
fn restore_target(
    args: &RestoreArgs,
    source: &DatabaseSource,
    manifest: &Manifest,
) -> Result<RestoreTarget, BackupError> {
    if let Some(database) = &args.target_database {
        check_database_name(source.engine(), database).map_err(BackupError::Config)?;
    }
    let properties = manifest.database_properties.as_ref();
    Ok(match source {
        DatabaseSource::Postgres(_) => RestoreTarget::Postgres(PostgresRestoreOptions {
            database: args
                .target_database
                .clone()
                .unwrap_or_else(|| default_target_database(manifest, Engine::Postgres)),
            overwrite: args.overwrite,
            no_owner: args.no_owner,
            no_privileges: args.no_privileges,
            properties: properties.and_then(DatabaseProperties::postgres).cloned(),
        }),
        DatabaseSource::Mariadb(_) => RestoreTarget::Mariadb(MariadbRestoreOptions {
            database: match (&args.target_database, manifest.databases.len()) {
                (Some(database), _) => Some(database.clone()),
                (None, 1) => Some(default_target_database(manifest, Engine::Mariadb)),
                (None, _) => None,
            },
            dumped_databases: manifest.databases.clone(),
            overwrite: args.overwrite,
            properties: properties.and_then(DatabaseProperties::mariadb).cloned(),
            keep_events_enabled: args.keep_events_enabled,
        }),
        DatabaseSource::Redis(_) => RestoreTarget::Redis(RedisRestoreOptions {
            data_dir: args.target_data_dir.clone().ok_or_else(|| {
                BackupError::Config("a Redis restore needs --target-data-dir".into())
            })?,
            dbfilename: "dump.rdb".into(),
            overwrite: args.overwrite,
            bin_dir: args.source.bin_dir.clone(),
            databases: crate::drill::redis_databases(manifest),
        }),
    })
}

/// Restores a backup: in one pass into a staged target (a database, a data directory, a
/// file), in two passes to stdout (see [`crate::restore`]).
pub async fn restore(args: RestoreArgs) -> Result<Report, BackupError> {
    let store = BackupStore::open(&args.common.store)?;
    let source = args.source.config()?.map(DatabaseSource::new);
    if source.is_none() && args.to_file.is_none() {
        return Err(BackupError::Config(
            "name the target server (--engine …, or --source-spec) or --to-file".into(),
        ));
    }
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let progress = Progress::new();
    if args.to_file.as_deref() == Some(std::path::Path::new("-")) {
        return tokio::select! {
            report = restore_to_stdout(&store, &args, &progress) => report,
            () = cancel.cancelled() => Err(BackupError::Cancelled),
        };
    }
    let parallelism = args
        .parallelism
        .unwrap_or_else(crate::backup::default_parallelism);
    let opened =
        OpenedBackup::open(&store, &args.name, &args.keys.key_ring()?, parallelism).await?;
    let stop = CancellationToken::new();
    let reporter = spawn_reporter("restore", progress.clone(), stop.clone());
    let outcome = async {
        let (stream, target_json, described, database) = match (&source, &args.to_file) {
            (Some(source), _) => {
                if let Some(info) = &opened.manifest().source
                    && info.engine != source.engine()
                {
                    return Err(BackupError::Config(format!(
                        "backup {} holds a {:?} dump, not {:?}",
                        args.name,
                        info.engine,
                        source.engine()
                    )));
                }
                let target = restore_target(&args, source, opened.manifest())?;
                let stream = source.restore(&target).await?;
                let json = serde_json::to_value(&target)
                    .map_err(|error| BackupError::Internal(error.to_string()))?;
                let described = describe_target(&target);
                (stream, json, described, Some((source, target)))
            }
            (None, Some(path)) => {
                let (file, staged) =
                    crate::source::staged_file::stage_file(path, args.overwrite, None).await?;
                let stream = crate::source::RestoreStream {
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
            (None, None) => return Err(BackupError::Internal("no target".into())),
        };
        let report = restore_backup(&opened, stream, &progress, &cancel)
            .await
            .map_err(|error| match error {
                // The hint's recovery commands name this backup.
                BackupError::Source(error) => BackupError::Source(error.for_backup(&args.name)),
                other => other,
            })?;
        let text = format!(
            "restored {} ({}) into {}: {} checked while restoring, {:.1} s",
            report.name,
            human_bytes(report.raw_size),
            described,
            counted(report.chunks, "chunk"),
            report.restore_seconds
        );
        let mut text = text;
        let mut json = serde_json::to_value(&report)
            .map_err(|error| BackupError::Internal(error.to_string()))?;
        json["target"] = target_json;
        if let Some((source, target)) = database {
            report_isolation(source, &target, opened.manifest(), &mut text, &mut json).await?;
        }
        Ok(Report {
            json,
            text,
            exit_code: 0,
        })
    }
    .await;
    stop.cancel();
    if let Some(reporter) = reporter {
        let _ = reporter.await;
    }
    outcome
}

/// Adds what the restored copy reaches outside itself (see [`crate::isolation`]) to a restore's
/// report. The restore is done by then: a check that cannot run is a warning, not a failure.
async fn report_isolation(
    source: &DatabaseSource,
    target: &RestoreTarget,
    manifest: &Manifest,
    text: &mut String,
    json: &mut serde_json::Value,
) -> Result<(), BackupError> {
    match source.isolation_report(target, &manifest.databases).await {
        Ok(isolation) => {
            for line in isolation.text_lines() {
                text.push_str(&format!("\n{line}"));
            }
            json["isolated"] = isolation.isolated().into();
            json["isolation"] = serde_json::to_value(&isolation)
                .map_err(|error| BackupError::Internal(error.to_string()))?;
        }
        Err(error) => {
            text.push_str(&format!(
                "\nwarning: could not check what the copy reaches outside itself: {error}"
            ));
            json["isolated"] = serde_json::Value::Null;
            json["isolationError"] = error.to_string().into();
        }
    }
    Ok(())
}

/// `restore --to-file -`: nothing can be staged on stdout, so a verify pass runs first and
/// nothing is written unless it passed; the write pass checks everything again.
async fn restore_to_stdout(
    store: &BackupStore,
    args: &RestoreArgs,
    progress: &Arc<Progress>,
) -> Result<Report, BackupError> {
    let verified = verified(store, &args.name, &args.keys, args.parallelism, progress).await?;
    let stop = CancellationToken::new();
    let reporter = spawn_reporter("restore", progress.clone(), stop.clone());
    let written = verified.write_to(&mut tokio::io::stdout(), progress).await;
    stop.cancel();
    if let Some(reporter) = reporter {
        let _ = reporter.await;
    }
    let (raw_size, duration) = written?;
    let json = serde_json::json!({
        "name": args.name, "rawSize": raw_size, "target": "-",
        "chunks": verified.report().chunks, "objects": verified.report().objects,
        "passes": 2,
        "verifySeconds": verified.report().duration.as_secs_f64(),
        "restoreSeconds": duration.as_secs_f64(),
    });
    Ok(Report {
        json,
        text: String::new(),
        exit_code: 0,
    })
}

fn describe_target(target: &RestoreTarget) -> String {
    match target {
        RestoreTarget::Postgres(options) => format!("database {:?}", options.database),
        RestoreTarget::Mariadb(options) => match &options.database {
            Some(database) => format!("database {database:?}"),
            None => format!("databases {:?}", options.dumped_databases),
        },
        RestoreTarget::Redis(options) => format!("{}", options.data_dir.display()),
    }
}

/// Verifies a backup.
pub async fn verify(args: VerifyArgs) -> Result<Report, BackupError> {
    let store = BackupStore::open(&args.common.store)?;
    let progress = Progress::new();
    let verified = verified(&store, &args.name, &args.keys, args.parallelism, &progress).await?;
    let report = verified.report().clone();
    if !args.no_record {
        let record = serde_json::json!({"kind": "verify", "at": Utc::now(), "result": &report});
        store.write_verification(&args.name, &record).await?;
    }
    let text = format!(
        "backup {} is intact: {} in {}, {} raw, checked in {:.1} s",
        report.name,
        counted(report.chunks, "chunk"),
        counted(report.objects, "data object"),
        human_bytes(report.raw_size),
        report.duration.as_secs_f64()
    );
    Report::new(&report, text)
}

/// Drills a backup.
pub async fn drill(args: DrillArgs) -> Result<Report, BackupError> {
    let store = BackupStore::open(&args.common.store)?;
    let server = args
        .source
        .config()?
        .map(DatabaseSource::new)
        .ok_or_else(|| BackupError::Config("a drill needs a server (--engine …)".into()))?;
    let progress = Progress::new();
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let parallelism = args
        .parallelism
        .unwrap_or_else(crate::backup::default_parallelism);
    let opened =
        OpenedBackup::open(&store, &args.name, &args.keys.key_ring()?, parallelism).await?;
    let report = run_drill_until(&opened, &server, &progress, &cancel).await?;
    let passed = report.passed();
    if passed && !args.no_record {
        let record = serde_json::json!({"kind": "drill", "at": Utc::now(), "result": &report});
        store.write_verification(&args.name, &record).await?;
    }
    let mut text = format!(
        "drill of {}: restored {} into {} in {:.1} s ({} checked while restoring); counts {}",
        args.name,
        human_bytes(report.restore.raw_size),
        report.scratch_target,
        report.restore.restore_seconds,
        counted(report.restore.chunks, "chunk"),
        if report.differences.is_empty() {
            "match"
        } else {
            "DIFFER"
        }
    );
    for difference in &report.differences {
        text.push_str(&format!("\n  {difference}"));
    }
    text.push_str(if report.isolated {
        "\nisolated: the copy reaches nothing outside itself"
    } else {
        "\nNOT ISOLATED: the copy reaches outside itself"
    });
    for problem in report.isolation.problems() {
        text.push_str(&format!("\n  {problem}"));
    }
    let mut out = Report::new(&report, text)?;
    if !passed {
        out.exit_code = exit_code::DRILL_MISMATCH;
    }
    Ok(out)
}

/// Lists backups.
pub async fn list(args: ListArgs) -> Result<Report, BackupError> {
    let store = BackupStore::open(&args.common.store)?;
    let mut listings = Vec::new();
    let mut text = String::new();
    for name in store.list_backup_names().await? {
        match store.read_manifest(&name).await {
            Ok(manifest) => {
                let listing = manifest.summary();
                text.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    listing.name,
                    listing.finished_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    listing
                        .engine
                        .map_or("-".to_string(), |engine| format!("{engine:?}")
                            .to_lowercase()),
                    human_bytes(listing.raw_size),
                    human_bytes(listing.stored_size)
                ));
                listings.push(
                    serde_json::to_value(listing)
                        .map_err(|error| BackupError::Internal(error.to_string()))?,
                );
            }
            Err(error) => {
                text.push_str(&format!("{name}\tUNREADABLE: {error}\n"));
                listings.push(serde_json::json!({"name": name, "error": error.to_string()}));
            }
        }
    }
    Report::new(&listings, text)
}

/// Applies (or, with `--dry-run`, prints) a retention policy, and reclaims what interrupted
/// runs left (see [`crate::prune`]).
pub async fn prune(args: PruneArgs) -> Result<Report, BackupError> {
    let store = BackupStore::open(&args.common.store)?;
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
    };
    let outcome = crate::prune::prune(&store, &options, Utc::now()).await?;
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

/// `1 chunk`, `2 chunks`.
fn counted(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn one_is_singular_and_everything_else_plural() {
        assert_eq!(counted(1, "chunk"), "1 chunk");
        assert_eq!(counted(0, "chunk"), "0 chunks");
        assert_eq!(counted(12, "data object"), "12 data objects");
    }
}
