//! The engine's outcomes as the CLI prints them: one JSON document (`--output json`, and the
//! runner's result file) and lines for people. The JSON shapes are documented in the README.

use serde::Serialize;

use super::output::Report;
use crate::drill::DrillReport;
use crate::engine::objects::ObjectRestoreOutcome;
use crate::engine::{BackupReport, ListEntry, RestoreOutcome, RunOutcome};
use crate::error::{BackupError, exit_code};
use crate::manifest::Manifest;
use crate::progress::human_bytes;
use crate::store::BackupStore;
use crate::verify::VerifyReport;

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
    /// The run's RDS snapshot (ARN, engine, version, …), for a snapshot run.
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot: Option<&'a crate::snapshot::SnapshotRecord>,
}

/// The report of a finished backup in `store`.
pub fn backup_report(
    store: &BackupStore,
    manifest: &Manifest,
    seconds: f64,
) -> Result<Report, BackupError> {
    manifest_report(store.description(), manifest, seconds)
}

fn manifest_report(
    location: &str,
    manifest: &Manifest,
    seconds: f64,
) -> Result<Report, BackupError> {
    let result = BackupResult {
        name: &manifest.name,
        store: location,
        raw_size: manifest.raw_size,
        stored_size: manifest.stored_size,
        chunks: manifest.chunks.len(),
        objects: manifest.objects.len(),
        seconds,
        raw_mb_per_second: manifest.raw_size as f64 / seconds.max(0.001) / 1e6,
        key_id: manifest.encryption.as_ref().map(|key| key.key_id.as_str()),
        counts: &manifest.counts,
        snapshot: manifest.snapshot.as_ref(),
    };
    let mut text = format!(
        "backup {} complete: {} raw, {} stored, {:.1} s ({:.1} MB/s) in {}",
        manifest.name,
        human_bytes(manifest.raw_size),
        human_bytes(manifest.stored_size),
        seconds,
        result.raw_mb_per_second,
        location
    );
    if let Some(snapshot) = &manifest.snapshot {
        text.push_str(&format!(
            "\nsnapshot {} of {} ({} {}) is available: {}",
            snapshot.snapshot_id,
            snapshot.instance_id,
            snapshot.engine,
            snapshot.engine_version,
            snapshot.arn
        ));
    }
    Report::new(&result, text)
}

/// A finished backup with its CPU seconds per pipeline stage (`stageCpu`: what
/// `cargo xtask bench backup` prints as shares).
pub fn backup_outcome_report(outcome: &BackupReport) -> Result<Report, BackupError> {
    let mut report = manifest_report(&outcome.location, &outcome.manifest, outcome.seconds)?;
    if let serde_json::Value::Object(fields) = &mut report.json {
        let cpu = serde_json::to_value(&outcome.cpu)
            .map_err(|error| BackupError::Internal(format!("cannot serialize: {error}")))?;
        fields.insert("stageCpu".into(), cpu);
        if let Some(copy) = &outcome.manifest.bucket_copy {
            let copy = serde_json::to_value(copy)
                .map_err(|error| BackupError::Internal(format!("cannot serialize: {error}")))?;
            fields.insert("bucketCopy".into(), copy);
        }
    }
    if let Some(copy) = &outcome.manifest.bucket_copy {
        report.text.push_str(&format!(
            "\ncopied {}: {} ({}), {} copied, {} unchanged since an earlier backup",
            copy.source,
            counted(copy.object_count, "object"),
            human_bytes(copy.total_bytes),
            copy.copied,
            copy.skipped
        ));
    }
    Ok(report)
}

/// Objects put back from a backup into a bucket.
pub fn object_restore_report(outcome: &ObjectRestoreOutcome) -> Result<Report, BackupError> {
    let text = format!(
        "restored {} ({}) of backup {} under {:?}, each checked against its BLAKE3",
        counted(outcome.objects, "object"),
        human_bytes(outcome.bytes),
        outcome.name,
        outcome.prefix
    );
    Report::new(outcome, text)
}

