//! How an operator's reconcile error tells the runtime what to do next, and the runtime's own
//! error type that wraps it.
//!
//! Every operator keeps its own thiserror enum (one variant per failure class) and implements
//! [`ReconcileError`] for it. The runtime never inspects the variants itself: `reason()` is the
//! one key used for the condition reason, the Event reason and the metric label, and `class()`
//! decides between retrying with backoff and waiting for the user to change the spec.
//!
//! [`is_not_found`] and [`is_conflict`] name the two API answers operators handle as outcomes,
//! not failures: an object already gone, a name already taken or a version already moved on.

use std::error::Error as StdError;

/// Whether the API server answered 404 Not Found: the object is gone.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Whether the API server refused a write with 409 Conflict: a failed resourceVersion
/// precondition, or (on create) a name that exists already.
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// What the runtime does after a reconcile failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Something outside the user's control failed (API conflict, network, a server restarting):
    /// retry with per-object exponential backoff. `Ready` is left as it was, because a blip
    /// should not flap the user-visible state.
    Transient,
    /// The user's input is wrong (invalid spec, conflicting fields): write `Ready=False` with the
    /// reason and message, publish a Warning event, and do not retry until the object changes.
    /// Retrying cannot help, so doing it would only be a hot loop.
    Permanent,
    /// Something the object depends on is not there yet (a referenced Secret, a database that
    /// is still starting): write `Ready=False` saying what is missing and retry with backoff,
    /// because the dependency may appear without the object itself changing.
    Wait,
}

impl ErrorClass {
    /// The `result` label of `vertice_reconcile_total` for a failure of this class.
    pub fn result_label(self) -> &'static str {
        match self {
            Self::Transient => "error",
            Self::Permanent => "invalid",
            Self::Wait => "waiting",
        }
    }
}

/// Implemented by each operator's reconcile error so the runtime can classify it.
///
/// ```
/// use vertice_core::error::{ErrorClass, ReconcileError};
///
/// #[derive(Debug, thiserror::Error)]
/// enum Error {
///     #[error("spec.schedule is not a cron expression: {0}")]
///     InvalidSchedule(String),
///     #[error("Secret {0} does not exist yet")]
///     SecretMissing(String),
///     #[error("talking to the Kubernetes API failed")]
///     Kube(#[source] kube::Error),
/// }
///
/// impl ReconcileError for Error {
///     fn reason(&self) -> &'static str {
///         match self {
///             Self::InvalidSchedule(_) => "InvalidSchedule",
///             Self::SecretMissing(_) => "SecretMissing",
///             Self::Kube(_) => "KubernetesApiError",
///         }
///     }
///     fn class(&self) -> ErrorClass {
///         match self {
///             Self::InvalidSchedule(_) => ErrorClass::Permanent,
///             Self::SecretMissing(_) => ErrorClass::Wait,
///             Self::Kube(_) => ErrorClass::Transient,
///         }
///     }
/// }
/// # let _ = Error::SecretMissing("x".into()).reason();
/// ```
pub trait ReconcileError: StdError + Send + Sync + 'static {
    /// A CamelCase reason: used as condition reason, Event reason and the `reason` metric label.
    /// It must come from a small fixed set (derive it from the variant, never from data), so the
    /// metric stays bounded.
    fn reason(&self) -> &'static str;

    /// Whether to retry, report and wait, or report and retry.
    fn class(&self) -> ErrorClass;
}

