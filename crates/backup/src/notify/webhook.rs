//! Generic webhooks: a POST of the event's JSON ([`RunEvent::to_json`], schema in the module
//! doc) with `Content-Type: application/json` and the headers of a Secret.

use super::event::RunEvent;
use super::secrets::{SecretHeaders, SecretUrl};

/// A generic webhook, resolved.
#[derive(Clone, Debug)]
pub struct WebhookChannel {
    /// The URL (often with a token): a credential.
    pub url: SecretUrl,
    /// Headers from a Secret (e.g. `Authorization`).
    pub headers: SecretHeaders,
}

/// The body: the event's JSON.
pub fn body(event: &RunEvent) -> serde_json::Value {
    event.to_json()
}
