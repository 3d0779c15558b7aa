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
use crate::drill::run_drill;
use crate::error::BackupError;
use crate::error::exit_code;
use crate::manifest::Manifest;
use crate::names::default_backup_name;
use crate::progress::{Progress, human_bytes, spawn_reporter};
use crate::rekey::rekey_manifest;
use crate::restore::VerifiedBackup;
use crate::retention::{BackupSummary, RetentionPolicy, plan};
use crate::source::mariadb::MariadbRestoreOptions;
use crate::source::postgres::PostgresRestoreOptions;
use crate::source::redis::RedisRestoreOptions;
use crate::source::{DatabaseSource, RestoreTarget};
use crate::store::BackupStore;
use crate::verify::OpenedBackup;

/// `backup`.
#[derive(Clone, Debug, clap::Args)]
pub struct BackupArgs {
    /// Store and output.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Backup name; default `<engine>-<UTC timestamp>`.
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
    /// PostgreSQL: do not restore ownership (when the dump's roles do not exist here).
    #[arg(long)]
    pub no_owner: bool,
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
    /// Only print what would be deleted, and why.
    #[arg(long)]
    pub dry_run: bool,
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
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| default_backup_name(&what, Utc::now()));
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

fn default_target_database(manifest: &Manifest) -> String {
    let base = manifest
        .databases
        .first()
        .map_or("restored", String::as_str);
    format!("{base}_restore_{}", Utc::now().format("%Y%m%d%H%M%S"))
}

/// The restore target for `source`'s engine from the flags.
fn restore_target(
    args: &RestoreArgs,
    source: &DatabaseSource,
    manifest: &Manifest,
) -> Result<RestoreTarget, BackupError> {
    Ok(match source {
        DatabaseSource::Postgres(_) => RestoreTarget::Postgres(PostgresRestoreOptions {
            database: args
                .target_database
                .clone()
                .unwrap_or_else(|| default_target_database(manifest)),
            overwrite: args.overwrite,
            no_owner: args.no_owner,
            no_privileges: args.no_owner,
        }),
        DatabaseSource::Mariadb(_) => RestoreTarget::Mariadb(MariadbRestoreOptions {
            database: match (&args.target_database, manifest.databases.len()) {
                (Some(database), _) => Some(database.clone()),
                (None, 1) => Some(default_target_database(manifest)),
                (None, _) => None,
            },
            dumped_databases: manifest.databases.clone(),
            overwrite: args.overwrite,
        }),
        DatabaseSource::Redis(_) => RestoreTarget::Redis(RedisRestoreOptions {
            data_dir: args.target_data_dir.clone().ok_or_else(|| {
                BackupError::Config("a Redis restore needs --target-data-dir".into())
            })?,
            dbfilename: "dump.rdb".into(),
            overwrite: args.overwrite,
            bin_dir: args.source.bin_dir.clone(),
        }),
    })
}

