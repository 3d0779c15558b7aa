//! `runner`: the entry point the operator's Kubernetes Job calls, with one run's spec
//! ([`RunSpec`], see [`crate::engine::spec`]) as a JSON or YAML file (`--spec`) or inline in
//! `VERTICE_BACKUP_SPEC`.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::commands::cancel_on_signal;
use super::output::{OutputFormat, Report, error_json};
use super::reports::run_report;
pub use crate::engine::spec::{Action, EncryptionSpec, RestoreSpec, RunSpec, parse_spec};
use crate::error::BackupError;
use crate::progress::Progress;

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

/// Runs a spec through the engine ([`crate::engine::run()`]), cancelled by SIGINT/SIGTERM.
/// `output` is accepted for the caller's symmetry; the report carries both forms.
pub async fn run_spec(spec: RunSpec, output: OutputFormat) -> Result<Report, BackupError> {
    let _ = output;
    let progress = Progress::new();
    let cancel = CancellationToken::new();
    cancel_on_signal(cancel.clone());
    let outcome = crate::engine::run(&spec, &progress, &cancel).await?;
    run_report(&outcome)
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
