//! PagerDuty Events API v2 (developer.pagerduty.com/docs/events-api-v2/trigger-events): a POST
//! of `{routing_key, event_action, dedup_key, payload{summary, source, severity,
//! custom_details}}` to `/v2/enqueue`.
//!
//! A failure `trigger`s an alert and a later success `resolve`s it: both carry the same
//! [`dedup_key`], one per VerticeBackup and run kind, so repeated failures fold into one
//! incident and the next success closes it. A success resolves whatever `on` says (an incident
//! opened by a failure must close); a resolve of a key with no open alert is a no-op for
//! PagerDuty.

use serde_json::{Value, json};

use super::event::{RunEvent, RunOutcome};
use crate::api::notify::{NotifyOn, PagerDutySeverity};
use crate::source::Secret;

/// PagerDuty's Events API v2 endpoint.
pub const DEFAULT_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A PagerDuty integration, resolved.
#[derive(Clone, Debug)]
pub struct PagerDutyChannel {
    /// The integration's routing key: a credential.
    pub routing_key: Secret,
    /// Severity of triggered alerts.
    pub severity: PagerDutySeverity,
}

/// `trigger` or `resolve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open (or add to) the alert.
    Trigger,
    /// Close it.
    Resolve,
}

impl Action {
    /// The `event_action` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Trigger => "trigger",
            Action::Resolve => "resolve",
        }
    }
}

/// What a channel with `on` sends for `outcome`: a failure triggers unless `on: success`; a
/// success always resolves; a started run sends nothing.
pub fn action(on: NotifyOn, outcome: RunOutcome) -> Option<Action> {
    match (outcome, on) {
        (RunOutcome::Failed, NotifyOn::Failure | NotifyOn::Always) => Some(Action::Trigger),
        (RunOutcome::Succeeded, _) => Some(Action::Resolve),
        _ => None,
    }
}

/// The stable key of the alert: `vertice-backup/<namespace>/<policy>/<kind>` for a run of a
/// VerticeBackup, `vertice-backup/<namespace>/<kind>/<name>` for a run without one (each
/// hand-made run is its own alert). Kinds are apart so a good backup does not close an alert
/// about a failed drill.
pub fn dedup_key(event: &RunEvent) -> String {
    match &event.policy {
        Some(policy) => format!(
            "vertice-backup/{}/{policy}/{}",
            event.namespace,
            event.kind.as_str()
        ),
        None => format!(
            "vertice-backup/{}/{}/{}",
            event.namespace,
            event.kind.as_str(),
            event.name
        ),
    }
}

fn severity(severity: PagerDutySeverity) -> &'static str {
    match severity {
        PagerDutySeverity::Critical => "critical",
        PagerDutySeverity::Error => "error",
        PagerDutySeverity::Warning => "warning",
        PagerDutySeverity::Info => "info",
    }
}

/// The event for `action`. A resolve needs only the key; it carries the payload too, which
/// PagerDuty ignores, so the body has one shape.
pub fn body(channel: &PagerDutyChannel, action: Action, event: &RunEvent) -> Value {
    let summary: String = event.summary().chars().take(1024).collect();
    json!({
        "routing_key": channel.routing_key.expose(),
        "event_action": action.as_str(),
        "dedup_key": dedup_key(event),
        "payload": {
            "summary": summary,
            "source": format!("vertice-backup/{}", event.object()),
            "severity": severity(channel.severity),
            "timestamp": event.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "component": event.policy.as_deref().unwrap_or(&event.name),
            "group": event.namespace,
            "class": event.kind.as_str(),
            "custom_details": event.to_json(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keys_are_per_policy_and_kind_or_per_object() {
        use crate::notify::event::RunKind;
        let mut event = RunEvent {
            kind: RunKind::Backup,
            namespace: "ns".into(),
            name: "run-1".into(),
            policy: Some("nightly".into()),
            outcome: RunOutcome::Failed,
            error: None,
            backup_name: None,
            raw_bytes: None,
            stored_bytes: None,
            duration: None,
            location: None,
            time: chrono::DateTime::UNIX_EPOCH,
        };
        assert_eq!(dedup_key(&event), "vertice-backup/ns/nightly/backup");
        // Another run of the same policy: the same alert.
        event.name = "run-2".into();
        assert_eq!(dedup_key(&event), "vertice-backup/ns/nightly/backup");
        event.kind = RunKind::Drill;
        assert_eq!(dedup_key(&event), "vertice-backup/ns/nightly/drill");
        event.policy = None;
        event.kind = RunKind::Restore;
        assert_eq!(dedup_key(&event), "vertice-backup/ns/restore/run-2");
    }

    #[test]
    fn failures_trigger_and_successes_resolve() {
        use NotifyOn::*;
        use RunOutcome::*;
        let cases = [
            (Failure, Failed, Some(Action::Trigger)),
            (Always, Failed, Some(Action::Trigger)),
            (Success, Failed, None),
            (Failure, Succeeded, Some(Action::Resolve)),
            (Always, Succeeded, Some(Action::Resolve)),
            (Success, Succeeded, Some(Action::Resolve)),
            (Always, Started, None),
        ];
        for (on, outcome, expected) in cases {
            assert_eq!(action(on, outcome), expected, "{on:?} {outcome:?}");
        }
    }
}
