//! A notification channel with its secrets resolved ([`Channel`]), and how one is made from
//! its spec ([`Channel::resolve`]) and the Secrets the controller read ([`SecretData`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::email::{EmailChannel, SmtpCredentials};
use super::error::{ConfigError, ResolveError};
use super::pagerduty::PagerDutyChannel;
use super::secrets::{SecretHeaders, SecretUrl};
use super::slack::SlackChannel;
use super::webhook::WebhookChannel;
use crate::api::notify::{HttpHook, NotificationSpec, NotifyOn};
use crate::api::refs::{SecretKeyRef, SecretRef};
use crate::source::Secret;

/// Which service a channel talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    /// Slack incoming webhook.
    Slack,
    /// PagerDuty Events API v2.
    PagerDuty,
    /// Generic JSON webhook.
    Webhook,
    /// SMTP email.
    Email,
}

impl ChannelKind {
    /// `slack`, `pagerduty`, `webhook` or `email` (metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::PagerDuty => "pagerduty",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Email => "email",
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a channel sends.
#[derive(Clone, Debug)]
pub enum ChannelTarget {
    /// Slack.
    Slack(SlackChannel),
    /// PagerDuty.
    PagerDuty(PagerDutyChannel),
    /// Generic webhook.
    Webhook(WebhookChannel),
    /// Email.
    Email(EmailChannel),
}

/// One notification channel, ready to send: its spec with every secret read.
#[derive(Clone, Debug)]
pub struct Channel {
    /// The spec's `name` (Events and metrics).
    pub name: String,
    /// When it is used.
    pub on: NotifyOn,
    /// Where it sends.
    pub target: ChannelTarget,
}

impl Channel {
    /// Its kind.
    pub fn kind(&self) -> ChannelKind {
        match self.target {
            ChannelTarget::Slack(_) => ChannelKind::Slack,
            ChannelTarget::PagerDuty(_) => ChannelKind::PagerDuty,
            ChannelTarget::Webhook(_) => ChannelKind::Webhook,
            ChannelTarget::Email(_) => ChannelKind::Email,
        }
    }

    /// The channel `spec` describes, with its secrets from `secrets`. A spec that sets none of
    /// the four targets (the CRD's CEL rule forbids it) is [`ResolveError::Config`]; when it
    /// sets several, the first of slack, pagerDuty, webhook, email is used.
    pub fn resolve(spec: &NotificationSpec, secrets: &SecretData) -> Result<Self, ResolveError> {
        let purpose = format!("notification {}", spec.name);
        let config = |source: ConfigError| ResolveError::Config {
            purpose: purpose.clone(),
            source,
        };
        let target = if let Some(slack) = &spec.slack {
            let url = secrets.key(&slack.webhook_url_secret_ref, &purpose)?;
            ChannelTarget::Slack(SlackChannel {
                webhook_url: SecretUrl::parse(&url, "Slack webhook URL").map_err(config)?,
            })
        } else if let Some(pager_duty) = &spec.pager_duty {
            let key = secrets.key(&pager_duty.routing_key_secret_ref, &purpose)?;
            ChannelTarget::PagerDuty(PagerDutyChannel {
                routing_key: Secret::new(key.expose().trim()),
                severity: pager_duty.severity,
            })
        } else if let Some(webhook) = &spec.webhook {
            let url = secrets.key(&webhook.url_secret_ref, &purpose)?;
            ChannelTarget::Webhook(WebhookChannel {
                url: SecretUrl::parse(&url, "webhook URL").map_err(config)?,
                headers: secrets.headers(webhook.headers_secret_ref.as_ref(), &purpose)?,
            })
        } else if let Some(email) = &spec.email {
            let port = match email.smtp_port {
                None => None,
                Some(port) => Some(
                    u16::try_from(port)
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or(config(ConfigError::InvalidPort(port)))?,
                ),
            };
            let credentials = match &email.credentials_secret_ref {
                None => None,
                Some(reference) => {
                    let key = |key: &str| SecretKeyRef {
                        name: reference.name.clone(),
                        key: key.to_owned(),
                    };
                    Some(SmtpCredentials {
                        username: secrets.key(&key("username"), &purpose)?.expose().to_owned(),
                        password: secrets.key(&key("password"), &purpose)?,
                    })
                }
            };
            ChannelTarget::Email(EmailChannel {
                host: email.smtp_host.clone(),
                port,
                tls: email.tls,
                credentials,
                from: email.from.clone(),
                to: email.to.clone(),
            })
        } else {
            return Err(config(ConfigError::NoTarget));
        };
        Ok(Channel {
            name: spec.name.clone(),
            on: spec.on,
            target,
        })
    }
}

/// The names of the Secrets `notifications` and `hooks` refer to: the ones the controller
/// must read into a [`SecretData`].
pub fn referenced_secrets(
    notifications: &[NotificationSpec],
    hooks: &[HttpHook],
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for spec in notifications {
        if let Some(slack) = &spec.slack {
            names.insert(slack.webhook_url_secret_ref.name.clone());
        }
        if let Some(pager_duty) = &spec.pager_duty {
            names.insert(pager_duty.routing_key_secret_ref.name.clone());
        }
        if let Some(webhook) = &spec.webhook {
            names.insert(webhook.url_secret_ref.name.clone());
            names.extend(webhook.headers_secret_ref.iter().map(|r| r.name.clone()));
        }
        if let Some(email) = &spec.email {
            names.extend(email.credentials_secret_ref.iter().map(|r| r.name.clone()));
        }
    }
    for hook in hooks {
        names.extend(hook.headers_secret_ref.iter().map(|r| r.name.clone()));
    }
    names
}

/// The Secrets of one namespace the controller read: name → key → value. `Debug` shows names
/// and keys only.
#[derive(Clone, Default)]
pub struct SecretData {
    secrets: BTreeMap<String, BTreeMap<String, Secret>>,
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: BTreeMap<&String, Vec<&String>> = self
            .secrets
            .iter()
            .map(|(name, data)| (name, data.keys().collect()))
            .collect();
        f.debug_struct("SecretData").field("keys", &keys).finish()
    }
}

