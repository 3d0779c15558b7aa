//! What a restore leaves staged until the caller decides: every engine restores into a
//! staging target (a database with a generated name, a temporary file beside the final one)
//! and hands back two steps, exactly one of which runs:
//! - `commit` replaces the target with the staged copy; the shared restore path calls it only
//!   after the whole dump was streamed, every check passed and the tool exited successfully;
//! - `abort` removes the staging target and leaves the target exactly as it was.
//!
//! An engine never commits inside its tool's completion: the tool succeeding says nothing
//! about whether the bytes it was given were the whole, verified dump (a damaged store, a
//! cancel and a truncated stream all end the tool's input early and cleanly).
//!
//! Both steps are futures that do nothing until awaited, so building them costs nothing. A
//! `Staged` dropped without a decision (a caller's bug, or a panic) starts its abort on the
//! current runtime, best effort.

use std::future::Future;
use std::pin::Pin;

use super::SourceError;

type Step = Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send>>;

/// The staged result of a restore, waiting for `commit` or `abort`.
pub struct Staged {
    commit: Option<Step>,
    abort: Option<Step>,
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Staged")
            .field("decided", &self.commit.is_none())
            .finish()
    }
}

impl Staged {
    /// A staging target with its two steps. `commit` must either fully replace the target or
    /// leave it as it was (and clean up the staging target itself); `abort` must remove the
    /// staging target.
    pub fn new(
        commit: impl Future<Output = Result<(), SourceError>> + Send + 'static,
        abort: impl Future<Output = Result<(), SourceError>> + Send + 'static,
    ) -> Self {
        Self {
            commit: Some(Box::pin(commit)),
            abort: Some(Box::pin(abort)),
        }
    }

    /// Nothing staged: the stream's effect is final once the tool exited (globals replayed
    /// by `psql`, which has no target of its own to stage).
    pub fn nothing() -> Self {
        Self {
            commit: None,
            abort: None,
        }
    }

    /// Replaces the target with the staged copy.
    pub async fn commit(mut self) -> Result<(), SourceError> {
        self.abort = None;
        match self.commit.take() {
            Some(commit) => commit.await,
            None => Ok(()),
        }
    }

    /// Removes the staging target; the target stays as it was. A failure to clean up is
    /// logged, not returned: the error that caused the abort is the one to report.
    pub async fn abort(mut self) {
        self.commit = None;
        if let Some(abort) = self.abort.take()
            && let Err(error) = abort.await
        {
            tracing::warn!(%error, "could not remove the restore's staging target");
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        self.commit = None;
        if let Some(abort) = self.abort.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(abort);
        }
    }
}

/// A unique suffix for staging names: the process id and a random part, lowercase hex.
pub(crate) fn unique_suffix() -> String {
    let random = crate::pipeline::encrypt::random_bytes::<5>()
        .map(|bytes| crate::format::to_hex(&bytes))
        .unwrap_or_else(|_| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            format!("{:x}", nanos & 0xff_ffff_ffff)
        });
    format!("{:x}_{random}", std::process::id())
}
