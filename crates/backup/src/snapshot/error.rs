//! Snapshot errors that keep their kind, like the store's (see `store/error.rs`): refused
//! credentials (fix them; retrying will not help) are told from an API that is down or
//! throttling (retry later), from a snapshot RDS reports `failed`, from one that did not become
//! `available` in time.

use aws_sdk_rds::config::http::HttpResponse;
use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};
use serde::{Deserialize, Serialize};

/// What kind of failure a snapshot had.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SnapshotErrorKind {
    /// The credentials were refused or lack a permission (HTTP 401/403, `InvalidClientTokenId`,
    /// `SignatureDoesNotMatch`, `AccessDenied`, …).
    Forbidden,
    /// The API could not be reached, timed out, throttled (HTTP 429, `Throttling`) or failed
    /// (5xx). Retrying later may help.
    Unavailable,
    /// The DB instance (or the snapshot) does not exist.
    NotFound,
    /// The request cannot be made as configured (a bad identifier, tag or endpoint, an
    /// instance in a state that cannot be snapshotted, a snapshot quota reached).
    InvalidConfig,
    /// RDS reported the snapshot `failed`.
    Failed,
    /// The snapshot did not become `available` within the run's `timeoutSeconds`.
    TimedOut,
    /// Anything else (an unexpected answer).
    Other,
}

impl SnapshotErrorKind {
    /// Whether trying again later may succeed without a change.
    pub fn is_transient(self) -> bool {
        self == Self::Unavailable
    }

    /// The kind's name as it appears in results (`"Forbidden"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forbidden => "Forbidden",
            Self::Unavailable => "Unavailable",
            Self::NotFound => "NotFound",
            Self::InvalidConfig => "InvalidConfig",
            Self::Failed => "Failed",
            Self::TimedOut => "TimedOut",
            Self::Other => "Other",
        }
    }

    /// What the kind means for the user, for messages.
    fn meaning(self) -> &'static str {
        match self {
            Self::Forbidden => "the AWS credentials were refused or lack a permission",
            Self::Unavailable => "the RDS API is unreachable, throttling or failing; retry later",
            Self::NotFound => "no such DB instance or snapshot",
            Self::InvalidConfig => "the request cannot be made as configured",
            Self::Failed => "RDS reported the snapshot failed",
            Self::TimedOut => "the snapshot was not available in time",
            Self::Other => "unexpected answer from the RDS API",
        }
    }

    /// The kind an AWS error code means, if it tells one.
    fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "AccessDenied"
            | "AccessDeniedException"
            | "UnrecognizedClientException"
            | "AuthFailure"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "IncompleteSignature"
            | "MissingAuthenticationToken"
            | "InvalidAccessKeyId"
            | "NotAuthorized"
            | "KMSKeyNotAccessibleFault" => Self::Forbidden,
            "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "ServiceUnavailable"
            | "InternalFailure"
            | "InternalError" => Self::Unavailable,
            "DBInstanceNotFound"
            | "DBInstanceNotFoundFault"
            | "DBSnapshotNotFound"
            | "DBSnapshotNotFoundFault" => Self::NotFound,
            "InvalidDBInstanceState"
            | "InvalidDBInstanceStateFault"
            | "InvalidDBSnapshotState"
            | "InvalidDBSnapshotStateFault"
            | "DBSnapshotAlreadyExists"
            | "DBSnapshotAlreadyExistsFault"
            | "SnapshotQuotaExceeded"
            | "SnapshotQuotaExceededFault"
            | "InvalidParameterValue"
            | "InvalidParameterCombination"
            | "MissingParameter"
            | "ValidationError" => Self::InvalidConfig,
            _ => return None,
        })
    }

    /// The kind an HTTP status means, if it is an error.
    fn from_status(status: u16) -> Option<Self> {
        Some(match status {
            401 | 403 => Self::Forbidden,
            404 => Self::NotFound,
            408 | 429 | 500..=599 => Self::Unavailable,
            400..=499 => Self::InvalidConfig,
            _ => return None,
        })
    }
}

