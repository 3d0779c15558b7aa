//! Resolved secret values of channels and hooks, wrapped so no message can show them: a URL
//! that carries a token ([`SecretUrl`]: only scheme and host are ever shown) and headers read
//! from a Secret ([`SecretHeaders`]: only names are ever shown).

use std::fmt;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::error::ConfigError;
use crate::source::Secret;

/// A URL that is a credential (Slack and webhook URLs carry their token in the path or query).
/// `Debug` and [`SecretUrl::redacted`] show `scheme://host[:port]` only.
#[derive(Clone)]
pub struct SecretUrl {
    url: Url,
    /// The value as given (it may differ from the normalised `url`).
    raw: String,
    redacted: String,
}

impl SecretUrl {
    /// Parses an `http` or `https` URL. Errors name the `field` (e.g. `webhook URL`), never
    /// the value.
    pub fn parse(value: &Secret, field: &str) -> Result<Self, ConfigError> {
        let url = Url::parse(value.expose().trim()).map_err(|error| ConfigError::InvalidUrl {
            field: field.to_owned(),
            reason: error.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::InvalidUrl {
                field: field.to_owned(),
                reason: format!("scheme `{}` is not http or https", url.scheme()),
            });
        }
        let Some(host) = url.host_str() else {
            return Err(ConfigError::InvalidUrl {
                field: field.to_owned(),
                reason: "it has no host".to_owned(),
            });
        };
        let redacted = match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        };
        Ok(Self {
            url,
            raw: value.expose().trim().to_owned(),
            redacted,
        })
    }

    /// `scheme://host[:port]`: the only part of the URL a message may show.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The URL itself, for the request only.
    pub(crate) fn expose(&self) -> &Url {
        &self.url
    }

    /// The parts of the URL that grant access (the whole URL, its path, query and user
    /// info), for [`scrub`].
    pub(crate) fn secret_parts(&self) -> Vec<String> {
        let mut parts = vec![self.url.as_str().to_owned(), self.raw.clone()];
        if self.url.path().len() > 1 {
            parts.push(self.url.path().to_owned());
        }
        parts.extend(self.url.query().map(str::to_owned));
        if !self.url.username().is_empty() {
            parts.push(self.url.username().to_owned());
        }
        parts.extend(self.url.password().map(str::to_owned));
        parts
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.redacted)
    }
}

/// Request headers read from a Secret: key = header name, value = header value. `Debug` shows
/// the names only.
#[derive(Clone, Default)]
pub struct SecretHeaders {
    headers: Vec<(String, Secret)>,
}

impl SecretHeaders {
    /// Headers from (name, value) pairs. Names and values are checked when a request is built
    /// ([`Self::to_header_map`]).
    pub fn new(headers: Vec<(String, Secret)>) -> Self {
        Self { headers }
    }

    /// The header names, for messages.
    pub fn names(&self) -> Vec<&str> {
        self.headers.iter().map(|(name, _)| name.as_str()).collect()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// The headers for a request, every value marked sensitive (HTTP/2 does not index it and
    /// hyper's debug output hides it). A name that is not a valid header name, or a value with
    /// a line break or other control character, is [`ConfigError::InvalidHeader`] naming the
    /// header only.
    pub fn to_header_map(&self) -> Result<HeaderMap, ConfigError> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            let invalid = |reason: &str| ConfigError::InvalidHeader {
                name: name.clone(),
                reason: reason.to_owned(),
            };
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid("not a valid header name"))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| invalid("the value has a line break or control character"))?;
            value.set_sensitive(true);
            map.append(header, value);
        }
        Ok(map)
    }

    /// The values, for [`scrub`].
    pub(crate) fn secret_parts(&self) -> Vec<String> {
        self.headers
            .iter()
            .map(|(_, value)| value.expose().to_owned())
            .collect()
    }
}

impl fmt::Debug for SecretHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretHeaders")
            .field("names", &self.names())
            .finish()
    }
}

/// Replaces every secret (of 4 characters or more: shorter ones would mask ordinary words) in
/// `text` by `***`: the last guard on text that came from elsewhere (an answer's body, an I/O
/// error), in case it echoes what we sent.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| s.len() >= 4).collect();
    // Longest first: a URL contains its own path.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        text = text.replace(secret.as_str(), "***");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_show_scheme_and_host_only() {
        let cases = [
            (
                "https://hooks.slack.com/services/T0/B0/s3cr3t",
                "https://hooks.slack.com",
            ),
            (
                "http://127.0.0.1:8080/hook?token=abc",
                "http://127.0.0.1:8080",
            ),
            ("https://user:pw@example.com/x", "https://example.com"),
        ];
        for (raw, shown) in cases {
            let url = SecretUrl::parse(&Secret::new(raw), "webhook URL").unwrap();
            assert_eq!(url.redacted(), shown);
            assert_eq!(format!("{url:?}"), format!("SecretUrl({shown})"));
        }
    }

    #[test]
    fn bad_urls_are_refused_without_showing_them() {
        for raw in [
            "not a url s3cr3t",
            "ftp://example.com/s3cr3t",
            "mailto:s3cr3t@x",
            "",
        ] {
            let error = SecretUrl::parse(&Secret::new(raw), "webhook URL").unwrap_err();
            let text = error.to_string();
            assert!(text.contains("webhook URL"), "{text}");
            assert!(raw.is_empty() || !text.contains("s3cr3t"), "{text}");
        }
    }

    #[test]
    fn headers_hide_values_and_refuse_bad_ones_by_name() {
        let good = SecretHeaders::new(vec![("Authorization".into(), Secret::new("Bearer tok3n"))]);
        assert!(!format!("{good:?}").contains("tok3n"));
        let map = good.to_header_map().unwrap();
        assert!(map["authorization"].is_sensitive());
        for (name, value) in [("bad name", "v"), ("X-Ok", "line\nbreak-tok3n")] {
            let bad = SecretHeaders::new(vec![(name.into(), Secret::new(value))]);
            let text = bad.to_header_map().unwrap_err().to_string();
            assert!(text.contains(name), "{text}");
            assert!(!text.contains("tok3n"), "{text}");
        }
    }

    #[test]
    fn scrub_masks_every_secret_longest_first() {
        let secrets = vec![
            "http://h/p/tok".to_owned(),
            "/p/tok".to_owned(),
            "ab".to_owned(),
        ];
        assert_eq!(
            scrub("sent to http://h/p/tok and /p/tok; ab stays", &secrets),
            "sent to *** and ***; ab stays"
        );
    }
}