/// A committed restore: the report, its target and (for a database) what the copy reaches
/// outside itself. A restore to stdout prints no text (stdout holds the dump).
pub fn restore_report(outcome: &RestoreOutcome) -> Result<Report, BackupError> {
    let report = &outcome.report;
    let mut json =
        serde_json::to_value(report).map_err(|error| BackupError::Internal(error.to_string()))?;
    json["target"] = outcome.target.clone();
    if outcome.target == serde_json::json!("-") {
        return Ok(Report {
            json,
            text: String::new(),
            exit_code: 0,
        });
    }
    let mut text = format!(
        "restored {} ({}) into {}: {} checked while restoring, {:.1} s",
        report.name,
        human_bytes(report.raw_size),
        outcome.described,
        counted(report.chunks, "chunk"),
        report.restore_seconds
    );
    match &outcome.isolation {
        None => {}
        Some(Ok(isolation)) => {
            for line in isolation.text_lines() {
                text.push_str(&format!("\n{line}"));
            }
            json["isolated"] = isolation.isolated().into();
            json["isolation"] = serde_json::to_value(isolation)
                .map_err(|error| BackupError::Internal(error.to_string()))?;
        }
        Some(Err(error)) => {
            text.push_str(&format!(
                "\nwarning: could not check what the copy reaches outside itself: {error}"
            ));
            json["isolated"] = serde_json::Value::Null;
            json["isolationError"] = error.as_str().into();
        }
    }
    let mut exit_code = 0;
    if let Some(check) = &outcome.verification {
        json["verification"] = serde_json::to_value(check)
            .map_err(|error| BackupError::Internal(error.to_string()))?;
        if check.differences.is_empty() {
            text.push_str(&format!(
                "\ncounts match the dump's ({})",
                counted(check.objects_compared as u64, "object")
            ));
        } else {
            text.push_str("\ncounts differ from the dump's:");
            for difference in &check.differences {
                text.push_str(&format!("\n  {difference}"));
            }
            exit_code = exit_code::DRILL_MISMATCH;
        }
    }
    Ok(Report {
        json,
        text,
        exit_code,
    })
}

/// A passed verification.
pub fn verify_report(report: &VerifyReport) -> Result<Report, BackupError> {
    let text = format!(
        "backup {} is intact: {} in {}, {} raw, checked in {:.1} s",
        report.name,
        counted(report.chunks, "chunk"),
        counted(report.objects, "data object"),
        human_bytes(report.raw_size),
        report.duration.as_secs_f64()
    );
    Report::new(report, text)
}

/// A drill; one that did not pass exits 9.
pub fn drill_report(report: &DrillReport) -> Result<Report, BackupError> {
    let mut text = format!(
        "drill of {}: restored {} into {} in {:.1} s ({} checked while restoring); counts {}",
        report.restore.name,
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
    let mut out = Report::new(report, text)?;
    if !report.passed() {
        out.exit_code = exit_code::DRILL_MISMATCH;
    }
    Ok(out)
}

/// The backups in a store, one line each; unreadable manifests are shown, not hidden.
pub fn list_report(entries: &[ListEntry]) -> Result<Report, BackupError> {
    let mut listings = Vec::new();
    let mut text = String::new();
    for entry in entries {
        match entry {
            ListEntry::Backup(listing) => {
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
            ListEntry::Unreadable { name, error } => {
                text.push_str(&format!("{name}\tUNREADABLE: {error}\n"));
                listings.push(serde_json::json!({"name": name, "error": error.to_string()}));
            }
        }
    }
    Report::new(&listings, text)
}

/// Any run's outcome (the runner's result).
pub fn run_report(outcome: &RunOutcome) -> Result<Report, BackupError> {
    match outcome {
        RunOutcome::Backup(outcome) => backup_outcome_report(outcome),
        RunOutcome::Restore(outcome) => restore_report(outcome),
        RunOutcome::Verify(report) => verify_report(report),
        RunOutcome::Drill(report) => drill_report(report),
    }
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
