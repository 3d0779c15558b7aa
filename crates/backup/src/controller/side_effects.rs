//! What a run tells the outside world, through the `notify` library: pre hooks before it
//! starts (a failing `Fail` hook fails the run), post hooks and notifications once it ended.
//! The Secrets they name are read when needed and held only in `notify`'s secret types.
//!
//! Exactly once: pre hooks run before the run's `Running` status is written (a run found
//! `Running` never calls them again); post hooks and notifications run after the final status
//! is written, and the annotation [`labels::POST_RUN_DONE`](super::labels::POST_RUN_DONE) then
//! records that they ran, so an operator restart does not repeat them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::metrics::RunMetrics;
use super::resolve::RunSettings;
use crate::api::BackupRequest;
use crate::api::run::ErrorKind;
use crate::notify::{
    Channel, Hook, HookPhase, Notifier, RunError, RunEvent, RunKind, RunOutcome, SecretData,
    referenced_secrets,
};

/// How a run ended, for the post-run event.
#[derive(Clone, Debug)]
pub struct Ended {
    /// Success or failure (with kind and message).
    pub error: Option<(ErrorKind, String)>,
    /// The backup's name.
    pub backup_name: Option<String>,
    /// Bytes before compression.
    pub raw_bytes: Option<u64>,
    /// Bytes stored.
    pub stored_bytes: Option<u64>,
    /// Duration.
    pub duration: Option<Duration>,
    /// Where it is.
    pub location: Option<String>,
}

/// The event describing `request`'s run (`ended = None`: it is about to start).
pub fn event(
    request: &BackupRequest,
    settings: &RunSettings,
    ended: Option<&Ended>,
    now: DateTime<Utc>,
) -> RunEvent {
    let outcome = match ended {
        None => RunOutcome::Started,
        Some(Ended { error: None, .. }) => RunOutcome::Succeeded,
        Some(_) => RunOutcome::Failed,
    };
    RunEvent {
        kind: RunKind::Backup,
        namespace: request.metadata.namespace.clone().unwrap_or_default(),
        name: request.metadata.name.clone().unwrap_or_default(),
        policy: settings.policy.as_ref().map(|policy| policy.name.clone()),
        outcome,
        error: ended.and_then(|ended| {
            ended.error.as_ref().map(|(kind, message)| RunError {
                kind: *kind,
                message: message.clone(),
            })
        }),
        backup_name: ended
            .and_then(|ended| ended.backup_name.clone())
            .or_else(|| Some(settings.backup_name.clone())),
        raw_bytes: ended.and_then(|ended| ended.raw_bytes),
        stored_bytes: ended.and_then(|ended| ended.stored_bytes),
        duration: ended.and_then(|ended| ended.duration),
        location: ended.and_then(|ended| ended.location.clone()),
        time: now,
    }
}

/// Reads the Secrets the hooks and notifications name. A missing Secret is left out: the
/// channel or hook that needs it then fails to resolve, naming it.
async fn secret_data(secrets: &Api<Secret>, settings: &RunSettings) -> SecretData {
    let hooks: Vec<_> = settings
        .hooks
        .pre
        .iter()
        .chain(&settings.hooks.post)
        .cloned()
        .collect();
    let mut data = SecretData::new();
    for name in referenced_secrets(&settings.notifications, &hooks) {
        match secrets.get_opt(&name).await {
            Ok(Some(secret)) => {
                if let Err(error) = data.insert_secret(&secret) {
                    tracing::warn!(secret = name, "{error}");
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(secret = name, "cannot read the Secret: {error}"),
        }
    }
    data
}

/// Runs the pre hooks. `Err(message)` when a `Fail` hook failed (or cannot be resolved): the
/// run fails with `HookFailed`. `Ok(notes)` lists the failures of `Ignore` hooks, for Events.
pub async fn pre_hooks(
    notifier: &Notifier,
    secrets: &Api<Secret>,
    settings: &RunSettings,
    event: &RunEvent,
) -> Result<Vec<String>, String> {
    if settings.hooks.pre.is_empty() {
        return Ok(Vec::new());
    }
    let data = secret_data(secrets, settings).await;
    let mut hooks = Vec::new();
    for spec in &settings.hooks.pre {
        match Hook::resolve(spec, &data) {
            Ok(hook) => hooks.push(hook),
            Err(error) => return Err(format!("pre hook `{}`: {error}", spec.name)),
        }
    }
    match notifier.run_hooks(&hooks, HookPhase::Pre, event).await {
        Ok(outcome) => Ok(outcome
            .ignored_failures()
            .map(ToString::to_string)
            .collect()),
        Err(failed) => Err(failed.to_string()),
    }
}

/// Runs the post hooks and sends the notifications; every failure is counted in
/// `notification_failures_total` and returned as a note for a Warning Event.
pub async fn post_run(
    notifier: &Notifier,
    secrets: &Api<Secret>,
    settings: &RunSettings,
    event: &RunEvent,
    metrics: &RunMetrics,
    backup: &str,
) -> Vec<String> {
    if settings.hooks.post.is_empty() && settings.notifications.is_empty() {
        return Vec::new();
    }
    let data = secret_data(secrets, settings).await;
    let mut failures = Vec::new();
    let mut hooks = Vec::new();
    for spec in &settings.hooks.post {
        match Hook::resolve(spec, &data) {
            Ok(hook) => hooks.push(hook),
            Err(error) => failures.push((format!("hook:{}", spec.name), error.to_string())),
        }
    }
    if !hooks.is_empty() {
        // Post hooks never change the run's result; a `Fail` hook stops the later ones.
        let calls = match notifier.run_hooks(&hooks, HookPhase::Post, event).await {
            Ok(outcome) => outcome.calls,
            Err(failed) => failed.outcome.calls,
        };
        for call in calls {
            if let Err(error) = &call.result {
                failures.push((format!("hook:{}", call.hook), error.to_string()));
            }
        }
    }
    let mut channels = Vec::new();
    for spec in &settings.notifications {
        match Channel::resolve(spec, &data) {
            Ok(channel) => channels.push(channel),
            Err(error) => failures.push((spec.name.clone(), error.to_string())),
        }
    }
    for outcome in notifier.notify(&channels, event).await {
        if let crate::notify::DeliveryResult::Failed { attempts, error } = &outcome.result {
            failures.push((
                outcome.channel.clone(),
                format!("{error} (after {attempts} attempts)"),
            ));
        }
    }
    failures
        .into_iter()
        .map(|(channel, message)| {
            metrics.notification_failed(&event.namespace, backup, &channel);
            format!("{channel}: {message}")
        })
        .collect()
}