/// Restores a backup.
pub async fn restore(args: RestoreArgs) -> Result<Report, BackupError> {
    let store = BackupStore::open(&args.common.store)?;
    let source = args.source.config()?.map(DatabaseSource::new);
    if source.is_none() && args.to_file.is_none() {
        return Err(BackupError::Config(
            "name the target server (--engine …, or --source-spec) or --to-file".into(),
        ));
    }
    let progress = Progress::new();
    let verified = verified(&store, &args.name, &args.keys, args.parallelism, &progress).await?;
    let stop = CancellationToken::new();
    let reporter = spawn_reporter("restore", progress.clone(), stop.clone());
    let outcome = async {
        match (&source, &args.to_file) {
            (Some(source), _) => {
                if let Some(info) = &verified.manifest().source
                    && info.engine != source.engine()
                {
                    return Err(BackupError::Config(format!(
                        "backup {} holds a {:?} dump, not {:?}",
                        args.name,
                        info.engine,
                        source.engine()
                    )));
                }
                let target = restore_target(&args, source, verified.manifest())?;
                let stream = source.restore(&target).await?;
                let report = verified.restore_into(stream, &progress).await?;
                let text = format!(
                    "restored {} ({}) into {}: verified in {:.1} s, restored in {:.1} s",
                    report.name,
                    human_bytes(report.raw_size),
                    describe_target(&target),
                    report.verify_seconds,
                    report.restore_seconds
                );
                let mut json = serde_json::to_value(&report)
                    .map_err(|error| BackupError::Internal(error.to_string()))?;
                json["target"] = serde_json::to_value(&target)
                    .map_err(|error| BackupError::Internal(error.to_string()))?;
                Ok(Report {
                    json,
                    text,
                    exit_code: 0,
                })
            }
            (None, Some(path)) => {
                let (raw_size, duration) = if path.as_os_str() == "-" {
                    verified
                        .write_to(&mut tokio::io::stdout(), &progress)
                        .await?
                } else {
                    if path.exists() && !args.overwrite {
                        return Err(BackupError::Source(
                            crate::source::SourceError::TargetExists {
                                target: path.display().to_string(),
                            },
                        ));
                    }
                    let mut file = tokio::fs::File::create(path).await?;
                    let written = verified.write_to(&mut file, &progress).await;
                    if written.is_err() {
                        drop(file);
                        let _ = tokio::fs::remove_file(path).await;
                    }
                    written?
                };
                let json = serde_json::json!({
                    "name": args.name, "rawSize": raw_size, "target": path,
                    "verifySeconds": verified.report().duration.as_secs_f64(),
                    "restoreSeconds": duration.as_secs_f64(),
                });
                let text = if path.as_os_str() == "-" {
                    String::new()
                } else {
                    format!(
                        "restored {} ({}) into {}",
                        args.name,
                        human_bytes(raw_size),
                        path.display()
                    )
                };
                Ok(Report {
                    json,
                    text,
                    exit_code: 0,
                })
            }
            (None, None) => Err(BackupError::Internal("no target".into())),
        }
    }
    .await;
    stop.cancel();
    if let Some(reporter) = reporter {
        let _ = reporter.await;
    }
    outcome
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
    let verified = verified(&store, &args.name, &args.keys, args.parallelism, &progress).await?;
    let report = run_drill(&verified, &server, &progress).await?;
    let passed = report.differences.is_empty();
    if passed && !args.no_record {
        let record = serde_json::json!({"kind": "drill", "at": Utc::now(), "result": &report});
        store.write_verification(&args.name, &record).await?;
    }
    let mut text = format!(
        "drill of {}: restored {} into {} in {:.1} s (verified in {:.1} s); counts {}",
        args.name,
        human_bytes(report.restore.raw_size),
        report.scratch_target,
        report.restore.restore_seconds,
        report.restore.verify_seconds,
        if passed { "match" } else { "DIFFER" }
    );
    for difference in &report.differences {
        text.push_str(&format!("\n  {difference}"));
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

/// Applies (or, with `--dry-run`, prints) a retention policy.
pub async fn prune(args: PruneArgs) -> Result<Report, BackupError> {
    let store = BackupStore::open(&args.common.store)?;
    let policy = RetentionPolicy {
        keep_last: args.keep_last,
        keep_hourly: args.keep_hourly,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
        keep_monthly: args.keep_monthly,
        keep_yearly: args.keep_yearly,
        max_age: args.max_age_seconds.map(std::time::Duration::from_secs),
        min_keep: args.min_keep,
        require_verified: args.require_verified,
    };
    let mut backups = Vec::new();
    for name in store.list_backup_names().await? {
        // A manifest that cannot be read is never deleted by retention: a person looks first.
        let Ok(manifest) = store.read_manifest(&name).await else {
            continue;
        };
        backups.push(BackupSummary {
            verified: store.is_verified(&name).await?,
            name,
            end_time: manifest.finished_at,
            succeeded: true,
        });
    }
    let decided = plan(&backups, &policy, Utc::now());
    let mut text = String::new();
    for verdict in &decided.delete {
        let action = if args.dry_run {
            "would delete"
        } else {
            "deleting"
        };
        text.push_str(&format!(
            "{action} {}: {:?}\n",
            verdict.name, verdict.reasons
        ));
        if !args.dry_run {
            store.delete_backup(&verdict.name).await?;
        }
    }
    for verdict in &decided.keep {
        text.push_str(&format!("keep {}: {:?}\n", verdict.name, verdict.reasons));
    }
    let json = serde_json::json!({"dryRun": args.dry_run, "plan": decided});
    Ok(Report {
        json,
        text,
        exit_code: 0,
    })
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
