//! `restore`: the reverse pipeline, in two passes over the store. Pass one checks everything
//! (as `verify` does) and writes nothing; only a backup that passed it can be written to a
//! target, which is prepared after pass one. Pass two reads the store again and streams the
//! dump into the target, checking everything again.
//!
//! Why two passes and not a verified copy on local disk: a pod's disk is small and the dump
//! may be large — the design never holds a whole dump in memory or on local disk. Reading the
//! store twice costs one extra download at several hundred MB/s, while restores themselves
//! run at the database's pace (tens of MB/s, index builds included). If the store changes
//! between the passes, pass two fails on its checks and the restore reports an error.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::BackupError;
use crate::progress::Progress;
use crate::source::RestoreStream;
use crate::verify::{OpenedBackup, VerifyReport};

/// A backup that passed a full verification pass: only this can be written to a target.
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
    /// Seconds spent verifying (pass one).
    pub verify_seconds: f64,
    /// Seconds spent writing into the target (pass two, until the tool exited).
    pub restore_seconds: f64,
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

    /// Streams the dump into a writer (a file, stdout); returns raw bytes and duration.
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

    /// Streams the dump into a database restore and waits for its tool.
    pub async fn restore_into(
        &self,
        target: RestoreStream,
        progress: &Progress,
    ) -> Result<RestoreReport, BackupError> {
        let RestoreStream {
            mut writer,
            completion,
        } = target;
        let started = Instant::now();
        progress.start_phase(self.opened.manifest().raw_size);
        let written = self.opened.scan(Some(&mut writer), progress).await;
        let written = match written {
            Ok(report) => report,
            Err(error) => {
                drop(writer);
                // The tool sees a truncated stream and fails; its error matters less than ours
                // — unless the tool failed first and broke the pipe: then its error says why.
                let tool = completion.await;
                if let (BackupError::Io(io), Err(tool_error)) = (&error, tool)
                    && io.kind() == std::io::ErrorKind::BrokenPipe
                {
                    return Err(tool_error.into());
                }
                return Err(error);
            }
        };
        writer.shutdown().await?;
        drop(writer);
        completion.await?;
        Ok(RestoreReport {
            name: self.opened.manifest().name.clone(),
            raw_size: written.raw_size,
            verify_seconds: self.report.duration.as_secs_f64(),
            restore_seconds: started.elapsed().as_secs_f64(),
        })
    }
}
