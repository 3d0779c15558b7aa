//! The `verify` action: re-read a backup and check every hash (and, with a key, every tag)
//! without restoring it; a pass is recorded in the store, where retention reads it.

use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::restore::spec_name;
use super::spec::{EncryptionSpec, RunSpec};
use crate::backup::default_parallelism;
use crate::error::BackupError;
use crate::progress::Progress;
use crate::restore::VerifiedBackup;
use crate::store::BackupStore;
use crate::verify::{OpenedBackup, VerifyReport};

/// One verification to run.
#[derive(Clone, Debug)]
pub struct VerifyRun {
    /// The backup to verify.
    pub name: String,
    /// Keys that may open it.
    pub encryption: EncryptionSpec,
    /// Chunks decoded at once; `None` is the number of CPUs.
    pub parallelism: Option<usize>,
    /// Record a pass in the store (`verification.json`, read by `requireVerified`).
    pub record: bool,
}

impl VerifyRun {
    /// The verification a spec describes (recorded). Errors: `Config` without a name.
    pub fn from_spec(spec: &RunSpec) -> Result<Self, BackupError> {
        Ok(VerifyRun {
            name: spec_name(spec)?,
            encryption: spec.encryption.clone(),
            parallelism: spec.parallelism,
            record: true,
        })
    }
}

/// Verifies a backup. Progress bytes are stored bytes read. When `cancel` fires it stops
/// with `Cancelled` and records nothing.
///
/// Errors: `NotFound`, `Integrity`, `WrongKey`, `UnsupportedFormat`, `Store`, `Cancelled`.
pub async fn verify(
    store: &BackupStore,
    run: &VerifyRun,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<VerifyReport, BackupError> {
    let parallelism = run.parallelism.unwrap_or_else(default_parallelism);
    let opened =
        OpenedBackup::open(store, &run.name, &run.encryption.key_ring()?, parallelism).await?;
    progress.set_phase("verify");
    let verified = tokio::select! {
        verified = VerifiedBackup::verify(opened, progress) => verified?,
        () = cancel.cancelled() => return Err(BackupError::Cancelled),
    };
    let report = verified.report().clone();
    if run.record {
        let record = serde_json::json!({"kind": "verify", "at": Utc::now(), "result": &report});
        store.write_verification(&run.name, &record).await?;
    }
    Ok(report)
}
