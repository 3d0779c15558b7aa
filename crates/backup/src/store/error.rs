//! Store errors that keep their kind, so a caller can tell a refused request (fix the
//! credentials or the bucket policy: retrying will not help) from a store that is down (retry
//! later, and stop starting runs until it answers), from a missing object.
//!
//! The kind comes from `object_store`'s own variants (`NotFound`, `PermissionDenied`, …),
//! from our GCS JSON client's HTTP status, and from the transport error under a `Generic`
//! one (connection refused, timeout). `object_store` keeps the type that carries an answer's
//! status crate-private, so for its `Generic` errors the status is read from its message
//! (`… status code: 503 …`) as the last resort.

use serde::{Deserialize, Serialize};

/// What kind of failure a store reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StoreErrorKind {
    /// The object (or bucket) does not exist: HTTP 404.
    NotFound,
    /// The store refused the credentials or the request: HTTP 401 or 403, or a local
    /// permission error. Retrying will not help; the credentials or the policy must change.
    Forbidden,
    /// The store could not be reached or is overloaded: connection refused or reset, a
    /// timeout, HTTP 408, 429 or 5xx. Retrying later may help.
    Unavailable,
    /// A conditional request failed: the object exists (create-only write), changed, or
    /// another writer holds it: HTTP 409 or 412.
    Conflict,
    /// The request cannot be made as configured: an invalid path or configuration key, or
    /// HTTP 400 (e.g. a bucket name the store rejects).
    InvalidConfig,
    /// Anything else (an unexpected answer, a local I/O failure).
    Other,
}

impl StoreErrorKind {
    /// The kind an HTTP status means (`None` for statuses that are not errors).
    pub fn from_http_status(status: u16) -> Option<Self> {
        Some(match status {
            401 | 403 => Self::Forbidden,
            404 | 410 => Self::NotFound,
            409 | 412 => Self::Conflict,
            408 | 429 | 500..=599 => Self::Unavailable,
            400 => Self::InvalidConfig,
            402..=499 => Self::Other,
            _ => return None,
        })
    }

    /// Whether trying the same request again later may succeed.
    pub fn is_transient(self) -> bool {
        self == Self::Unavailable
    }

    /// The kind's name as it appears in results (`"Forbidden"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "NotFound",
            Self::Forbidden => "Forbidden",
            Self::Unavailable => "Unavailable",
            Self::Conflict => "Conflict",
            Self::InvalidConfig => "InvalidConfig",
            Self::Other => "Other",
        }
    }
}

/// A failed store operation: its kind and a message naming the object and the store's answer
/// (never a credential, a signed URL or a session URI).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    /// What kind of failure.
    pub kind: StoreErrorKind,
    /// What failed, for people.
    pub message: String,
}

impl StoreError {
    /// An error of `kind`.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl From<object_store::Error> for StoreError {
    fn from(error: object_store::Error) -> Self {
        let kind = classify(&error);
        StoreError::new(kind, error.to_string())
    }
}

/// The kind of an `object_store` error.
pub fn classify(error: &object_store::Error) -> StoreErrorKind {
    use object_store::Error as E;
    match error {
        E::NotFound { .. } => StoreErrorKind::NotFound,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => StoreErrorKind::Forbidden,
        E::AlreadyExists { .. } | E::Precondition { .. } | E::NotModified { .. } => {
            StoreErrorKind::Conflict
        }
        E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => StoreErrorKind::InvalidConfig,
        E::Generic { source, .. } => classify_source(source.as_ref()),
        _ => StoreErrorKind::Other,
    }
}

/// The kind of the first error in `error`'s source chain that tells one.
fn classify_source(error: &(dyn std::error::Error + 'static)) -> StoreErrorKind {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(kind) = kind_of(error) {
            return kind;
        }
        current = error.source();
    }
    status_in_message(&error.to_string())
        .and_then(StoreErrorKind::from_http_status)
        .unwrap_or(StoreErrorKind::Other)
}