impl SecretData {
    /// No Secrets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) one key of one Secret.
    pub fn insert(&mut self, secret: &str, key: &str, value: Secret) {
        self.secrets
            .entry(secret.to_owned())
            .or_default()
            .insert(key.to_owned(), value);
    }

    /// Adds a Kubernetes Secret's `data` (an API read merges `stringData` into it). A value
    /// that is not UTF-8 is [`ResolveError::NotUtf8`].
    pub fn insert_secret(
        &mut self,
        secret: &k8s_openapi::api::core::v1::Secret,
    ) -> Result<(), ResolveError> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let data = self.secrets.entry(name.clone()).or_default();
        for (key, value) in secret.data.iter().flatten() {
            let text = String::from_utf8(value.0.clone()).map_err(|_| ResolveError::NotUtf8 {
                secret: name.clone(),
                key: key.clone(),
            })?;
            data.insert(key.clone(), Secret::new(text));
        }
        Ok(())
    }

    /// The value of `reference`, for `purpose` (named in the error).
    pub fn key(&self, reference: &SecretKeyRef, purpose: &str) -> Result<Secret, ResolveError> {
        let data = self.secret(&reference.name, purpose)?;
        data.get(&reference.key)
            .cloned()
            .ok_or_else(|| ResolveError::MissingKey {
                secret: reference.name.clone(),
                key: reference.key.clone(),
                purpose: purpose.to_owned(),
            })
    }

    /// Every key of `reference` as a header; no reference, no headers.
    pub fn headers(
        &self,
        reference: Option<&SecretRef>,
        purpose: &str,
    ) -> Result<SecretHeaders, ResolveError> {
        let Some(reference) = reference else {
            return Ok(SecretHeaders::default());
        };
        let data = self.secret(&reference.name, purpose)?;
        let headers = data
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let headers = SecretHeaders::new(headers);
        // Checked now, so a bad header is a configuration error before anything is sent.
        headers
            .to_header_map()
            .map_err(|source| ResolveError::Config {
                purpose: purpose.to_owned(),
                source,
            })?;
        Ok(headers)
    }

    fn secret(&self, name: &str, purpose: &str) -> Result<&BTreeMap<String, Secret>, ResolveError> {
        self.secrets
            .get(name)
            .ok_or_else(|| ResolveError::MissingSecret {
                secret: name.to_owned(),
                purpose: purpose.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret as KubeSecret;

    fn kube_secret(name: &str, data: &[(&str, &[u8])]) -> KubeSecret {
        KubeSecret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn kubernetes_secrets_are_read_as_text_and_binary_values_refused() {
        let mut data = SecretData::new();
        data.insert_secret(&kube_secret("hook", &[("url", b"https://h.example/t0k")]))
            .unwrap();
        let value = data.key(
            &SecretKeyRef {
                name: "hook".into(),
                key: "url".into(),
            },
            "test",
        );
        assert_eq!(value.unwrap().expose(), "https://h.example/t0k");
        assert!(!format!("{data:?}").contains("t0k"));
        let error = data
            .insert_secret(&kube_secret("bin", &[("key", &[0xff, 0xfe])]))
            .unwrap_err();
        assert_eq!(
            error,
            ResolveError::NotUtf8 {
                secret: "bin".into(),
                key: "key".into()
            }
        );
    }

    #[test]
    fn referenced_secrets_include_hook_headers() {
        let hook = HttpHook {
            name: "h".into(),
            url: "https://h.example/".into(),
            method: Default::default(),
            headers_secret_ref: Some(SecretRef {
                name: "hook-headers".into(),
            }),
            timeout_seconds: None,
            failure_policy: Default::default(),
        };
        let names = referenced_secrets(&[], &[hook]);
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["hook-headers"]);
    }
}
