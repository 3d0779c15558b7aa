//! One HTTP request of a channel or hook: sent with a timeout, its failure classified into a
//! [`DeliveryError`] whose text holds no secret, and (for channels) retried as a
//! [`RetryPolicy`] says.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, Method, Url};

use super::error::DeliveryError;
use super::retry::{RetryPolicy, parse_retry_after};
use super::secrets::scrub;

/// The longest part of an error answer's body kept in a message.
const EXCERPT_CHARS: usize = 200;

/// One request, ready to send.
pub(crate) struct HttpRequest<'a> {
    pub method: Method,
    pub url: &'a Url,
    /// `scheme://host[:port]`, for messages.
    pub endpoint: &'a str,
    pub headers: HeaderMap,
    /// A JSON body, if any.
    pub body: Option<&'a serde_json::Value>,
    /// Every secret the request carries, scrubbed from any text that reaches a message.
    pub secrets: &'a [String],
}

/// A failed attempt and the server's `Retry-After`, if it sent one.
pub(crate) struct AttemptFailure {
    pub error: DeliveryError,
    pub retry_after: Option<Duration>,
}

/// Sends `request` once; `Ok(status)` on a 2xx answer.
pub(crate) async fn send_once(
    client: &Client,
    request: &HttpRequest<'_>,
    timeout: Duration,
) -> Result<u16, AttemptFailure> {
    let mut builder = client
        .request(request.method.clone(), request.url.clone())
        .headers(request.headers.clone())
        .timeout(timeout);
    if let Some(body) = request.body {
        builder = builder.json(body);
    }
    let failure = |error| AttemptFailure {
        error,
        retry_after: None,
    };
    // reqwest's timeout covers connecting, sending and the answer's headers and body; the
    // outer one is a guard in case a part of that escapes it.
    let answer = match tokio::time::timeout(timeout, builder.send()).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => return Err(failure(classify(&error, request, timeout))),
        Err(_) => return Err(failure(timed_out(request, timeout))),
    };
    let status = answer.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let retry_after = answer
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, chrono::Utc::now()));
    // The body explains a 4xx ("invalid routing key"); a body we cannot read is no reason
    // to hide the status.
    let body = tokio::time::timeout(timeout, read_start(answer, request.secrets))
        .await
        .unwrap_or_default();
    Err(AttemptFailure {
        error: DeliveryError::Status {
            endpoint: request.endpoint.to_owned(),
            status: status.as_u16(),
            detail: one_line(&scrub(&body, request.secrets)),
        },
        retry_after,
    })
}

/// Sends `request` until it succeeds, fails for good, or `policy.max_attempts` are used.
/// `Ok(attempts)`, or `Err((attempts, last error))`.
pub(crate) async fn send_with_retries(
    client: &Client,
    request: &HttpRequest<'_>,
    timeout: Duration,
    policy: &RetryPolicy,
) -> Result<u32, (u32, DeliveryError)> {
    let max_attempts = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let failure = match send_once(client, request, timeout).await {
            Ok(_) => return Ok(attempt),
            Err(failure) => failure,
        };
        if !failure.error.is_retryable() || attempt >= max_attempts {
            return Err((attempt, failure.error));
        }
        let wait = match policy.jittered_wait(attempt, failure.retry_after) {
            Ok(wait) => wait,
            Err(retry_after) => {
                let status = match failure.error {
                    DeliveryError::Status { status, .. } => status,
                    _ => 0,
                };
                return Err((
                    attempt,
                    DeliveryError::RetryAfterTooLong {
                        endpoint: request.endpoint.to_owned(),
                        status,
                        retry_after,
                        limit: policy.max_retry_after,
                    },
                ));
            }
        };
        tracing::debug!(
            endpoint = request.endpoint,
            attempt,
            wait_ms = wait.as_millis() as u64,
            error = %failure.error,
            "notification attempt failed; retrying"
        );
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// The start of an answer's body: enough for the excerpt, plus the longest secret, so a secret
/// echoed across the end of the excerpt is read whole and scrubbed rather than cut in two.
/// A huge or endless body is not read to its end.
async fn read_start(mut answer: reqwest::Response, secrets: &[String]) -> String {
    let longest = secrets.iter().map(String::len).max().unwrap_or(0);
    let limit = EXCERPT_CHARS * 4 + longest;
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match answer.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(limit);
    String::from_utf8_lossy(&bytes).into_owned()
}

fn timed_out(request: &HttpRequest<'_>, timeout: Duration) -> DeliveryError {
    DeliveryError::Timeout {
        endpoint: request.endpoint.to_owned(),
        timeout,
    }
}

/// The kind of a reqwest error, with a cause that holds neither the URL (reqwest's own
/// `Display` prints it, token and all) nor any other secret.
fn classify(error: &reqwest::Error, request: &HttpRequest<'_>, timeout: Duration) -> DeliveryError {
    let endpoint = request.endpoint.to_owned();
    let detail = scrub(&causes(error), request.secrets);
    if error.is_connect() {
        DeliveryError::Connect { endpoint, detail }
    } else if error.is_timeout() {
        timed_out(request, timeout)
    } else {
        DeliveryError::Http { endpoint, detail }
    }
}

/// The error's sources, joined by `: ` (the top level is reqwest's, which would add the URL).
fn causes(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    if parts.is_empty() {
        "the request failed".to_owned()
    } else {
        parts.join(": ")
    }
}

/// `text` on one line, at most [`EXCERPT_CHARS`] characters.
pub(crate) fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= EXCERPT_CHARS {
        flat
    } else {
        let cut: String = flat.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    }
}
