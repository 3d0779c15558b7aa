//! Shared by the `restore_atomic_*` tests: ways to make a restore fail (a damaged or
//! unreadable store, a failing tool, a cancel) and the check that the target is unchanged
//! after each. Include with `#[path = "support/restore_faults.rs"] mod restore_faults;` beside
//! `#[path = "common/pipeline.rs"] mod pipeline;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::pipeline::backup_bytes;
use crate::pipeline::local_store;
use tokio_util::sync::CancellationToken;
use vertice_backup::backup::BackupOptions;
use vertice_backup::error::BackupError;
use vertice_backup::keys::KeyRing;
use vertice_backup::pipeline::compress::Compression;
use vertice_backup::progress::Progress;
use vertice_backup::restore::{VerifiedBackup, restore_backup};
use vertice_backup::source::{DatabaseSource, RestoreTarget};
use vertice_backup::store::BackupStore;
use vertice_backup::verify::OpenedBackup;

/// How the store lets a restore down.
#[derive(Clone, Copy, Debug)]
pub enum Damage {
    /// One byte of the object changed.
    FlipByte,
    /// The object's last bytes cut off.
    Shorten,
    /// Bytes appended to the object.
    Lengthen,
    /// The object deleted.
    Remove,
    /// The object cannot be read at all: a store error.
    Unreadable,
}

pub const DAMAGES: [Damage; 5] = [
    Damage::FlipByte,
    Damage::Shorten,
    Damage::Lengthen,
    Damage::Remove,
    Damage::Unreadable,
];

impl Damage {
    /// The exit code the restore must end with.
    pub fn exit_code(self) -> u8 {
        match self {
            Damage::Unreadable => 5,
            _ => 6,
        }
    }

    /// Damages the last data object of backup `name` in the local store at `dir`: the earlier
    /// objects stream into the staging target before the damage is found.
    pub fn apply(self, dir: &Path, name: &str) {
        let mut objects: Vec<PathBuf> = files_under(dir)
            .into_iter()
            .filter(|path| {
                path.parent().and_then(Path::file_name) == Some(name.as_ref())
                    && path
                        .file_name()
                        .and_then(|f| f.to_str())
                        .is_some_and(|f| f.starts_with("data-"))
            })
            .collect();
        objects.sort();
        assert!(objects.len() >= 2, "{name}: {objects:?}");
        let last = objects.last().unwrap();
        let mut bytes = std::fs::read(last).unwrap();
        match self {
            Damage::FlipByte => {
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x40;
                std::fs::write(last, bytes).unwrap();
            }
            Damage::Shorten => {
                bytes.truncate(bytes.len() - 100);
                std::fs::write(last, bytes).unwrap();
            }
            Damage::Lengthen => {
                bytes.extend_from_slice(b"appended");
                std::fs::write(last, bytes).unwrap();
            }
            Damage::Remove => std::fs::remove_file(last).unwrap(),
            Damage::Unreadable => {
                // A link to itself: opening it fails with ELOOP, which no store calls "not
                // found" (a directory or a missing file would be).
                std::fs::remove_file(last).unwrap();
                std::os::unix::fs::symlink(last.file_name().unwrap(), last).unwrap();
            }
        }
    }
}

/// Every file under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Small chunks and objects without compression: a dump of a few MB spans several objects
/// whatever its contents.
pub fn small_options(
    name: &str,
    key: Option<vertice_backup::keys::KeyEncryptionKey>,
) -> BackupOptions {
    let mut options = crate::pipeline::small_options(name, key);
    options.compression = Compression::None;
    options
}

pub async fn open(store: &BackupStore, name: &str) -> OpenedBackup {
    OpenedBackup::open(store, name, &KeyRing::default(), 2)
        .await
        .unwrap()
}

/// Restores backup `name` into `target`: in one pass, or (`two_pass`) verified first and
/// damaged by `between` after the verify pass.
pub async fn restore(
    store: &BackupStore,
    name: &str,
    source: &DatabaseSource,
    target: &RestoreTarget,
    two_pass: bool,
    between: impl FnOnce(),
) -> Result<(), BackupError> {
    let progress = Progress::default();
    if two_pass {
        let verified = VerifiedBackup::verify(open(store, name).await, &progress).await?;
        between();
        let stream = source.restore(target).await?;
        verified.restore_into(stream, &progress).await.map(|_| ())
    } else {
        between();
        let opened = open(store, name).await;
        let stream = source.restore(target).await?;
        restore_backup(&opened, stream, &progress, &CancellationToken::new())
            .await
            .map(|_| ())
    }
}

/// Restores backup `name` into `target` and cancels as soon as the first bytes streamed in.
pub async fn restore_cancelled(
    store: &BackupStore,
    name: &str,
    source: &DatabaseSource,
    target: &RestoreTarget,
) -> Result<(), BackupError> {
    let progress = Arc::new(Progress::default());
    let cancel = CancellationToken::new();
    let watcher = {
        let progress = progress.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            while progress.done() == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            cancel.cancel();
        })
    };
    let opened = open(store, name).await;
    let stream = source.restore(target).await?;
    let outcome = restore_backup(&opened, stream, &progress, &cancel).await;
    watcher.abort();
    outcome.map(|_| ())
}

/// Every way of failing, each on a fresh copy of `dump` in the store: damages in one and in
/// two passes, then `tool_failure` (a dump the tool fails on), then a cancel. `check` runs
/// after each and asserts the target is unchanged.
pub async fn every_failure(
    dump: &[u8],
    tool_failure: &[u8],
    source: &DatabaseSource,
    target: &RestoreTarget,
    check: impl AsyncFn(&str),
) {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let mut round = 0;
    for two_pass in [false, true] {
        for damage in DAMAGES {
            round += 1;
            let name = format!("b{round}");
            backup_bytes(&store, &small_options(&name, None), dump.to_vec())
                .await
                .unwrap();
            let what = format!("{damage:?}, two passes: {two_pass}");
            let error = restore(&store, &name, source, target, two_pass, || {
                damage.apply(dir.path(), &name)
            })
            .await
            .expect_err(&what);
            assert_eq!(error.exit_code(), damage.exit_code(), "{what}: {error}");
            check(&what).await;
        }
    }
    backup_bytes(&store, &small_options("tool", None), tool_failure.to_vec())
        .await
        .unwrap();
    let error = restore(&store, "tool", source, target, false, || {})
        .await
        .expect_err("tool failure");
    assert_eq!(error.exit_code(), 4, "tool failure: {error}");
    check("tool failure").await;

    backup_bytes(&store, &small_options("cancel", None), dump.to_vec())
        .await
        .unwrap();
    let error = restore_cancelled(&store, "cancel", source, target)
        .await
        .expect_err("cancel");
    assert!(matches!(error, BackupError::Cancelled), "cancel: {error}");
    assert_eq!(error.exit_code(), 130);
    check("cancel").await;
}

pub fn dir_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Whether `pid` has a handler installed for SIGINT (bit 1 of `SigCgt` in /proc).
pub fn catches_sigint(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (2 - 1)) != 0)
}

/// Polls `condition` until it holds, failing after a minute.
pub async fn wait_until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !condition().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