/// The kind one error in a chain tells, if it is of a type that carries one.
fn kind_of(error: &(dyn std::error::Error + 'static)) -> Option<StoreErrorKind> {
    if let Some(api) = error.downcast_ref::<super::gcs::error::ApiError>() {
        return Some(api.kind());
    }
    if let Some(http) = error.downcast_ref::<object_store::client::HttpError>() {
        use object_store::client::HttpErrorKind as K;
        return match http.kind() {
            K::Connect | K::Request | K::Timeout | K::Interrupted => {
                Some(StoreErrorKind::Unavailable)
            }
            _ => None,
        };
    }
    if let Some(io) = error.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind as K;
        return match io.kind() {
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::TimedOut
            | K::HostUnreachable
            | K::NetworkUnreachable => Some(StoreErrorKind::Unavailable),
            K::PermissionDenied => Some(StoreErrorKind::Forbidden),
            K::NotFound => Some(StoreErrorKind::NotFound),
            _ => None,
        };
    }
    if let Some(http) = error.downcast_ref::<reqwest::Error>() {
        if let Some(status) = http.status() {
            return StoreErrorKind::from_http_status(status.as_u16());
        }
        if http.is_connect() || http.is_timeout() {
            return Some(StoreErrorKind::Unavailable);
        }
    }
    None
}

/// The HTTP status in `object_store`'s "… status code: 503 Service Unavailable …".
fn status_in_message(message: &str) -> Option<u16> {
    let (_, after) = message.split_once("status code: ")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        for (status, kind) in [
            (401, StoreErrorKind::Forbidden),
            (403, StoreErrorKind::Forbidden),
            (404, StoreErrorKind::NotFound),
            (409, StoreErrorKind::Conflict),
            (412, StoreErrorKind::Conflict),
            (408, StoreErrorKind::Unavailable),
            (429, StoreErrorKind::Unavailable),
            (500, StoreErrorKind::Unavailable),
            (503, StoreErrorKind::Unavailable),
            (400, StoreErrorKind::InvalidConfig),
            (418, StoreErrorKind::Other),
        ] {
            assert_eq!(
                StoreErrorKind::from_http_status(status),
                Some(kind),
                "{status}"
            );
        }
        assert_eq!(StoreErrorKind::from_http_status(200), None);
        assert_eq!(StoreErrorKind::from_http_status(304), None);
    }

    #[test]
    fn object_store_variants_keep_their_kind() {
        let source = || Box::new(std::io::Error::other("x")) as _;
        let path = || "a/b".to_string();
        use object_store::Error as E;
        for (error, kind) in [
            (
                E::NotFound {
                    path: path(),
                    source: source(),
                },
                StoreErrorKind::NotFound,
            ),
            (
                E::PermissionDenied {
                    path: path(),
                    source: source(),
                },
                StoreErrorKind::Forbidden,
            ),
            (
                E::Unauthenticated {
                    path: path(),
                    source: source(),
                },
                StoreErrorKind::Forbidden,
            ),
            (
                E::AlreadyExists {
                    path: path(),
                    source: source(),
                },
                StoreErrorKind::Conflict,
            ),
            (
                E::Precondition {
                    path: path(),
                    source: source(),
                },
                StoreErrorKind::Conflict,
            ),
            (
                E::Generic {
                    store: "S3",
                    source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
                },
                StoreErrorKind::Unavailable,
            ),
            (
                E::Generic {
                    store: "S3",
                    source: source(),
                },
                StoreErrorKind::Other,
            ),
        ] {
            assert_eq!(StoreError::from(error).kind, kind);
        }
    }

    #[test]
    fn a_status_is_found_in_object_store_messages() {
        assert_eq!(
            status_in_message(
                "Error performing PUT in 1s - Server returned non-2xx status code: 503 Service \
                 Unavailable: slow down"
            ),
            Some(503)
        );
        assert_eq!(status_in_message("HTTP error: connection refused"), None);
    }
}
