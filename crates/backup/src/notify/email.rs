//! Email through SMTP (lettre): a plain-text message naming the run, its outcome and facts,
//! sent over STARTTLS (default), TLS from the first byte, or no TLS, with AUTH (PLAIN or
//! LOGIN) when credentials are given. Connection failures and 4xx replies are retried; a
//! refused login (`530`/`534`/`535`/`538`) is reported as [`DeliveryError::SmtpAuth`].

use std::fmt;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::error::{ConfigError, DeliveryError};
use super::event::RunEvent;
use super::retry::RetryPolicy;
use super::secrets::scrub;
use crate::api::notify::SmtpTls;
use crate::source::Secret;

/// SMTP AUTH credentials. `Debug` shows the user only.
#[derive(Clone)]
pub struct SmtpCredentials {
    /// The login.
    pub username: String,
    /// The password: a credential.
    pub password: Secret,
}

impl fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpCredentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// An email channel, resolved.
#[derive(Clone, Debug)]
pub struct EmailChannel {
    /// The SMTP server's host name (also the name its certificate must carry).
    pub host: String,
    /// The port; `None`: 587 for StartTLS, 465 for TLS, 25 for None.
    pub port: Option<u16>,
    /// How the connection is secured.
    pub tls: SmtpTls,
    /// AUTH credentials; `None`: no AUTH.
    pub credentials: Option<SmtpCredentials>,
    /// The sender address (`Name <addr>` or `addr`).
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
}

impl EmailChannel {
    /// The port used: the one given, or the mode's default.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::StartTLS => 587,
            SmtpTls::TLS => 465,
            SmtpTls::None => 25,
        })
    }

    /// `host:port`, for messages.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port())
    }
}

/// `[vertice-backup] Backup failed: ns/name`.
pub fn subject(event: &RunEvent) -> String {
    format!(
        "[vertice-backup] {} {}: {}",
        event.kind.title(),
        event.outcome.as_str(),
        event.object()
    )
}

/// The plain-text body: the summary, the error, then one `Label: value` line per fact.
pub fn text_body(event: &RunEvent) -> String {
    let mut text = format!("{}\n\n", event.summary());
    if let Some(error) = &event.error {
        text.push_str(&format!(
            "Error ({:?}):\n  {}\n\n",
            error.kind, error.message
        ));
    }
    let facts = event.facts();
    let width = facts
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0)
        + 1;
    for (label, value) in facts {
        text.push_str(&format!("{:<width$} {value}\n", format!("{label}:")));
    }
    text.push_str("\n-- \nSent by the vertice-backup operator.\n");
    text
}

/// The message for `event`. A `from` or `to` that is not an address is
/// [`ConfigError::InvalidAddress`].
pub fn message(channel: &EmailChannel, event: &RunEvent) -> Result<Message, ConfigError> {
    let from: Mailbox = channel
        .from
        .parse()
        .map_err(|_| ConfigError::InvalidAddress {
            field: "from",
            address: channel.from.clone(),
        })?;
    let mut builder = Message::builder()
        .from(from)
        .subject(subject(event))
        .header(ContentType::TEXT_PLAIN);
    for to in &channel.to {
        let mailbox: Mailbox = to.parse().map_err(|_| ConfigError::InvalidAddress {
            field: "to",
            address: to.clone(),
        })?;
        builder = builder.to(mailbox);
    }
    builder
        .body(text_body(event))
        .map_err(|_| ConfigError::InvalidAddress {
            field: "to",
            address: channel.to.join(", "),
        })
}

