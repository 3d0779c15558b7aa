//! [`Notifier`]: sends a run's event to every channel that wants it, each on its own (one
//! channel's failure or slowness never holds up the others), and says per channel what
//! happened ([`NotificationOutcome`]).

use std::fmt;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Client, Method};

use super::channel::{Channel, ChannelKind, ChannelTarget};
use super::email;
use super::error::{ConfigError, DeliveryError};
use super::event::{RunEvent, RunOutcome};
use super::http::{HttpRequest, send_with_retries};
use super::pagerduty::{self, DEFAULT_EVENTS_URL};
use super::retry::RetryPolicy;
use super::secrets::SecretUrl;
use super::slack;
use super::webhook;
use crate::api::notify::NotifyOn;
use crate::source::Secret;

/// How the notifier sends: the operator's settings, not the user's.
#[derive(Clone, Debug)]
pub struct NotifierConfig {
    /// Limit of one attempt (connect, send, answer). Default 10 s.
    pub attempt_timeout: Duration,
    /// Retries of a channel.
    pub retry: RetryPolicy,
    /// The PagerDuty Events v2 URL; default [`DEFAULT_EVENTS_URL`] (tests and EU-region or
    /// proxied setups override it).
    pub pagerduty_events_url: String,
    /// PEM certificates trusted besides the system's roots, for HTTPS and SMTP TLS (a private
    /// CA of an internal relay or webhook receiver).
    pub extra_root_certificates: Vec<String>,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            pagerduty_events_url: DEFAULT_EVENTS_URL.to_owned(),
            extra_root_certificates: Vec::new(),
        }
    }
}

/// Why a channel sent nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Its `on` does not cover this outcome.
    NotWanted,
    /// The run has not ended ([`RunOutcome::Started`]).
    RunNotEnded,
}

/// What happened to one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryResult {
    /// Delivered (an HTTP 2xx, or the SMTP server accepted the message).
    Sent {
        /// Attempts it took (1 = first time).
        attempts: u32,
    },
    /// Not sent, on purpose.
    Skipped(SkipReason),
    /// Not delivered.
    Failed {
        /// Attempts made (0: misconfigured, nothing sent).
        attempts: u32,
        /// The last attempt's error.
        error: DeliveryError,
    },
}

/// The result for one channel, in the order the channels were given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationOutcome {
    /// The channel's name.
    pub channel: String,
    /// Its kind.
    pub kind: ChannelKind,
    /// What happened.
    pub result: DeliveryResult,
}

impl NotificationOutcome {
    /// Whether it failed (what `vertice_backup_notification_failures_total` counts).
    pub fn is_failure(&self) -> bool {
        matches!(self.result, DeliveryResult::Failed { .. })
    }
}

impl fmt::Display for NotificationOutcome {
    /// E.g. `notification ops (slack) failed after 4 attempts: https://hooks.slack.com answered
    /// HTTP 503`: safe for Events and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "notification {} ({}) ", self.channel, self.kind)?;
        match &self.result {
            DeliveryResult::Sent { attempts: 1 } => f.write_str("sent"),
            DeliveryResult::Sent { attempts } => write!(f, "sent after {attempts} attempts"),
            DeliveryResult::Skipped(SkipReason::NotWanted) => {
                f.write_str("skipped: its `on` does not cover this outcome")
            }
            DeliveryResult::Skipped(SkipReason::RunNotEnded) => {
                f.write_str("skipped: the run has not ended")
            }
            DeliveryResult::Failed { attempts: 0, error } => write!(f, "not sent: {error}"),
            DeliveryResult::Failed { attempts: 1, error } => write!(f, "failed: {error}"),
            DeliveryResult::Failed { attempts, error } => {
                write!(f, "failed after {attempts} attempts: {error}")
            }
        }
    }
}

/// Whether a channel with `on` is used for `outcome` (PagerDuty has its own rule:
/// [`pagerduty::action`]).
pub fn wants(on: NotifyOn, outcome: RunOutcome) -> bool {
    matches!(
        (on, outcome),
        (NotifyOn::Always, RunOutcome::Succeeded | RunOutcome::Failed)
            | (NotifyOn::Failure, RunOutcome::Failed)
            | (NotifyOn::Success, RunOutcome::Succeeded)
    )
}

/// Sends notifications and runs hooks. Cheap to clone (one shared HTTP connection pool).
#[derive(Clone, Debug)]
pub struct Notifier {
    pub(crate) client: Client,
    pub(crate) config: NotifierConfig,
    pagerduty_url: SecretUrl,
    smtp_roots: Vec<lettre::transport::smtp::client::Certificate>,
}

impl Notifier {
    /// A notifier with `config`. Installs the process's rustls provider (ring) if none is.
    /// Errors: an extra certificate that is not PEM, a PagerDuty URL that is not http(s).
    pub fn new(config: NotifierConfig) -> Result<Self, ConfigError> {
        vertice_core::tls::install_crypto_provider();
        let mut builder = Client::builder()
            .connect_timeout(config.attempt_timeout)
            // A redirect would be followed to wherever it points, and reqwest logs both URLs
            // (tokens included) at debug level: receivers of webhooks answer, they do not
            // redirect, so a 3xx is a failure like any non-2xx.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vertice-backup/", env!("CARGO_PKG_VERSION")));
        let mut smtp_roots = Vec::new();
        for pem in &config.extra_root_certificates {
            let certificate = reqwest::Certificate::from_pem(pem.as_bytes())
                .map_err(|_| ConfigError::InvalidCertificate)?;
            builder = builder.add_root_certificate(certificate);
            smtp_roots.push(
                lettre::transport::smtp::client::Certificate::from_pem(pem.as_bytes())
                    .map_err(|_| ConfigError::InvalidCertificate)?,
            );
        }
        let client = builder
            .build()
            .map_err(|error| ConfigError::Client(error.to_string()))?;
        let pagerduty_url = SecretUrl::parse(
            &Secret::new(config.pagerduty_events_url.clone()),
            "PagerDuty events URL",
        )?;
        Ok(Self {
            client,
            config,
            pagerduty_url,
            smtp_roots,
        })
    }