/// A failed snapshot operation: its kind and a message naming the instance or snapshot and
/// the API's error code and message (never a credential).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SnapshotError {
    /// What kind of failure.
    pub kind: SnapshotErrorKind,
    /// What failed, for people.
    pub message: String,
}

impl SnapshotError {
    /// An error of `kind`.
    pub fn new(kind: SnapshotErrorKind, message: impl Into<String>) -> Self {
        SnapshotError {
            kind,
            message: message.into(),
        }
    }

    /// The error of an SDK call; `what` says what was asked (`creating a snapshot of db-1`).
    /// The kind comes from the AWS error code, else the HTTP status, else the transport
    /// (a request that was not answered is `Unavailable`).
    pub fn from_sdk<E>(what: &str, error: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match error {
            SdkError::ServiceError(service) => {
                let inner = service.err();
                let code = inner.code().unwrap_or("");
                let status = http_status(service.raw());
                let kind = SnapshotErrorKind::from_code(code)
                    .or_else(|| status.and_then(SnapshotErrorKind::from_status))
                    .unwrap_or(SnapshotErrorKind::Other);
                // Some answers (moto's among them) carry no code the SDK can read: the status
                // and the kind then say what happened.
                let mut told: Vec<String> = status
                    .map(|status| format!("HTTP {status}"))
                    .into_iter()
                    .collect();
                told.extend([code, inner.message().unwrap_or("")].map(str::to_owned));
                told.retain(|part| !part.is_empty());
                let told = told.join(" ");
                Self::new(kind, format!("{what}: {told} ({})", kind.meaning()))
            }
            SdkError::TimeoutError(_) => Self::new(
                SnapshotErrorKind::Unavailable,
                format!("{what}: the RDS API did not answer in time"),
            ),
            SdkError::DispatchFailure(failure) => Self::new(
                SnapshotErrorKind::Unavailable,
                format!(
                    "{what}: the RDS API could not be reached: {}",
                    failure
                        .as_connector_error()
                        .map_or_else(|| "no connection".to_owned(), |error| chain(error))
                ),
            ),
            SdkError::ResponseError(failure) => {
                let status = http_status(failure.raw());
                let kind = status
                    .and_then(SnapshotErrorKind::from_status)
                    .unwrap_or(SnapshotErrorKind::Unavailable);
                Self::new(kind, format!("{what}: unreadable answer from the RDS API"))
            }
            SdkError::ConstructionFailure(_) => Self::new(
                SnapshotErrorKind::InvalidConfig,
                format!("{what}: the request could not be built (check the endpoint and region)"),
            ),
            _ => Self::new(SnapshotErrorKind::Other, format!("{what}: {error}")),
        }
    }
}

/// The HTTP status of a raw response.
fn http_status(raw: &HttpResponse) -> Option<u16> {
    Some(raw.status().as_u16())
}

/// An error's message and its sources', joined (transport errors hide the cause inside).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::SnapshotErrorKind as K;

    #[test]
    fn codes_and_statuses_map_to_kinds() {
        for code in [
            "InvalidClientTokenId",
            "SignatureDoesNotMatch",
            "AccessDenied",
        ] {
            assert_eq!(K::from_code(code), Some(K::Forbidden), "{code}");
        }
        for code in ["Throttling", "RequestLimitExceeded", "InternalFailure"] {
            assert_eq!(K::from_code(code), Some(K::Unavailable), "{code}");
        }
        assert_eq!(K::from_code("DBInstanceNotFound"), Some(K::NotFound));
        assert_eq!(
            K::from_code("SnapshotQuotaExceeded"),
            Some(K::InvalidConfig)
        );
        assert_eq!(K::from_code("SomethingNew"), None);
        assert_eq!(K::from_status(403), Some(K::Forbidden));
        assert_eq!(K::from_status(429), Some(K::Unavailable));
        assert_eq!(K::from_status(503), Some(K::Unavailable));
        assert_eq!(K::from_status(400), Some(K::InvalidConfig));
        assert_eq!(K::from_status(200), None);
        assert!(K::Unavailable.is_transient());
        assert!(!K::Forbidden.is_transient() && !K::TimedOut.is_transient());
    }
}
