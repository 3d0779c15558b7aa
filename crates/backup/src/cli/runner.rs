//! `runner`: the entry point the operator's Kubernetes Job calls, with one run's spec
//! ([`RunSpec`], see [`crate::engine::spec`]) as a JSON or YAML file (`--spec`) or inline in
//! `VERTICE_BACKUP_SPEC`.

use std::path::PathBuf;

use super::args::{CommonArgs, KeyArgs, PipelineArgs, SourceArgs};
use super::commands::{self, BackupArgs, DrillArgs, RestoreArgs, VerifyArgs};
use super::output::{OutputFormat, Report, error_json};
pub use crate::engine::spec::{Action, EncryptionSpec, RestoreSpec, RunSpec, parse_spec};
use crate::error::BackupError;
use crate::format::DEFAULT_CHUNK_SIZE;

/// `runner` arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct RunnerArgs {
    /// The spec file (JSON or YAML); default: the `VERTICE_BACKUP_SPEC` environment variable.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Also write the result JSON here (e.g. `/dev/termination-log`).
    #[arg(long)]
    pub result_file: Option<PathBuf>,
    /// Result format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    pub output: OutputFormat,
}

fn keys(spec: &EncryptionSpec) -> KeyArgs {
    let mut key_files: Vec<PathBuf> = spec.key_file.iter().cloned().collect();
    key_files.extend(spec.previous_key_files.iter().cloned());
    KeyArgs {
        key_files,
        key_env: spec.key_env.clone(),
        key_id: spec.key_id.clone(),
        no_encryption: spec.disabled,
    }
}

/// Runs a spec.
pub async fn run_spec(spec: RunSpec, output: OutputFormat) -> Result<Report, BackupError> {
    let common = CommonArgs {
        store: spec.storage.clone(),
        output,
    };
    let source = SourceArgs {
        resolved: spec.source.clone(),
        ..SourceArgs::default()
    };
    let name = || {
        spec.name
            .clone()
            .ok_or_else(|| BackupError::Config("the spec needs a name for this action".into()))
    };
    match spec.action {
        Action::Backup => {
            commands::backup(BackupArgs {
                common,
                name: spec.name.clone(),
                source,
                from_file: None,
                pipeline: PipelineArgs {
                    compression: spec.compression.clone(),
                    compression_level: spec.compression_level,
                    fixed_compression_level: spec.fixed_compression_level,
                    chunk_size: spec.chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE),
                    parallelism: spec.parallelism,
                    upload_concurrency: 4,
                    upload_part_size_mib: 8,
                },
                keys: keys(&spec.encryption),
                labels: spec
                    .labels
                    .iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect(),
            })
            .await
        }
        Action::Restore => {
            commands::restore(RestoreArgs {
                common,
                name: name()?,
                source,
                to_file: None,
                target_database: spec.restore.target_database.clone(),
                target_data_dir: spec.restore.target_data_dir.clone(),
                overwrite: spec.restore.overwrite,
                no_owner: spec.restore.no_owner,
                no_privileges: spec.restore.no_privileges,
                keep_events_enabled: spec.restore.keep_events_enabled,
                keys: keys(&spec.encryption),
                parallelism: spec.parallelism,
            })
            .await
        }
        Action::Verify => {
            commands::verify(VerifyArgs {
                common,
                name: name()?,
                keys: keys(&spec.encryption),
                parallelism: spec.parallelism,
                no_record: false,
            })
            .await
        }
        Action::Drill => {
            commands::drill(DrillArgs {
                common,
                name: name()?,
                source,
                keys: keys(&spec.encryption),
                parallelism: spec.parallelism,
                no_record: false,
            })
            .await
        }
    }
}

/// Reads and parses the spec, then runs it.
async fn read_and_run(args: &RunnerArgs) -> Result<Report, BackupError> {
    let text = match &args.spec {
        Some(path) => std::fs::read_to_string(path).map_err(|error| {
            BackupError::Config(format!("cannot read the spec {}: {error}", path.display()))
        })?,
        None => std::env::var("VERTICE_BACKUP_SPEC")
            .map_err(|_| BackupError::Config("give --spec or set VERTICE_BACKUP_SPEC".into()))?,
    };
    let spec = parse_spec(&text)?;
    run_spec(spec, args.output).await
}

/// `runner`: reads the spec, runs it, writes the result file — for a spec that does not parse
/// too, since that is the failure the operator most needs to show its user.
pub async fn run(args: RunnerArgs) -> Result<Report, BackupError> {
    let outcome = read_and_run(&args).await;
    if let Some(path) = &args.result_file {
        let json = match &outcome {
            Ok(report) => report.json.clone(),
            Err(error) => error_json(error),
        };
        // No tracing subscriber runs in the CLI, so say it on stderr where the Job's log is.
        if let Err(error) = std::fs::write(path, json.to_string()) {
            eprintln!(
                "warning: could not write the result file {}: {error}",
                path.display()
            );
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceConfig;

    #[test]
    fn specs_parse_and_reject_unknown_fields() {
        let spec = parse_spec(
            r#"
action: backup
source: {engine: postgres, host: db, user: backup, database: app, password: {file: /pw}}
storage: {store: s3, bucket: b, endpoint: "http://127.0.0.1:9000", prefix: team}
compressionLevel: 5
encryption: {keyFile: /k}
labels: {schedule: nightly}
"#,
        )
        .unwrap();
        assert_eq!(spec.action, Action::Backup);
        assert_eq!(spec.compression, "zstd");
        assert_eq!(spec.storage.bucket.as_deref(), Some("b"));
        assert!(matches!(spec.source, Some(SourceConfig::Postgres(_))));
        assert!(parse_spec("storage: {}\nbogus: 1").is_err());
        assert!(parse_spec("action: explode\nstorage: {}").is_err());
    }

    #[test]
    fn a_misspelt_source_field_is_an_error_for_every_engine() {
        // A typo such as `pasword` must not silently run the backup without a password.
        for (engine, required) in [
            ("postgres", "user: u, database: d"),
            ("mariadb", "user: u"),
            ("redis", "port: 6379"),
        ] {
            let good = format!(
                "storage: {{}}\nsource: {{engine: {engine}, host: db, {required}, password: {{env: PW}}}}"
            );
            if let Err(error) = parse_spec(&good) {
                panic!("{engine}: {good}: {error}");
            }
            let typo = good.replace("password", "pasword");
            let error = match parse_spec(&typo) {
                Ok(_) => panic!("{engine}: a misspelt field was accepted"),
                Err(error) => error.to_string(),
            };
            assert!(error.contains("pasword"), "{engine}: {error}");
        }
    }
}
