//! What the operator tells the outside world: HTTP hooks around each run (e.g. put an app in
//! maintenance mode) and notifications after it (Slack, PagerDuty Events v2, a generic webhook,
//! email). Every URL or key that grants access is a Secret reference.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::refs::{SecretKeyRef, SecretRef};

/// What a failing hook does to the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FailurePolicy {
    /// The run fails (a pre hook: before anything is dumped).
    #[default]
    Fail,
    /// The failure is recorded in an Event and the run goes on.
    Ignore,
}

/// HTTP method of a hook.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HookMethod {
    /// GET.
    Get,
    /// POST (the default), with a JSON body describing the run.
    #[default]
    Post,
    /// PUT, with the same body.
    Put,
}

/// One HTTP call made by the operator before or after a run. A 2xx answer is success.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHook {
    /// A name for Events and status, unique within its list.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The URL to call (http or https).
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() in ['http', 'https']").message("must be an http:// or https:// URL"))]
    pub url: String,
    /// `GET`, `POST` (default) or `PUT`.
    #[serde(default)]
    pub method: HookMethod,
    /// A Secret whose keys are sent as request headers (e.g. `Authorization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_secret_ref: Option<SecretRef>,
    /// Seconds before the call is abandoned and counted as failed. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_seconds: Option<i32>,
    /// `Fail` (default): a failed call fails the run. `Ignore`: it is only reported.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
}

/// Hooks around each backup run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HooksSpec {
    /// Called in order before the dump starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub pre: Vec<HttpHook>,
    /// Called in order after the run ended (successful or not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub post: Vec<HttpHook>,
}

/// When a notification is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotifyOn {
    /// After a failed run (the default).
    #[default]
    Failure,
    /// After a successful run.
    Success,
    /// After every run.
    Always,
}

/// A Slack incoming webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlackSpec {
    /// The Secret key holding the webhook URL (it is a credential).
    pub webhook_url_secret_ref: SecretKeyRef,
}

/// PagerDuty event severity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PagerDutySeverity {
    /// critical.
    Critical,
    /// error (the default).
    #[default]
    Error,
    /// warning.
    Warning,
    /// info.
    Info,
}

/// A PagerDuty Events API v2 integration. Failures trigger an incident keyed by the
/// VerticeBackup; a later success resolves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PagerDutySpec {
    /// The Secret key holding the integration's routing key.
    pub routing_key_secret_ref: SecretKeyRef,
    /// Severity of triggered events. Default `error`.
    #[serde(default)]
    pub severity: PagerDutySeverity,
}

/// A generic webhook: a JSON POST describing the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    /// The Secret key holding the URL (URLs often carry tokens).
    pub url_secret_ref: SecretKeyRef,
    /// A Secret whose keys are sent as request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_secret_ref: Option<SecretRef>,
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (the default; port 587).
    #[default]
    StartTLS,
    /// TLS from the first byte (port 465).
    TLS,
    /// No TLS: only for relays on a trusted network.
    None,
}

/// Email through an SMTP server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailSpec {
    /// The SMTP server's host name.
    #[schemars(length(min = 1, max = 253))]
    pub smtp_host: String,
    /// The SMTP server's port. Default 587 (StartTLS), 465 (TLS) or 25 (None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub smtp_port: Option<i32>,
    /// `StartTLS` (default), `TLS` or `None`.
    #[serde(default)]
    pub tls: SmtpTls,
    /// A Secret with keys `username` and `password` for SMTP AUTH; none means no AUTH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// The sender address.
    #[schemars(length(min = 3, max = 254))]
    #[x_kube(validation = Rule::new("self.matches('^[^@ ]+@[^@ ]+$')").message("must be an email address"))]
    pub from: String,
    /// The recipients.
    #[schemars(
        length(min = 1, max = 50),
        inner(length(min = 3, max = 254), regex(pattern = "^[^@ ]+@[^@ ]+$"))
    )]
    pub to: Vec<String>,
}

/// One notification channel. Exactly one of `slack`, `pagerDuty`, `webhook`, `email`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.slack), has(self.pagerDuty), has(self.webhook), has(self.email)].filter(x, x).size() == 1").message("set exactly one of `slack`, `pagerDuty`, `webhook`, `email`"))]
pub struct NotificationSpec {
    /// A name for Events and metrics, unique within the list.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// `failure` (default), `success` or `always`.
    #[serde(default)]
    pub on: NotifyOn,
    /// Slack incoming webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackSpec>,
    /// PagerDuty Events v2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pager_duty: Option<PagerDutySpec>,
    /// A generic JSON webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSpec>,
    /// Email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSpec>,
}
