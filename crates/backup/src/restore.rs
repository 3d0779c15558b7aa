//! `restore`: the reverse pipeline. Every restore target is staged (a database with a
//! generated name, a temporary file beside the final one — see [`crate::source::staging`]),
//! and the one rule is: the staging target is committed only after the whole dump was read,
//! every check passed (headers, chunk hashes, tags, object lengths, the raw size and hash)
//! and the tool exited successfully. Any failure — the store changed, shortened, lengthened or
//! unreachable, the tool failing, a cancel — aborts the staging target and leaves the target
//! exactly as it was.
//!
//! Because of that rule a restore into a staged target runs in ONE pass ([`restore_backup`]):
//! each chunk is checked as it streams into staging, and the raw-dump hash is checked before
//! the commit. A separate verify pass first would only read the store twice. Where nothing
//! can be staged — a dump written to stdout — [`VerifiedBackup`] keeps two passes: pass one
//! checks everything and writes nothing, pass two writes while checking again.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::error::BackupError;
use crate::progress::Progress;
use crate::source::RestoreStream;
use crate::verify::{OpenedBackup, VerifyReport};

/// A backup that passed a full verification pass: what the two-pass paths write from.
#[derive(Debug)]
pub struct VerifiedBackup {
    opened: OpenedBackup,
    report: VerifyReport,
}

/// What a restore did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    /// Backup name.
    pub name: String,
    /// Raw bytes written to the target.
    pub raw_size: u64,
    /// Chunks checked while restoring.
    pub chunks: u64,
    /// Data objects checked while restoring.
    pub objects: u64,
    /// How many times the store was read: 1 when the chunks were checked as they streamed
    /// into the staging target, 2 when a verify pass ran first.
    pub passes: u8,
    /// Seconds spent in the separate verify pass; 0 for a one-pass restore, whose checks are
    /// part of `restore_seconds`.
    pub verify_seconds: f64,
    /// Seconds spent streaming into the target (checks included), the tool's run and the
    /// commit.
    pub restore_seconds: f64,
}

impl AsRef<OpenedBackup> for OpenedBackup {
    fn as_ref(&self) -> &OpenedBackup {
        self
    }
}

impl AsRef<OpenedBackup> for VerifiedBackup {
    fn as_ref(&self) -> &OpenedBackup {
        &self.opened
    }
}

impl VerifiedBackup {
    /// Runs the verification pass.
    pub async fn verify(opened: OpenedBackup, progress: &Progress) -> Result<Self, BackupError> {
        let report = opened.verify(progress).await?;
        Ok(VerifiedBackup { opened, report })
    }

    /// The verification report.
    pub fn report(&self) -> &VerifyReport {
        &self.report
    }

    /// The manifest.
    pub fn manifest(&self) -> &crate::manifest::Manifest {
        self.opened.manifest()
    }

    /// Streams the dump into a writer that cannot be staged (stdout); returns raw bytes and
    /// duration. Pass two checks everything again: a store that changed after pass one fails
    /// here, after some bytes were written.
    pub async fn write_to(
        &self,
        writer: &mut (dyn AsyncWrite + Send + Unpin),
        progress: &Progress,
    ) -> Result<(u64, Duration), BackupError> {
        let started = Instant::now();
        progress.start_phase(self.opened.manifest().raw_size);
        let report = self.opened.scan(Some(writer), progress).await?;
        writer.flush().await?;
        Ok((report.raw_size, started.elapsed()))
    }

    /// Streams the dump into a staged restore target (checking everything again) and
    /// commits it only after full success; see [`restore_backup`].
    pub async fn restore_into(
        &self,
        target: RestoreStream,
        progress: &Progress,
    ) -> Result<RestoreReport, BackupError> {
        let mut report =
            restore_backup(&self.opened, target, progress, &CancellationToken::new()).await?;
        report.passes = 2;
        report.verify_seconds = self.report.duration.as_secs_f64();
        Ok(report)
    }
}

/// Restores `backup` into a staged target in one pass: streams the dump into the staging
/// target while checking every chunk, then checks the whole dump, waits for the tool, and
/// only then commits. On any error, or when `cancel` fires (`BackupError::Cancelled`), the
/// tool is stopped and the staging target removed; the target stays exactly as it was.
pub async fn restore_backup(
    backup: &OpenedBackup,
    target: RestoreStream,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<RestoreReport, BackupError> {
    let RestoreStream {
        mut writer,
        completion,
        staged,
    } = target;
    let started = Instant::now();
    progress.start_phase(backup.manifest().raw_size);
    let streamed = async {
        match backup.scan(Some(&mut writer), progress).await {
            Ok(report) => {
                writer.shutdown().await?;
                drop(writer);
                completion.await?;
                Ok(report)
            }
            // A tool that stopped reading (it failed) breaks the pipe: its own error says why.
            Err(BackupError::Io(io)) => {
                drop(writer);
                completion.await?;
                Err(BackupError::Io(io))
            }
            Err(error) => Err(error),
        }
    };
    // Dropping the unfinished stream on a cancel or an error kills the tool (its child
    // process is killed on drop) before the abort removes what it wrote.
    let outcome = tokio::select! {
        outcome = streamed => outcome,
        () = cancel.cancelled() => Err(BackupError::Cancelled),
    };
    let report = match outcome {
        Ok(report) => report,
        Err(error) => {
            staged.abort().await;
            return Err(error);
        }
    };
    staged.commit().await?;
    Ok(RestoreReport {
        name: backup.manifest().name.clone(),
        raw_size: report.raw_size,
        chunks: report.chunks,
        objects: report.objects,
        passes: 1,
        verify_seconds: 0.0,
        restore_seconds: started.elapsed().as_secs_f64(),
    })
}
