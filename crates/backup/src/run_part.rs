//! Parts of a backup run that follow the dump (issue 8 §3: "one run, several parts"): the
//! database part (the dump) runs first, then each part in order, and one manifest records them
//! all. A part runs once every data object is complete and before the manifest is sealed and
//! written; if any part fails, the run fails and writes no manifest.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::error::BackupError;
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::store::BackupStore;

/// One part of a backup run after the dump (the bucket copy: [`crate::engine::objects`]).
#[async_trait::async_trait]
pub trait RunPart: Send + Sync + std::fmt::Debug {
    /// Runs the part for the backup `manifest.name` in `store` and sets its record in
    /// `manifest`. On failure the part removes whatever it wrote outside the backup's own
    /// objects (the caller deletes those, see [`crate::store::folders`]).
    async fn run(
        &self,
        store: &BackupStore,
        manifest: &mut Manifest,
        progress: &Arc<Progress>,
        cancel: &CancellationToken,
    ) -> Result<(), BackupError>;
}
