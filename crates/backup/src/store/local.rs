//! The local filesystem store (the embedded default): a directory, written with the same
//! multipart protocol as the clouds (staged file, renamed into place when complete).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;

use super::StoreConfig;
use crate::error::BackupError;

/// Opens a local store rooted at `config.path` (created if missing).
pub fn open(config: &StoreConfig) -> Result<(Arc<dyn ObjectStore>, String), BackupError> {
    let root = config
        .path
        .clone()
        .ok_or_else(|| BackupError::Config("the local store needs --path".into()))?;
    std::fs::create_dir_all(&root).map_err(|error| {
        BackupError::Config(format!(
            "cannot create the store directory {}: {error}",
            root.display()
        ))
    })?;
    let store = LocalFileSystem::new_with_prefix(&root)
        .map_err(|error| BackupError::Config(format!("local store {}: {error}", root.display())))?;
    Ok((Arc::new(store), format!("local:{}", root.display())))
}
