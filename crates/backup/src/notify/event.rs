//! [`RunEvent`]: what happened in one run, as every channel and hook reports it.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::api::run::ErrorKind;

/// The version of the JSON body (`schemaVersion`); it changes only when a field changes meaning
/// or goes away (new optional fields keep it).
pub const SCHEMA_VERSION: u32 = 1;

/// Which kind of run an event describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// A backup (a BackupRequest).
    Backup,
    /// A restore (a RestoreRequest).
    Restore,
    /// A restore drill (verification of a policy's backups).
    Drill,
}

impl RunKind {
    /// `backup`, `restore` or `drill`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Backup => "backup",
            RunKind::Restore => "restore",
            RunKind::Drill => "drill",
        }
    }

    /// `Backup`, `Restore` or `Drill`, for titles.
    pub fn title(self) -> &'static str {
        match self {
            RunKind::Backup => "Backup",
            RunKind::Restore => "Restore",
            RunKind::Drill => "Restore drill",
        }
    }
}

/// Where a run is: `started` (pre hooks: nothing ran yet), `succeeded` or `failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    /// The run is about to start (the event pre hooks get). Notifications are never sent for it.
    Started,
    /// The run ended well.
    Succeeded,
    /// The run ended badly; [`RunEvent::error`] says why.
    Failed,
}

impl RunOutcome {
    /// `started`, `succeeded` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Started => "started",
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
        }
    }
}

/// Why a run failed. The message must already be free of secrets (the engine's messages are).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunError {
    /// The kind, as in the run's status (`DatabaseFailed`, `StorageFailed`, …).
    pub kind: ErrorKind,
    /// What went wrong, for people.
    pub message: String,
}

/// One run's result, as notifications and hooks describe it. Its JSON form (with
/// [`RunEvent::to_json`]) is the body of generic webhooks and hooks; the module doc lists its
/// fields. Sizes are bytes; `time` is when the event happened (the run's end, or its start for
/// pre hooks).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEvent {
    /// Backup, restore or drill.
    pub kind: RunKind,
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the BackupRequest or RestoreRequest (for a drill: the VerticeBackup).
    pub name: String,
    /// The VerticeBackup the run belongs to; `None` for a hand-made run without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// How it went.
    pub outcome: RunOutcome,
    /// Why it failed (only for `failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// The backup's name in the store (made, restored or drilled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_name: Option<String>,
    /// Bytes of the dump before compression and encryption.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_bytes: Option<u64>,
    /// Bytes stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<u64>,
    /// How long the run took, seconds.
    #[serde(
        rename = "durationSeconds",
        skip_serializing_if = "Option::is_none",
        serialize_with = "seconds"
    )]
    pub duration: Option<Duration>,
    /// Where the backup is, e.g. `s3://bucket/prefix/<name>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// When it happened (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
}

fn seconds<S: serde::Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(duration) => s.serialize_f64(duration.as_secs_f64()),
        None => s.serialize_none(),
    }
}

fn rfc3339<S: serde::Serializer>(value: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&value.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The body of webhooks: the event with its schema version.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    schema_version: u32,
    #[serde(flatten)]
    event: &'a RunEvent,
}

/// The body of hooks: the webhook body plus the hook's phase and name.
#[derive(Serialize)]
struct HookBody<'a> {
    #[serde(flatten)]
    body: Body<'a>,
    phase: &'a str,
    hook: &'a str,
}

impl RunEvent {
    /// The webhook body: `{"schemaVersion": 1, "kind": …, …}` (module doc).
    pub fn to_json(&self) -> serde_json::Value {
        let body = Body {
            schema_version: SCHEMA_VERSION,
            event: self,
        };
        // Serializing plain strings, numbers and enums cannot fail.
        serde_json::to_value(body).unwrap_or(serde_json::Value::Null)
    }

    /// The hook body: [`Self::to_json`] plus `"phase": "pre"|"post"` and `"hook": <name>`.
    pub fn to_hook_json(&self, phase: &str, hook: &str) -> serde_json::Value {
        let body = HookBody {
            body: Body {
                schema_version: SCHEMA_VERSION,
                event: self,
            },
            phase,
            hook,
        };
        serde_json::to_value(body).unwrap_or(serde_json::Value::Null)
    }

