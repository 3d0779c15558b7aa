//! Where a copy's objects are in the backup store (see [`crate::format::bucket_copy`]), and
//! how the copy's source is named and opened.

use object_store::path::Path;

use crate::error::BackupError;
use crate::format::bucket_copy::{COPIED_OBJECTS_FOLDER, OBJECTS_INDEX_NAME, copied_object_name};
use crate::store::{BackupStore, StoreConfig};

/// The store's prefix (the folder that holds its backups).
pub(crate) fn store_root(store: &BackupStore) -> Path {
    // Any valid backup name works: its folder is the prefix joined with it.
    let probe = "probe";
    let parts: Vec<_> = store
        .backup_dir(probe)
        .map(|dir| dir.parts().map(|part| part.as_ref().to_string()).collect())
        .unwrap_or_default();
    Path::from_iter(
        parts
            .iter()
            .take(parts.len().saturating_sub(1))
            .map(String::as_str),
    )
}

/// `PREFIX/.copied-objects/`.
pub(crate) fn copied_root(store: &BackupStore) -> Path {
    store_root(store).join(COPIED_OBJECTS_FOLDER)
}

/// `PREFIX/.copied-objects/<holder>/`: the bytes backup `holder` copied.
pub(crate) fn holder_dir(store: &BackupStore, holder: &str) -> Result<Path, BackupError> {
    crate::names::check_backup_name(holder)?;
    Ok(copied_root(store).join(holder))
}

/// Where the bytes of `key` copied by backup `holder` are.
pub(crate) fn copied_path(
    store: &BackupStore,
    holder: &str,
    key: &str,
) -> Result<Path, BackupError> {
    Ok(holder_dir(store, holder)?.join(copied_object_name(key).as_str()))
}

/// `PREFIX/NAME/objects-index.json`.
pub(crate) fn index_path(store: &BackupStore, name: &str) -> Result<Path, BackupError> {
    Ok(store.backup_dir(name)?.join(OBJECTS_INDEX_NAME))
}

/// The source prefix as a path to list under (`None`: the whole bucket), and the text to strip
/// from a listed key to get the key relative to it. Errors: `Config` for a prefix that object
/// storage paths cannot express (an empty segment `a//b`, `.` or `..`, control characters).
pub(crate) fn source_prefix(prefix: &str) -> Result<(Option<Path>, String), BackupError> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok((None, String::new()));
    }
    let path = Path::parse(trimmed).map_err(|error| {
        BackupError::Config(format!("invalid objects prefix {prefix:?}: {error}"))
    })?;
    Ok((Some(path), format!("{trimmed}/")))
}

/// The full key of `relative` under `prefix` (as [`source_prefix`] normalises it).
pub(crate) fn full_key(prefix: &str, relative: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        relative.to_string()
    } else {
        format!("{trimmed}/{relative}")
    }
}

/// The path of a key as the source spells it. Errors: `Config` for keys object storage paths
/// cannot express (see [`source_prefix`]).
pub(crate) fn key_path(key: &str) -> Result<Path, BackupError> {
    Path::parse(key)
        .map_err(|error| BackupError::Config(format!("object key {key:?} is not usable: {error}")))
}

/// Opens the bucket a copy reads from (or a restore writes to): `config` without its prefix.
pub(crate) fn open_bucket(config: &StoreConfig) -> Result<BackupStore, BackupError> {
    BackupStore::open(&StoreConfig {
        prefix: String::new(),
        ..config.clone()
    })
}

/// The source for people: the store's description with the prefix after the bucket
/// (`s3://uploads/media at http://minio:9000`), never credentials.
pub(crate) fn source_display(bucket: &BackupStore, prefix: &str) -> String {
    let description = bucket.description();
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return description.to_string();
    }
    match description.split_once(" at ") {
        Some((head, tail)) => format!("{head}/{trimmed} at {tail}"),
        None => format!("{description}/{trimmed}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_normalise_and_keys_join() {
        assert_eq!(source_prefix("").unwrap(), (None, String::new()));
        let (path, strip) = source_prefix("/media files/100%/").unwrap();
        assert_eq!(path.unwrap().as_ref(), "media files/100%");
        assert_eq!(strip, "media files/100%/");
        assert_eq!(full_key("a/", "b c"), "a/b c");
        assert_eq!(full_key("", "b"), "b");
        assert!(source_prefix("a//b").is_err());
        assert!(source_prefix("a/../b").is_err());
    }

    #[test]
    fn layout_sits_beside_the_backups() {
        let store = BackupStore::open(&StoreConfig {
            path: Some(std::env::temp_dir()),
            prefix: "team/app".into(),
            ..StoreConfig::default()
        })
        .unwrap();
        assert_eq!(store_root(&store).as_ref(), "team/app");
        assert_eq!(
            copied_path(&store, "b1", "x").unwrap().as_ref(),
            format!("team/app/.copied-objects/b1/{}", copied_object_name("x"))
        );
        assert_eq!(
            index_path(&store, "b1").unwrap().as_ref(),
            "team/app/b1/objects-index.json"
        );
        assert!(holder_dir(&store, "../x").is_err());
    }
}
