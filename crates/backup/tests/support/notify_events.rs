//! Events, channels and a fast notifier for the notification and hook tests.

#![allow(dead_code)]

use std::time::Duration;

use vertice_backup::api::notify::NotifyOn;
use vertice_backup::api::run::ErrorKind;
use vertice_backup::notify::{
    Channel, ChannelTarget, Notifier, NotifierConfig, RetryPolicy, RunError, RunEvent, RunKind,
    RunOutcome, SecretHeaders, SecretUrl, WebhookChannel,
};
use vertice_backup::source::Secret;

/// Every wait for a receiver has this deadline.
pub const WAIT: Duration = Duration::from_secs(15);

/// A run of the VerticeBackup `nightly` in `team-a` that ended as `outcome`.
pub fn event(outcome: RunOutcome) -> RunEvent {
    let failed = outcome == RunOutcome::Failed;
    RunEvent {
        kind: RunKind::Backup,
        namespace: "team-a".into(),
        name: "nightly-28861440".into(),
        policy: Some("nightly".into()),
        outcome,
        error: failed.then(|| RunError {
            kind: ErrorKind::DatabaseFailed,
            message: "pg_dump: connection to server at \"db\" failed: Connection refused".into(),
        }),
        backup_name: (!failed).then(|| "20261130T040000Z-ab12".into()),
        raw_bytes: (!failed).then_some(10 * 1024 * 1024),
        stored_bytes: (!failed).then_some(3 * 1024 * 1024),
        duration: Some(Duration::from_millis(4250)),
        location: (!failed).then(|| "s3://backups/team-a/nightly/20261130T040000Z-ab12".into()),
        time: chrono::DateTime::from_timestamp(1_795_924_800, 0).unwrap(),
    }
}

/// A notifier with short backoff (tests wait for events, and backoff is time).
pub fn notifier(attempts: u32, attempt_timeout: Duration) -> Notifier {
    notifier_with(attempts, attempt_timeout, |_| {})
}

/// [`notifier`] with more settings.
pub fn notifier_with(
    attempts: u32,
    attempt_timeout: Duration,
    change: impl FnOnce(&mut NotifierConfig),
) -> Notifier {
    let mut config = NotifierConfig {
        attempt_timeout,
        retry: RetryPolicy {
            max_attempts: attempts,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(5),
        },
        ..NotifierConfig::default()
    };
    change(&mut config);
    Notifier::new(config).unwrap()
}

pub fn url(value: &str) -> SecretUrl {
    SecretUrl::parse(&Secret::new(value), "test URL").unwrap()
}

pub fn headers(pairs: &[(&str, &str)]) -> SecretHeaders {
    SecretHeaders::new(
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), Secret::new(*value)))
            .collect(),
    )
}

/// A webhook channel named `name` to `url`.
pub fn webhook(name: &str, on: NotifyOn, url_text: &str) -> Channel {
    Channel {
        name: name.into(),
        on,
        target: ChannelTarget::Webhook(WebhookChannel {
            url: url(url_text),
            headers: SecretHeaders::default(),
        }),
    }
}

/// A random token (hex) for secrets: each test its own.
pub fn token(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mixed = nanos
        .wrapping_mul(6364136223846793005)
        .wrapping_add(label.len() as u128);
    format!("{label}{:032x}", mixed)
}
