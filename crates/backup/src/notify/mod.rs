//! Notifications and hooks: what the operator tells the outside world about a run. The
//! controller resolves a VerticeBackup's `notifications` and `hooks` with the Secrets they name
//! ([`Channel::resolve`], [`Hook::resolve`], [`referenced_secrets`]), builds a [`RunEvent`],
//! and calls [`Notifier::run_hooks`] before and after a run and [`Notifier::notify`] when it
//! ended.
//!
//! Channels: Slack incoming webhooks ([`slack`]), PagerDuty Events API v2 ([`pagerduty`]:
//! failures trigger, successes resolve, one `dedup_key` per VerticeBackup and run kind), a
//! generic JSON webhook ([`webhook`]) and SMTP email ([`email`]). Each is sent on its own with
//! a per-attempt timeout and bounded retries with jittered exponential backoff on connection errors,
//! HTTP 408/425/429/5xx and SMTP 4xx, honouring `Retry-After` ([`RetryPolicy`]).
//!
//! Secrets (webhook URLs, the routing key, header values, the SMTP password) are held in
//! [`Secret`](crate::source::Secret), [`SecretUrl`] and [`SecretHeaders`], whose `Debug` shows
//! none of them; errors, outcomes and log lines name an endpoint as `scheme://host[:port]`
//! only, never print a reqwest error with its URL, and scrub any text that came from elsewhere
//! (an answer's body, an I/O error) of every secret of the request.
//!
//! # The JSON body (`schemaVersion` 1)
//!
//! Generic webhooks get [`RunEvent::to_json`]; hooks get the same plus `phase` and `hook`;
//! PagerDuty puts it in `payload.custom_details`. Fields (absent when unknown):
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `schemaVersion` | number | `1`; changes only when a field changes meaning or goes away |
//! | `kind` | string | `backup`, `restore` or `drill` |
//! | `namespace` | string | the object's namespace |
//! | `name` | string | the BackupRequest or RestoreRequest (a drill: the VerticeBackup) |
//! | `policy` | string? | the VerticeBackup the run belongs to |
//! | `outcome` | string | `started` (pre hooks only), `succeeded` or `failed` |
//! | `error` | object? | `{"kind": "DatabaseFailed" …, "message": "…"}` for a failed run |
//! | `backupName` | string? | the backup's name in the store |
//! | `rawBytes` | number? | bytes before compression and encryption |
//! | `storedBytes` | number? | bytes stored |
//! | `durationSeconds` | number? | how long the run took |
//! | `location` | string? | where the backup is, e.g. `s3://bucket/prefix/<name>` |
//! | `time` | string | RFC 3339 UTC, when it happened |
//! | `phase` | string | hooks only: `pre` or `post` |
//! | `hook` | string | hooks only: the hook's name |

pub mod channel;
pub mod email;
pub mod error;
pub mod event;
pub mod hooks;
mod http;
pub mod notifier;
pub mod pagerduty;
pub mod retry;
pub mod secrets;
pub mod slack;
pub mod webhook;

pub use channel::{Channel, ChannelKind, ChannelTarget, SecretData, referenced_secrets};
pub use email::{EmailChannel, SmtpCredentials};
pub use error::{ConfigError, DeliveryError, ResolveError};
pub use event::{RunError, RunEvent, RunKind, RunOutcome};
pub use hooks::{DEFAULT_HOOK_TIMEOUT, Hook, HookCall, HookFailed, HookOutcome, HookPhase};
pub use notifier::{DeliveryResult, NotificationOutcome, Notifier, NotifierConfig, SkipReason};
pub use pagerduty::PagerDutyChannel;
pub use retry::RetryPolicy;
pub use secrets::{SecretHeaders, SecretUrl};
pub use slack::SlackChannel;
pub use webhook::WebhookChannel;
