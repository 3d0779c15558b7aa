//! Results on stdout (text or one JSON document) and errors on stderr, with the exit code.

use std::process::ExitCode;

use serde::Serialize;

use crate::error::BackupError;

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON document on stdout (errors too: `{"error": {…}}`).
    Json,
}

/// A command's result: JSON for machines, lines for people.
#[derive(Debug)]
pub struct Report {
    /// The machine-readable result.
    pub json: serde_json::Value,
    /// The same for people.
    pub text: String,
    /// Exit code when the command "succeeded" with a finding (a drill with differences).
    pub exit_code: u8,
}

impl Report {
    /// A report from a serializable value and its text.
    pub fn new(value: &impl Serialize, text: String) -> Result<Self, BackupError> {
        Ok(Report {
            json: serde_json::to_value(value)
                .map_err(|error| BackupError::Internal(format!("cannot serialize: {error}")))?,
            text,
            exit_code: 0,
        })
    }
}

/// Prints results and errors.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    format: OutputFormat,
}

impl Output {
    /// A printer for `format`.
    pub fn new(format: OutputFormat) -> Self {
        Output { format }
    }

    /// Prints a result; returns its exit code.
    pub fn success(&self, report: &Report) -> ExitCode {
        match self.format {
            OutputFormat::Json => println!("{}", report.json),
            OutputFormat::Text => {
                if !report.text.is_empty() {
                    println!("{}", report.text.trim_end());
                }
            }
        }
        ExitCode::from(report.exit_code)
    }

    /// Prints an error; returns its exit code.
    pub fn error(&self, error: &BackupError) -> ExitCode {
        match self.format {
            OutputFormat::Json => println!("{}", error_json(error)),
            OutputFormat::Text => eprintln!("error: {error}"),
        }
        ExitCode::from(error.exit_code())
    }
}

/// The JSON document of a failure, the same on stdout and in the runner's result file.
///
/// `{"error": {"kind": "Store", "message": …, "exitCode": 5, "storeKind": "Forbidden"}}`;
/// `storeKind` (see [`crate::store::StoreErrorKind`]) only for store errors, `snapshotKind`
/// (see [`crate::snapshot::SnapshotErrorKind`]) only for snapshot errors.
pub fn error_json(error: &BackupError) -> serde_json::Value {
    let mut json = serde_json::json!({
        "kind": error.kind(),
        "message": error.to_string(),
        "exitCode": error.exit_code(),
    });
    if let Some(kind) = error.store_kind() {
        json["storeKind"] = kind.as_str().into();
    }
    if let Some(kind) = error.snapshot_kind() {
        json["snapshotKind"] = kind.as_str().into();
    }
    serde_json::json!({ "error": json })
}
