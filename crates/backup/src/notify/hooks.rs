//! Pre and post hooks: HTTP calls the operator makes in order around a run (e.g. put an app in
//! maintenance mode before the dump and take it out after). A 2xx answer is success. Hooks
//! are not retried: they are not known to be idempotent, and the user sets the timeout.
//!
//! `failurePolicy: Fail` stops at the first failing hook: [`Notifier::run_hooks`] returns
//! [`HookFailed`], and for pre hooks the controller fails the run (`ErrorKind::HookFailed`)
//! before anything is dumped; for post hooks it reports it (the run already ended).
//! `Ignore` records the failure in the outcome and goes on with the next hook.

use std::fmt;
use std::time::Duration;

use reqwest::Method;

use super::channel::SecretData;
use super::error::{DeliveryError, ResolveError};
use super::event::RunEvent;
use super::http::{HttpRequest, send_once};
use super::notifier::Notifier;
use super::secrets::{SecretHeaders, SecretUrl};
use crate::api::notify::{FailurePolicy, HookMethod, HttpHook};
use crate::source::Secret;

/// Timeout of a hook without `timeoutSeconds`.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Before or after the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookPhase {
    /// Before the dump starts.
    Pre,
    /// After the run ended (well or not).
    Post,
}

impl HookPhase {
    /// `pre` or `post` (the `phase` field of the hook body).
    pub fn as_str(self) -> &'static str {
        match self {
            HookPhase::Pre => "pre",
            HookPhase::Post => "post",
        }
    }
}

/// One hook, resolved.
#[derive(Clone, Debug)]
pub struct Hook {
    /// The spec's `name`.
    pub name: String,
    /// The URL; shown as `scheme://host[:port]` only, like every URL here.
    pub url: SecretUrl,
    /// GET (no body), POST or PUT (the hook body: module doc).
    pub method: HookMethod,
    /// Headers from a Secret.
    pub headers: SecretHeaders,
    /// Limit of the call.
    pub timeout: Duration,
    /// What a failure does.
    pub failure_policy: FailurePolicy,
}

impl Hook {
    /// The hook `spec` describes, with its headers from `secrets`; `timeoutSeconds` defaults
    /// to [`DEFAULT_HOOK_TIMEOUT`] (a value below 1 counts as 1).
    pub fn resolve(spec: &HttpHook, secrets: &SecretData) -> Result<Self, ResolveError> {
        let purpose = format!("hook {}", spec.name);
        let url =
            SecretUrl::parse(&Secret::new(spec.url.clone()), "hook URL").map_err(|source| {
                ResolveError::Config {
                    purpose: purpose.clone(),
                    source,
                }
            })?;
        let timeout = spec.timeout_seconds.map_or(DEFAULT_HOOK_TIMEOUT, |s| {
            Duration::from_secs(s.max(1) as u64)
        });
        Ok(Hook {
            name: spec.name.clone(),
            url,
            method: spec.method,
            headers: secrets.headers(spec.headers_secret_ref.as_ref(), &purpose)?,
            timeout,
            failure_policy: spec.failure_policy,
        })
    }
}

/// One hook call and its result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookCall {
    /// The hook's name.
    pub hook: String,
    /// Its failure policy.
    pub failure_policy: FailurePolicy,
    /// `Ok(status)` (2xx) or why it failed.
    pub result: Result<u16, DeliveryError>,
}

/// The hooks of one phase that were called, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookOutcome {
    /// Which phase.
    pub phase: HookPhase,
    /// Each call made, in order (after a `Fail` failure, the hooks after it are not called).
    pub calls: Vec<HookCall>,
}

impl HookOutcome {
    /// The calls that failed under `Ignore` (for Events).
    pub fn ignored_failures(&self) -> impl Iterator<Item = &HookCall> {
        self.calls
            .iter()
            .filter(|call| call.result.is_err() && call.failure_policy == FailurePolicy::Ignore)
    }
}

/// A hook with `failurePolicy: Fail` failed: the phase stopped there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} hook `{hook}` failed: {error}", phase.as_str())]
pub struct HookFailed {
    /// Which phase.
    pub phase: HookPhase,
    /// The hook that failed.
    pub hook: String,
    /// Why.
    pub error: DeliveryError,
    /// Every call made, the failed one last.
    pub outcome: HookOutcome,
}

impl fmt::Display for HookCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.result {
            Ok(status) => write!(f, "hook `{}` answered {status}", self.hook),
            Err(error) => write!(f, "hook `{}` failed: {error}", self.hook),
        }
    }
}

impl Notifier {
    /// Calls `hooks` in order for `phase` with the hook body of `event`. Stops at the first
    /// failure of a `Fail` hook and returns [`HookFailed`]; failures of `Ignore` hooks are in
    /// the [`HookOutcome`]. Each call is logged without secrets.
    pub async fn run_hooks(
        &self,
        hooks: &[Hook],
        phase: HookPhase,
        event: &RunEvent,
    ) -> Result<HookOutcome, HookFailed> {
        let mut outcome = HookOutcome {
            phase,
            calls: Vec::new(),
        };
        for hook in hooks {
            let result = self.call(hook, phase, event).await;
            let call = HookCall {
                hook: hook.name.clone(),
                failure_policy: hook.failure_policy,
                result,
            };
            let object = event.object();
            match &call.result {
                Ok(_) => tracing::info!(object, phase = phase.as_str(), "{call}"),
                Err(error) => tracing::warn!(
                    object,
                    phase = phase.as_str(),
                    error_kind = error.kind(),
                    failure_policy = ?hook.failure_policy,
                    "{call}"
                ),
            }
            let stop = match (&call.result, hook.failure_policy) {
                (Err(error), FailurePolicy::Fail) => Some(error.clone()),
                _ => None,
            };
            outcome.calls.push(call);
            if let Some(error) = stop {
                return Err(HookFailed {
                    phase,
                    hook: hook.name.clone(),
                    error,
                    outcome,
                });
            }
        }
        Ok(outcome)
    }

    async fn call(
        &self,
        hook: &Hook,
        phase: HookPhase,
        event: &RunEvent,
    ) -> Result<u16, DeliveryError> {
        let headers = hook.headers.to_header_map()?;
        let body = event.to_hook_json(phase.as_str(), &hook.name);
        let (method, body) = match hook.method {
            HookMethod::Get => (Method::GET, None),
            HookMethod::Post => (Method::POST, Some(&body)),
            HookMethod::Put => (Method::PUT, Some(&body)),
        };
        let mut secrets = hook.url.secret_parts();
        secrets.extend(hook.headers.secret_parts());
        let request = HttpRequest {
            method,
            url: hook.url.expose(),
            endpoint: hook.url.redacted(),
            headers,
            body,
            secrets: &secrets,
        };
        send_once(&self.client, &request, hook.timeout)
            .await
            .map_err(|failure| failure.error)
    }
}