/// Sends `event` to `channel`, retrying connection failures and 4xx replies as `policy` says;
/// each attempt gives up after `timeout`. `roots` are trusted besides the system's.
/// `Ok(attempts)` or `Err((attempts, last error))`.
pub(crate) async fn send(
    channel: &EmailChannel,
    event: &RunEvent,
    roots: &[Certificate],
    timeout: Duration,
    policy: &RetryPolicy,
) -> Result<u32, (u32, DeliveryError)> {
    let message = message(channel, event).map_err(|error| (0, error.into()))?;
    let transport = transport(channel, roots, timeout).map_err(|error| (0, error))?;
    let endpoint = channel.endpoint();
    let secrets: Vec<String> = channel
        .credentials
        .iter()
        .map(|c| c.password.expose().to_owned())
        .collect();
    let max_attempts = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let error = match tokio::time::timeout(timeout, transport.send(message.clone())).await {
            Ok(Ok(_)) => return Ok(attempt),
            Ok(Err(error)) => classify(&error, &endpoint, &secrets, timeout),
            Err(_) => DeliveryError::Timeout {
                endpoint: endpoint.clone(),
                timeout,
            },
        };
        if !error.is_retryable() || attempt >= max_attempts {
            return Err((attempt, error));
        }
        let wait = super::retry::jitter(policy.backoff(attempt));
        tracing::debug!(endpoint, attempt, wait_ms = wait.as_millis() as u64, error = %error, "email attempt failed; retrying");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

fn transport(
    channel: &EmailChannel,
    roots: &[Certificate],
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, DeliveryError> {
    let tls_parameters = || {
        let mut builder = TlsParameters::builder(channel.host.clone());
        for root in roots {
            builder = builder.add_root_certificate(root.clone());
        }
        builder.build_rustls().map_err(|error| DeliveryError::Tls {
            endpoint: channel.endpoint(),
            detail: error.to_string(),
        })
    };
    let tls = match channel.tls {
        SmtpTls::StartTLS => Tls::Required(tls_parameters()?),
        SmtpTls::TLS => Tls::Wrapper(tls_parameters()?),
        SmtpTls::None => Tls::None,
    };
    // `builder_dangerous` only means "no TLS chosen for you": `tls` is set right here.
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&channel.host)
        .port(channel.port())
        .tls(tls)
        .timeout(Some(timeout))
        // PLAIN first (one round trip), LOGIN for servers that offer only that.
        .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    if let Some(credentials) = &channel.credentials {
        builder = builder.credentials(Credentials::new(
            credentials.username.clone(),
            credentials.password.expose().to_owned(),
        ));
    }
    Ok(builder.build())
}

/// Whether a rustls error is among the causes: lettre reports a failed handshake (an
/// untrusted certificate) as a connection error whose source is rustls's.
fn caused_by_tls(error: &lettre::transport::smtp::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The kind of a lettre error; the text is lettre's (reply code and the server's words, or
/// the I/O cause), scrubbed of the password.
fn classify(
    error: &lettre::transport::smtp::Error,
    endpoint: &str,
    secrets: &[String],
    timeout: Duration,
) -> DeliveryError {
    let endpoint = endpoint.to_owned();
    let detail = super::http::one_line(&scrub(&error.to_string(), secrets));
    let code: Option<u16> = error
        .status()
        .and_then(|code| code.to_string().parse().ok());
    if let Some(code) = code {
        return if matches!(code, 530 | 534 | 535 | 538) {
            DeliveryError::SmtpAuth { endpoint, detail }
        } else {
            DeliveryError::SmtpRejected {
                endpoint,
                transient: error.is_transient(),
                detail,
            }
        };
    }
    if error.is_tls() || caused_by_tls(error) || detail.contains("STARTTLS") {
        DeliveryError::Tls { endpoint, detail }
    } else if error.is_timeout() {
        DeliveryError::Timeout { endpoint, timeout }
    } else if error.is_client() && detail.to_ascii_lowercase().contains("authentication") {
        DeliveryError::SmtpAuth { endpoint, detail }
    } else if error.is_client() || error.is_response() {
        DeliveryError::SmtpRejected {
            endpoint,
            transient: false,
            detail,
        }
    } else {
        DeliveryError::Connect { endpoint, detail }
    }
}