    /// Sends `event` to each of `channels` whose `on` covers it, all at once; returns one
    /// outcome per channel in the order given. Never fails as a whole: a channel's failure is
    /// its outcome. Each channel gets [`NotifierConfig::retry`] attempts of at most
    /// [`NotifierConfig::attempt_timeout`] each. Every outcome is logged (info when sent,
    /// warn when failed) without secrets.
    pub async fn notify(&self, channels: &[Channel], event: &RunEvent) -> Vec<NotificationOutcome> {
        let sends = channels.iter().map(|channel| async move {
            let result = self.deliver(channel, event).await;
            let outcome = NotificationOutcome {
                channel: channel.name.clone(),
                kind: channel.kind(),
                result,
            };
            log(&outcome, event);
            outcome
        });
        futures::future::join_all(sends).await
    }

    async fn deliver(&self, channel: &Channel, event: &RunEvent) -> DeliveryResult {
        if event.outcome == RunOutcome::Started {
            return DeliveryResult::Skipped(SkipReason::RunNotEnded);
        }
        let timeout = self.config.attempt_timeout;
        let policy = &self.config.retry;
        let sent = match &channel.target {
            ChannelTarget::Slack(slack) => {
                if !wants(channel.on, event.outcome) {
                    return DeliveryResult::Skipped(SkipReason::NotWanted);
                }
                let body = slack::body(event);
                let secrets = slack.webhook_url.secret_parts();
                let request = post(&slack.webhook_url, &body, HeaderMap::new(), &secrets);
                send_with_retries(&self.client, &request, timeout, policy).await
            }
            ChannelTarget::PagerDuty(pager_duty) => {
                let Some(action) = pagerduty::action(channel.on, event.outcome) else {
                    return DeliveryResult::Skipped(SkipReason::NotWanted);
                };
                let body = pagerduty::body(pager_duty, action, event);
                let secrets = vec![pager_duty.routing_key.expose().to_owned()];
                let request = post(&self.pagerduty_url, &body, HeaderMap::new(), &secrets);
                send_with_retries(&self.client, &request, timeout, policy).await
            }
            ChannelTarget::Webhook(hook) => {
                if !wants(channel.on, event.outcome) {
                    return DeliveryResult::Skipped(SkipReason::NotWanted);
                }
                let headers = match hook.headers.to_header_map() {
                    Ok(headers) => headers,
                    Err(error) => return failed(0, error.into()),
                };
                let body = webhook::body(event);
                let mut secrets = hook.url.secret_parts();
                secrets.extend(hook.headers.secret_parts());
                let request = post(&hook.url, &body, headers, &secrets);
                send_with_retries(&self.client, &request, timeout, policy).await
            }
            ChannelTarget::Email(mail) => {
                if !wants(channel.on, event.outcome) {
                    return DeliveryResult::Skipped(SkipReason::NotWanted);
                }
                email::send(mail, event, &self.smtp_roots, timeout, policy).await
            }
        };
        match sent {
            Ok(attempts) => DeliveryResult::Sent { attempts },
            Err((attempts, error)) => failed(attempts, error),
        }
    }
}

fn failed(attempts: u32, error: DeliveryError) -> DeliveryResult {
    DeliveryResult::Failed { attempts, error }
}

fn post<'a>(
    url: &'a SecretUrl,
    body: &'a serde_json::Value,
    headers: HeaderMap,
    secrets: &'a [String],
) -> HttpRequest<'a> {
    HttpRequest {
        method: Method::POST,
        url: url.expose(),
        endpoint: url.redacted(),
        headers,
        body: Some(body),
        secrets,
    }
}

fn log(outcome: &NotificationOutcome, event: &RunEvent) {
    let object = event.object();
    match &outcome.result {
        DeliveryResult::Failed { error, .. } => tracing::warn!(
            object,
            channel = outcome.channel,
            kind = outcome.kind.as_str(),
            error_kind = error.kind(),
            "{outcome}"
        ),
        DeliveryResult::Sent { .. } => tracing::info!(
            object,
            channel = outcome.channel,
            kind = outcome.kind.as_str(),
            "{outcome}"
        ),
        DeliveryResult::Skipped(_) => tracing::debug!(
            object,
            channel = outcome.channel,
            kind = outcome.kind.as_str(),
            "{outcome}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_covers_the_outcomes_it_names() {
        use NotifyOn::*;
        use RunOutcome::*;
        for (on, outcome, expected) in [
            (Failure, Failed, true),
            (Failure, Succeeded, false),
            (Success, Succeeded, true),
            (Success, Failed, false),
            (Always, Failed, true),
            (Always, Succeeded, true),
            (Always, Started, false),
        ] {
            assert_eq!(wants(on, outcome), expected, "{on:?} {outcome:?}");
        }
    }
}
