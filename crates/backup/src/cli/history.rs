//! `vertice-backup history`: lists finished backup and restore runs from the history database
//! the operator fills (`--history-database-url`, issue 8 §4), newest first.

use std::fmt::Write as _;

use crate::error::BackupError;
use crate::history::read::{ListQuery, ListedRun, list};
use crate::history::{self, HistoryError, HistoryUrl};
use crate::source::{Engine, SourceError};

use super::output::{OutputFormat, Report};

/// How `history` prints its runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum HistoryOutput {
    /// Aligned columns for people.
    #[default]
    #[value(alias = "text")]
    Table,
    /// One JSON document: `{"runs": [{kind, uid, namespace, name, project, …}]}`.
    Json,
}

impl From<HistoryOutput> for OutputFormat {
    fn from(output: HistoryOutput) -> Self {
        match output {
            HistoryOutput::Table => OutputFormat::Text,
            HistoryOutput::Json => OutputFormat::Json,
        }
    }
}

/// `vertice-backup history` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct HistoryArgs {
    /// The history database's PostgreSQL URL. Prefer the environment variable: a flag's value
    /// is visible to other users of the machine in the process list.
    #[arg(long, env = "VERTICE_HISTORY_DATABASE_URL", hide_env_values = true)]
    pub database_url: HistoryUrl,
    /// Only runs of this project (label `vertice.dev/project`, default the run's namespace).
    #[arg(long)]
    pub project: Option<String>,
    /// At most this many runs, newest first.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub limit: i64,
    /// `table` (default) or `json`.
    #[arg(long, value_enum, default_value_t = HistoryOutput::Table)]
    pub output: HistoryOutput,
}

/// Lists the runs. Errors: invalid configuration (exit 3) for a database without the history
/// schema; database failed (exit 4) when it cannot be reached or read.
pub async fn history(args: HistoryArgs) -> Result<Report, BackupError> {
    let client = history::connect(&args.database_url)
        .await
        .map_err(into_backup_error)?;
    let query = ListQuery {
        project: args.project.clone(),
        limit: args.limit,
    };
    let runs = list(&client, &args.database_url, &query)
        .await
        .map_err(into_backup_error)?;
    let text = table(&runs);
    Report::new(&serde_json::json!({ "runs": runs }), text)
}

fn into_backup_error(error: HistoryError) -> BackupError {
    match error {
        HistoryError::InvalidUrl
        | HistoryError::NotMigrated
        | HistoryError::MigrationChanged { .. } => BackupError::Config(error.to_string()),
        HistoryError::Connect(message) | HistoryError::Query(message) => {
            BackupError::Source(SourceError::Connect {
                engine: Engine::Postgres,
                message: format!("history database: {message}"),
            })
        }
    }
}

/// The runs as aligned columns with a header; "no runs recorded" when there are none.
pub fn table(runs: &[ListedRun]) -> String {
    if runs.is_empty() {
        return "no runs recorded".to_owned();
    }
    let header = [
        "KIND",
        "PROJECT",
        "ENV",
        "NAMESPACE",
        "NAME",
        "PHASE",
        "BACKUP",
        "BYTES",
        "DURATION",
        "COMPLETED",
        "ERROR",
    ];
    let rows: Vec<[String; 11]> = runs
        .iter()
        .map(|run| {
            [
                run.kind.clone(),
                run.project.clone(),
                dash(&run.environment),
                run.namespace.clone(),
                run.name.clone(),
                run.phase.clone(),
                run.backup_name.clone().unwrap_or_else(|| "-".into()),
                run.bytes.map_or_else(|| "-".into(), |b| b.to_string()),
                run.duration_seconds
                    .map_or_else(|| "-".into(), |s| format!("{s:.1}s")),
                run.completed_at.map_or_else(
                    || "-".into(),
                    |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                ),
                run.error_kind.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    out
}

fn dash(text: &str) -> String {
    if text.is_empty() {
        "-".into()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, environment: &str) -> ListedRun {
        ListedRun {
            kind: "backup".into(),
            uid: "u".into(),
            namespace: "shop".into(),
            name: name.into(),
            project: "web shop".into(),
            environment: environment.into(),
            phase: "Succeeded".into(),
            backup_name: Some("b1".into()),
            bytes: Some(1234),
            error_kind: None,
            completed_at: None,
            duration_seconds: Some(2.25),
        }
    }

    #[test]
    fn columns_line_up_whatever_the_names() {
        let text = table(&[run("a", ""), run("ñandú-nightly-29000000", "production")]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let column = |line: &str| line.find("Succeeded").or_else(|| line.find("PHASE"));
        let at = column(lines[0]).unwrap();
        for line in &lines {
            let byte = column(line).unwrap();
            assert_eq!(
                line[..byte].chars().count(),
                lines[0][..at].chars().count(),
                "{text}"
            );
        }
        assert!(
            lines[1].contains(" - "),
            "empty environment shows as -: {text}"
        );
        assert_eq!(table(&[]), "no runs recorded");
    }
}