/// Errors the runtime itself returns from one reconcile pass, wrapping the operator's error.
#[derive(Debug, thiserror::Error)]
pub enum Error<E: ReconcileError> {
    /// The operator's apply or cleanup failed.
    #[error(transparent)]
    Reconcile(E),
    /// Adding or removing our finalizer failed. kube's finalizer error is generic over the error
    /// of the apply/cleanup it ran, i.e. over this very type; its apply/cleanup variants are
    /// unwrapped and the rest is kept here, which keeps the type non-recursive.
    #[error("finalizer: {0}")]
    Finalizer(#[source] FinalizerError),
    /// Writing the status subresource failed.
    #[error("writing status failed: {0}")]
    Status(#[source] kube::Error),
    /// Another request to the Kubernetes API failed.
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[source] kube::Error),
    /// The object could not be deserialized into the operator's type (for example a CRD version
    /// skew). Reported like a permanent error: waiting for the object to change is all we can do.
    #[error("the object could not be read: {0}")]
    InvalidObject(String),
}

impl<E: ReconcileError> Error<E> {
    /// The reason key (condition, Event, metric label) of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Reconcile(err) => err.reason(),
            Self::Finalizer(_) => "FinalizerUpdateFailed",
            Self::Status(_) => "StatusUpdateFailed",
            Self::Kube(_) => "KubernetesApiError",
            Self::InvalidObject(_) => "InvalidSpec",
        }
    }

    /// How the runtime reacts to this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Reconcile(err) => err.class(),
            Self::Finalizer(_) | Self::Status(_) | Self::Kube(_) => ErrorClass::Transient,
            Self::InvalidObject(_) => ErrorClass::Permanent,
        }
    }
}

/// Failures of the finalizer bookkeeping itself (not of the cleanup it runs).
#[derive(Debug, thiserror::Error)]
pub enum FinalizerError {
    /// Adding the finalizer failed.
    #[error("adding the finalizer failed: {0}")]
    Add(#[source] kube::Error),
    /// Removing the finalizer failed.
    #[error("removing the finalizer failed: {0}")]
    Remove(#[source] kube::Error),
    /// The object has no name or the finalizer name is unusable.
    #[error("{0}")]
    Invalid(String),
}

/// Maximum size of an Event note accepted by the events.k8s.io API.
pub const MAX_NOTE_BYTES: usize = 1024;

/// The error and all its sources joined with `: `, cut to at most `max_bytes` bytes (on a char
/// boundary, with a trailing `…` when cut). Users read this in `kubectl describe`, so the whole
/// chain matters more than the outermost message.
pub fn error_chain(err: &(dyn StdError + 'static), max_bytes: usize) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // `#[error(transparent)]` and "{0}"-style messages repeat their source; skip the echo.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    truncate(text, max_bytes)
}

/// Cuts `text` to at most `max_bytes` bytes without splitting a UTF-8 character.
pub fn truncate(mut text: String, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text;
    }
    const ELLIPSIS: &str = "…";
    let mut cut = max_bytes.saturating_sub(ELLIPSIS.len());
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push_str(ELLIPSIS);
    text
}

/// Why an operator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// Logging could not be set up.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// No Kubernetes client could be built.
    #[error(transparent)]
    Client(#[from] crate::cli::ClientError),
    /// The signal handlers could not be installed.
    #[error("installing signal handlers failed: {0}")]
    Signals(#[source] std::io::Error),
    /// The admin server could not bind its address.
    #[error("the admin server could not listen: {0}")]
    Admin(#[source] std::io::Error),
    /// Leader election is misconfigured.
    #[error(transparent)]
    Leader(#[from] crate::leader::LeaderError),
    /// The kind of a controller cannot be listed: usually its CRD is not installed (or RBAC
    /// forbids listing it).
    #[error(
        "controller {controller} cannot list its kind (is the CRD installed and RBAC granted?): {source}"
    )]
    CrdMissing {
        /// The controller name.
        controller: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Another replica holds the Lease now; this process must restart as a standby.
    #[error("leadership lost: another replica may be acting now, exiting")]
    LeadershipLost,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer failed")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner failed")]
    struct Inner;

    #[test]
    fn chain_joins_all_sources() {
        assert_eq!(
            error_chain(&Outer(Inner), 1024),
            "outer failed: inner failed"
        );
    }

    #[test]
    fn chain_skips_messages_that_already_contain_the_source() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapper: {0}")]
        struct Echo(#[source] Inner);
        assert_eq!(error_chain(&Echo(Inner), 1024), "wrapper: inner failed");
    }

    #[test]
    fn truncation_respects_char_boundaries_and_limit() {
        let text = "é".repeat(1000); // 2000 bytes
        let cut = truncate(text, MAX_NOTE_BYTES);
        assert!(cut.len() <= MAX_NOTE_BYTES);
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short".into(), 10), "short");
    }
}
