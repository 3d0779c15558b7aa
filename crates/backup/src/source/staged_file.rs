//! A file restored under a hidden temporary name in its final directory (`.<name>.partial-…`)
//! and moved into place only by the commit step: a Redis `dump.rdb`, or `restore --to-file`.
//! Until the commit the final name holds what it held before (or nothing); an abort removes
//! the temporary file.

use std::path::{Path, PathBuf};

use super::{SourceError, Staged};

/// What a staged file must start with to be committed (Redis: `REDIS` and a version).
#[derive(Clone, Copy, Debug)]
pub struct ExpectedStart {
    /// The bytes the file starts with.
    pub magic: &'static [u8],
    /// The smallest length a valid file has.
    pub min_len: u64,
    /// What the file is, for the error message.
    pub what: &'static str,
}

/// Creates the temporary file for `target` and the steps that commit or abort it. Without
/// `overwrite` an existing `target` is refused now and again at the commit (it may have
/// appeared meanwhile; the commit never replaces it then).
pub async fn stage_file(
    target: &Path,
    overwrite: bool,
    expected: Option<ExpectedStart>,
) -> Result<(tokio::fs::File, Staged), SourceError> {
    if !overwrite && tokio::fs::try_exists(target).await? {
        return Err(SourceError::TargetExists {
            target: target.display().to_string(),
        });
    }
    let (dir, name) = split(target)?;
    tokio::fs::create_dir_all(&dir).await?;
    let partial = dir.join(format!(
        ".{name}.partial-{}",
        super::staging::unique_suffix()
    ));
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .await?;
    let commit = {
        let partial = partial.clone();
        let target = target.to_path_buf();
        async move {
            let placed = place(&partial, &target, &dir, overwrite, expected).await;
            if placed.is_err() {
                let _ = tokio::fs::remove_file(&partial).await;
            }
            placed
        }
    };
    let abort = async move {
        match tokio::fs::remove_file(&partial).await {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
            _ => Ok(()),
        }
    };
    Ok((file, Staged::new(commit, abort)))
}

/// The directory and file name of `target`.
fn split(target: &Path) -> Result<(PathBuf, String), SourceError> {
    let name = target
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| SourceError::Other(format!("{} does not name a file", target.display())))?
        .to_owned();
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

/// Checks the staged file, makes it durable and moves it to `target`.
async fn place(
    partial: &Path,
    target: &Path,
    dir: &Path,
    overwrite: bool,
    expected: Option<ExpectedStart>,
) -> Result<(), SourceError> {
    let file = tokio::fs::File::open(partial).await?;
    if let Some(expected) = expected {
        check_start(&file, expected).await?;
    }
    file.sync_all().await?;
    drop(file);
    if overwrite {
        tokio::fs::rename(partial, target).await?;
    } else {
        // A hard link fails when the name exists: no window in which another writer's file
        // could be replaced.
        match tokio::fs::hard_link(partial, target).await {
            Ok(()) => tokio::fs::remove_file(partial).await?,
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(SourceError::TargetExists {
                    target: target.display().to_string(),
                });
            }
            Err(error) => return Err(error.into()),
        }
    }
    // Make the rename durable; a failure here is not worth failing the restore.
    if let Ok(dir) = tokio::fs::File::open(dir).await {
        let _ = dir.sync_all().await;
    }
    Ok(())
}

async fn check_start(file: &tokio::fs::File, expected: ExpectedStart) -> Result<(), SourceError> {
    use tokio::io::AsyncReadExt;
    let length = file.metadata().await?.len();
    let mut start = vec![0u8; expected.magic.len()];
    let mut reader = file.try_clone().await?;
    if length < expected.min_len || reader.read_exact(&mut start).await.is_err() {
        return Err(SourceError::Other(format!(
            "the restored data is not {} ({length} bytes)",
            expected.what
        )));
    }
    if start != expected.magic {
        return Err(SourceError::Other(format!(
            "the restored data is not {} (it does not start with {:?})",
            expected.what,
            String::from_utf8_lossy(expected.magic)
        )));
    }
    Ok(())
}
