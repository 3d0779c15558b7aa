//! Slack incoming webhooks: a POST of `{"text": …, "blocks": […]}` to the webhook URL
//! (api.slack.com/messaging/webhooks). `text` is the one-line summary Slack shows in
//! notifications and where blocks cannot be drawn; the blocks lay the facts out.

use serde_json::{Value, json};

use super::event::{RunEvent, RunOutcome};
use super::secrets::SecretUrl;

/// A Slack incoming webhook, resolved.
#[derive(Clone, Debug)]
pub struct SlackChannel {
    /// The webhook URL (`https://hooks.slack.com/services/…`): a credential.
    pub webhook_url: SecretUrl,
}

/// Slack's mrkdwn treats `&`, `<` and `>` as control characters (links, mentions): escaped so
/// a database or error message cannot ping `@channel` or forge a link.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The message for `event`: `text` (summary) plus a header, a section of fields, the error (if
/// any) and a context line with the time.
pub fn body(event: &RunEvent) -> Value {
    let icon = match event.outcome {
        RunOutcome::Succeeded => ":white_check_mark:",
        RunOutcome::Failed => ":x:",
        RunOutcome::Started => ":hourglass_flowing_sand:",
    };
    let summary = escape(&event.summary());
    let title = format!(
        "{} {}: {}",
        event.kind.title(),
        event.outcome.as_str(),
        event.object()
    );
    let fields: Vec<Value> = event
        .facts()
        .into_iter()
        .filter(|(label, _)| *label != "Time")
        // Slack allows at most 10 fields in a section.
        .take(10)
        .map(|(label, value)| json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", escape(&value))}))
        .collect();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": title, "emoji": true}}),
        json!({"type": "section", "fields": fields}),
    ];
    if let Some(error) = &event.error {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("*Error ({:?})*\n```{}```", error.kind, escape(&error.message))}
        }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": format!("vertice-backup · {}", event.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))}]
    }));
    json!({"text": format!("{icon} {summary}"), "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape("<!channel> a&b <http://x|y>"),
            "&lt;!channel&gt; a&amp;b &lt;http://x|y&gt;"
        );
    }
}
