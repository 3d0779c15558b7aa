//! A failed request of the JSON upload API, and how it becomes an `object_store` error.
//! Messages name the object, the HTTP status and the server's own message — never a token,
//! and never a resumable session URI (whoever holds one can write the object).

use std::fmt;

use object_store::path::Path;
use reqwest::{Response, StatusCode};

/// At most this much of a server's error message is kept (some servers answer with pages).
const MAX_DETAIL_CHARS: usize = 300;

/// A failed JSON API request.
#[derive(Debug)]
pub(crate) struct ApiError {
    /// The HTTP status, or `None` when no answer came (connection, timeout) or the answer
    /// broke the protocol.
    status: Option<StatusCode>,
    /// Whether trying again may help.
    transient: bool,
    message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{}: HTTP {status}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// An answer that breaks the protocol, or a local problem: trying again will not help.
    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        ApiError {
            status: None,
            transient: false,
            message: message.into(),
        }
    }

    /// No answer: the connection failed or timed out.
    pub(crate) fn transport(what: &str, error: reqwest::Error) -> Self {
        // Without the URL: a session URI is a write capability.
        let error = error.without_url();
        let mut message = format!("{what}: {error}");
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        ApiError {
            status: None,
            transient: true,
            message,
        }
    }

    /// An answer with an error status; keeps the server's message.
    pub(crate) async fn from_response(what: &str, response: Response) -> Self {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        ApiError {
            status: Some(status),
            transient: is_transient_status(status),
            message: with_detail(what, &body),
        }
    }

    /// Whether trying again may help.
    pub(crate) fn is_transient(&self) -> bool {
        self.transient
    }

    /// What kind of failure: by the answer's status, else unavailable when no answer came
    /// (transport) and other when the answer broke the protocol.
    pub(crate) fn kind(&self) -> crate::store::StoreErrorKind {
        use crate::store::StoreErrorKind;
        match self.status {
            Some(status) => {
                StoreErrorKind::from_http_status(status.as_u16()).unwrap_or(StoreErrorKind::Other)
            }
            None if self.transient => StoreErrorKind::Unavailable,
            None => StoreErrorKind::Other,
        }
    }

    /// The `object_store` error for an operation on `path`. `create` says the write was
    /// refused to overwrite (`ifGenerationMatch=0`), so a failed precondition means the
    /// object exists.
    pub(crate) fn into_store_error(self, path: &Path, create: bool) -> object_store::Error {
        let path = path.to_string();
        match self.status.map(|status| status.as_u16()) {
            Some(404) => object_store::Error::NotFound {
                path,
                source: Box::new(self),
            },
            Some(412) if create => object_store::Error::AlreadyExists {
                path,
                source: Box::new(self),
            },
            Some(412) => object_store::Error::Precondition {
                path,
                source: Box::new(self),
            },
            Some(401) => object_store::Error::Unauthenticated {
                path,
                source: Box::new(self),
            },
            Some(403) => object_store::Error::PermissionDenied {
                path,
                source: Box::new(self),
            },
            _ => object_store::Error::Generic {
                store: "GCS",
                source: Box::new(self),
            },
        }
    }
}

/// Statuses Google documents as worth retrying.
fn is_transient_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// `what`, followed by the server's message: `error.message` of Google's
/// `{"error": {"code": …, "message": …}}`, else the body's text, cut short.
fn with_detail(what: &str, body: &str) -> String {
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|json| {
            json.pointer("/error/message")
                .and_then(|message| message.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.to_string());
    let detail: String = detail.trim().chars().take(MAX_DETAIL_CHARS).collect();
    if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16) -> ApiError {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT);
        ApiError {
            status: Some(status),
            transient: is_transient_status(status),
            message: "uploading a/b".into(),
        }
    }

    #[test]
    fn statuses_map_to_object_store_errors() {
        let path = Path::from("a/b");
        assert!(matches!(
            answer(404).into_store_error(&path, false),
            object_store::Error::NotFound { .. }
        ));
        assert!(matches!(
            answer(412).into_store_error(&path, true),
            object_store::Error::AlreadyExists { .. }
        ));
        assert!(matches!(
            answer(412).into_store_error(&path, false),
            object_store::Error::Precondition { .. }
        ));
        assert!(matches!(
            answer(401).into_store_error(&path, false),
            object_store::Error::Unauthenticated { .. }
        ));
        assert!(matches!(
            answer(403).into_store_error(&path, true),
            object_store::Error::PermissionDenied { .. }
        ));
        assert!(matches!(
            answer(400).into_store_error(&path, true),
            object_store::Error::Generic { .. }
        ));
    }

    #[test]
    fn only_documented_statuses_are_transient() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(answer(status).is_transient(), "{status}");
        }
        for status in [400, 401, 403, 404, 410, 412] {
            assert!(!answer(status).is_transient(), "{status}");
        }
        assert!(!ApiError::protocol("bad answer").is_transient());
    }

    #[test]
    fn details_come_from_google_errors_or_the_body() {
        let google = r#"{"error": {"code": 412, "message": "Precondition failed"}}"#;
        assert_eq!(
            with_detail("uploading x", google),
            "uploading x: Precondition failed"
        );
        assert_eq!(
            with_detail("uploading x", " not json \n"),
            "uploading x: not json"
        );
        assert_eq!(with_detail("uploading x", ""), "uploading x");
        let long = "e".repeat(5000);
        assert_eq!(
            with_detail("w", &long).len(),
            "w: ".len() + MAX_DETAIL_CHARS
        );
    }
}