    /// `namespace/name`.
    pub fn object(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// A one-line summary, e.g. `Backup failed: team-a/nightly-29381 (policy nightly):
    /// DatabaseFailed: connection refused`.
    pub fn summary(&self) -> String {
        let mut summary = format!(
            "{} {}: {}",
            self.kind.title(),
            self.outcome.as_str(),
            self.object()
        );
        if let Some(policy) = &self.policy {
            summary.push_str(&format!(" (policy {policy})"));
        }
        if let Some(error) = &self.error {
            summary.push_str(&format!(": {:?}: {}", error.kind, error.message));
        }
        summary
    }

    /// The facts worth a line each, in display order: (label, value). Used by Slack and email.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut facts = vec![
            ("Kind", self.kind.as_str().to_owned()),
            ("Namespace", self.namespace.clone()),
            ("Name", self.name.clone()),
        ];
        if let Some(policy) = &self.policy {
            facts.push(("Policy", policy.clone()));
        }
        facts.push(("Outcome", self.outcome.as_str().to_owned()));
        if let Some(error) = &self.error {
            facts.push(("Error kind", format!("{:?}", error.kind)));
        }
        if let Some(backup) = &self.backup_name {
            facts.push(("Backup", backup.clone()));
        }
        if let Some(bytes) = self.raw_bytes {
            facts.push(("Raw size", human_bytes(bytes)));
        }
        if let Some(bytes) = self.stored_bytes {
            facts.push(("Stored size", human_bytes(bytes)));
        }
        if let Some(duration) = self.duration {
            facts.push(("Duration", format!("{:.1} s", duration.as_secs_f64())));
        }
        if let Some(location) = &self.location {
            facts.push(("Location", location.clone()));
        }
        facts.push(("Time", self.time.to_rfc3339_opts(SecondsFormat::Secs, true)));
        facts
    }
}

/// `1234567` → `1.2 MiB (1234567 bytes)`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64;
    let mut unit = "bytes";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit} ({bytes} bytes)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> RunEvent {
        RunEvent {
            kind: RunKind::Backup,
            namespace: "team-a".into(),
            name: "nightly-1".into(),
            policy: Some("nightly".into()),
            outcome: RunOutcome::Failed,
            error: Some(RunError {
                kind: ErrorKind::DatabaseFailed,
                message: "connection refused".into(),
            }),
            backup_name: None,
            raw_bytes: None,
            stored_bytes: Some(2048),
            duration: Some(Duration::from_millis(1500)),
            location: None,
            time: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
        }
    }

    #[test]
    fn the_json_body_has_stable_camel_case_fields_and_omits_unknowns() {
        let json = failed().to_json();
        assert_eq!(
            json,
            serde_json::json!({
                "schemaVersion": 1,
                "kind": "backup",
                "namespace": "team-a",
                "name": "nightly-1",
                "policy": "nightly",
                "outcome": "failed",
                "error": {"kind": "DatabaseFailed", "message": "connection refused"},
                "storedBytes": 2048,
                "durationSeconds": 1.5,
                "time": "2023-11-14T22:13:20Z",
            })
        );
        let hook = failed().to_hook_json("pre", "maintenance");
        assert_eq!(hook["phase"], "pre");
        assert_eq!(hook["hook"], "maintenance");
        assert_eq!(hook["schemaVersion"], 1);
        assert_eq!(hook["name"], "nightly-1");
    }

    #[test]
    fn summary_and_sizes_read_well() {
        assert_eq!(
            failed().summary(),
            "Backup failed: team-a/nightly-1 (policy nightly): DatabaseFailed: connection refused"
        );
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(1024), "1.0 KiB (1024 bytes)");
        assert_eq!(
            human_bytes(5 * 1024 * 1024 * 1024),
            "5.0 GiB (5368709120 bytes)"
        );
    }
}
