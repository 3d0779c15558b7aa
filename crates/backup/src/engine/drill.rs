//! The `drill` action: restore a backup into a scratch target, compare the counts with those
//! taken at dump time, check what the copy reaches outside itself, and drop the scratch.

use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::restore::spec_name;
use super::spec::{EncryptionSpec, RunSpec};
use crate::backup::default_parallelism;
use crate::drill::{DrillReport, run_drill_until};
use crate::error::BackupError;
use crate::progress::Progress;
use crate::source::{DatabaseSource, SourceConfig};
use crate::store::BackupStore;
use crate::verify::OpenedBackup;

/// One drill to run.
#[derive(Clone, Debug)]
pub struct DrillRun {
    /// The backup to drill.
    pub name: String,
    /// The (scratch) server restored into.
    pub server: SourceConfig,
    /// Keys that may open the backup.
    pub encryption: EncryptionSpec,
    /// Chunks decoded at once; `None` is the number of CPUs.
    pub parallelism: Option<usize>,
    /// Record a passed drill in the store.
    pub record: bool,
}

impl DrillRun {
    /// The drill a spec describes (recorded). Errors: `Config` without a name or a server.
    pub fn from_spec(spec: &RunSpec) -> Result<Self, BackupError> {
        Ok(DrillRun {
            name: spec_name(spec)?,
            server: spec
                .source
                .clone()
                .ok_or_else(|| BackupError::Config("a drill needs a server (--engine …)".into()))?,
            encryption: spec.encryption.clone(),
            parallelism: spec.parallelism,
            record: true,
        })
    }
}

/// Drills a backup. A drill whose counts differ or whose copy is not isolated is still an
/// `Ok` report (see [`DrillReport::passed`]); only a passed one is recorded. When `cancel`
/// fires the scratch target is removed and it fails with `Cancelled`.
///
/// Errors: those of a restore (see [`super::restore()`]), and `Source` when counting fails.
pub async fn drill(
    store: &BackupStore,
    run: &DrillRun,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<DrillReport, BackupError> {
    let server = DatabaseSource::new(run.server.clone());
    let parallelism = run.parallelism.unwrap_or_else(default_parallelism);
    let opened =
        OpenedBackup::open(store, &run.name, &run.encryption.key_ring()?, parallelism).await?;
    progress.set_phase("drill");
    let report = run_drill_until(&opened, &server, progress, cancel).await?;
    if report.passed() && run.record {
        let record = serde_json::json!({"kind": "drill", "at": Utc::now(), "result": &report});
        store.write_verification(&run.name, &record).await?;
    }
    Ok(report)
}
