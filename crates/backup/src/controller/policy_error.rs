//! Why a VerticeBackup's reconcile failed, by kind: the runtime retries transient failures
//! with backoff and reports the user's own mistakes without retrying.

use vertice_core::error::{ErrorClass, ReconcileError};

use crate::api::schedule::ScheduleError;
use crate::error::BackupError;

use super::store_access::StoreAccessError;

/// A VerticeBackup reconcile's failure.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// `schedule`, `timeZone` or the verification schedule cannot be used (admission should
    /// have refused it; a CRD skew may let one through).
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// The Kubernetes API failed.
    #[error("talking to the Kubernetes API failed")]
    Kube(#[from] kube::Error),
    /// The store could not be opened (for `deletionPolicy: Delete`).
    #[error(transparent)]
    StoreAccess(#[from] StoreAccessError),
    /// The store failed while deleting this policy's backups.
    #[error("the store failed: {0}")]
    Store(#[from] BackupError),
}

impl ReconcileError for PolicyError {
    fn reason(&self) -> &'static str {
        match self {
            Self::Schedule(_) => "InvalidSchedule",
            Self::Kube(_) => "KubernetesApiError",
            Self::StoreAccess(StoreAccessError::LocalStore) => "LocalStoreUnreachable",
            Self::StoreAccess(_) => "StoreCredentialsUnavailable",
            Self::Store(_) => "StoreFailed",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            Self::Schedule(_) | Self::StoreAccess(StoreAccessError::LocalStore) => {
                ErrorClass::Permanent
            }
            Self::Kube(_) => ErrorClass::Transient,
            Self::StoreAccess(_) | Self::Store(_) => ErrorClass::Wait,
        }
    }
}
