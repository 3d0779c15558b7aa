//! Why a notification or a hook failed, by kind. Every message names a channel's endpoint as
//! `scheme://host[:port]` at most and never holds a secret value: they go into Events, status
//! and logs as they are.

use std::time::Duration;

/// A channel or hook that cannot be used as configured (nothing was sent).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A URL that does not parse or is not http(s).
    #[error("the {field} is not a usable http(s) URL: {reason}")]
    InvalidUrl {
        /// Which URL (e.g. `Slack webhook URL`).
        field: String,
        /// Why, without the value.
        reason: String,
    },
    /// A header from a Secret that cannot be sent.
    #[error("header `{name}` cannot be sent: {reason}")]
    InvalidHeader {
        /// The header (the Secret's key).
        name: String,
        /// Why, without the value.
        reason: String,
    },
    /// An email address that does not parse.
    #[error("the {field} address `{address}` is not a valid email address")]
    InvalidAddress {
        /// `from` or `to`.
        field: &'static str,
        /// The address (addresses are spec fields, not secrets).
        address: String,
    },
    /// A port outside 1–65535.
    #[error("SMTP port {0} is outside 1-65535")]
    InvalidPort(i32),
    /// A certificate given to trust that is not PEM.
    #[error("an extra root certificate is not valid PEM")]
    InvalidCertificate,
    /// A notification that names no target (the CRD's CEL rule forbids it).
    #[error("none of slack, pagerDuty, webhook, email is set")]
    NoTarget,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// A Secret value the spec refers to that is not there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The Secret does not exist (or was not read).
    #[error("Secret `{secret}` (for {purpose}) was not found")]
    MissingSecret {
        /// Its name.
        secret: String,
        /// What it is for, e.g. `notification slack-ops`.
        purpose: String,
    },
    /// The Secret exists but lacks the key.
    #[error("Secret `{secret}` has no key `{key}` (for {purpose})")]
    MissingKey {
        /// Its name.
        secret: String,
        /// The missing key.
        key: String,
        /// What it is for.
        purpose: String,
    },
    /// The value is not UTF-8.
    #[error("Secret `{secret}` key `{key}` is not UTF-8 text")]
    NotUtf8 {
        /// Its name.
        secret: String,
        /// The key.
        key: String,
    },
    /// The resolved value is unusable.
    #[error("{purpose}: {source}")]
    Config {
        /// What it is for.
        purpose: String,
        /// Why.
        source: ConfigError,
    },
}

/// Why one delivery (one channel, or one hook call) failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Misconfigured; nothing was sent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No connection (refused, DNS, unreachable, connect timeout).
    #[error("cannot connect to {endpoint}: {detail}")]
    Connect {
        /// `scheme://host[:port]`.
        endpoint: String,
        /// The cause, scrubbed.
        detail: String,
    },
    /// Connected, but no (complete) answer in time. Not retried: the request may have arrived.
    #[error("no answer from {endpoint} within {}s", timeout.as_secs_f64())]
    Timeout {
        /// `scheme://host[:port]`.
        endpoint: String,
        /// The limit that expired.
        timeout: Duration,
    },
    /// A non-2xx HTTP answer.
    #[error("{endpoint} answered HTTP {status}{}", excerpt(detail))]
    Status {
        /// `scheme://host[:port]`.
        endpoint: String,
        /// The status code.
        status: u16,
        /// The start of the answer's body, scrubbed, one line.
        detail: String,
    },
    /// A 429/503 whose `Retry-After` is longer than we may wait.
    #[error("{endpoint} answered HTTP {status} and asks to retry after {}s, longer than the {}s allowed", retry_after.as_secs(), limit.as_secs())]
    RetryAfterTooLong {
        /// `scheme://host[:port]`.
        endpoint: String,
        /// 429 or 503.
        status: u16,
        /// What the server asked for.
        retry_after: Duration,
        /// [`super::RetryPolicy::max_retry_after`].
        limit: Duration,
    },
    /// Any other HTTP failure (a broken connection mid-answer, a protocol error).
    #[error("request to {endpoint} failed: {detail}")]
    Http {
        /// `scheme://host[:port]`.
        endpoint: String,
        /// The cause, scrubbed.
        detail: String,
    },
    /// The SMTP server refused the login (wrong user or password; `535`/`534`/`530`).
    #[error("SMTP server {endpoint} refused the login: {detail}")]
    SmtpAuth {
        /// `host:port`.
        endpoint: String,
        /// The server's reply, scrubbed.
        detail: String,
    },
    /// TLS could not be set up (no STARTTLS offered, untrusted certificate, handshake).
    #[error("TLS with {endpoint} failed: {detail}")]
    Tls {
        /// `host:port`.
        endpoint: String,
        /// The cause, scrubbed.
        detail: String,
    },
    /// The SMTP server refused the message or a command; `transient` for 4xx replies.
    #[error("SMTP server {endpoint} refused: {detail}")]
    SmtpRejected {
        /// `host:port`.
        endpoint: String,
        /// Whether the reply was 4xx (try again later).
        transient: bool,
        /// The reply code and text, scrubbed.
        detail: String,
    },
}

fn excerpt(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl DeliveryError {
    /// Whether trying again may help: connection failures, HTTP 408/425/429/5xx and transient
    /// SMTP replies. A timeout after connecting is not retried (the receiver may have the
    /// request already; a second one would be a duplicate message).
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Connect { .. } => true,
            DeliveryError::Status { status, .. } => {
                matches!(status, 408 | 425 | 429) || (500..=599).contains(status)
            }
            DeliveryError::SmtpRejected { transient, .. } => *transient,
            _ => false,
        }
    }

    /// A short stable name of the kind, for metrics labels and Event reasons: `config`,
    /// `connect`, `timeout`, `status`, `retry-after`, `http`, `smtp-auth`, `tls`, `smtp-rejected`.
    pub fn kind(&self) -> &'static str {
        match self {
            DeliveryError::Config(_) => "config",
            DeliveryError::Connect { .. } => "connect",
            DeliveryError::Timeout { .. } => "timeout",
            DeliveryError::Status { .. } => "status",
            DeliveryError::RetryAfterTooLong { .. } => "retry-after",
            DeliveryError::Http { .. } => "http",
            DeliveryError::SmtpAuth { .. } => "smtp-auth",
            DeliveryError::Tls { .. } => "tls",
            DeliveryError::SmtpRejected { .. } => "smtp-rejected",
        }
    }
}
