//! What a backup records about its object-storage copy: the manifest's `bucketCopy` record and
//! the index object it points to (issue 8 §1).
//!
//! # Layout
//!
//! ```text
//! PREFIX/NAME/objects-index.json             the index: every object of the copy (own object
//!                                            of backup NAME; its size and BLAKE3 are in the
//!                                            sealed manifest)
//! PREFIX/.copied-objects/NAME/<blake3(key)>  the bytes this backup copied, one object per key
//! ```
//!
//! The bytes live in a folder shared by all backups of the store, not in the backup's own
//! folder, because a later backup whose object is unchanged references the bytes an earlier
//! backup copied (its index names that backup as the `holder`). Deleting a backup therefore
//! never deletes copied bytes directly: the copy collector ([`crate::engine::objects::collect`])
//! deletes a copied object only when no manifest in the store references it. `.copied-objects`
//! can be neither a backup name nor a prefix segment (both refuse a leading `.`), so it never
//! collides with a backup or with another store configuration's folder.
//!
//! Copied objects are stored as the source had them (not compressed or encrypted): a copy
//! inside one store is a server-side copy, which cannot transform bytes. The index's hash is
//! in the manifest, which the seal covers for encrypted backups, and every object's BLAKE3 is in
//! the index, so `verify` and `restore` detect any change to the bytes.

use serde::{Deserialize, Serialize};

use crate::error::BackupError;
use crate::format::from_hex;

/// Name of the index object inside a backup's folder.
pub const OBJECTS_INDEX_NAME: &str = "objects-index.json";

/// The folder directly under the store's prefix that holds copied bytes, one sub-folder per
/// backup that copied them.
pub const COPIED_OBJECTS_FOLDER: &str = ".copied-objects";

/// The manifest's record of a backup's object copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketCopyRecord {
    /// The source for people: `s3://bucket/prefix` and the like, never credentials.
    pub source: String,
    /// Objects in the copy (copied plus skipped).
    pub object_count: u64,
    /// Their total size in bytes.
    pub total_bytes: u64,
    /// Objects whose bytes this backup copied.
    pub copied: u64,
    /// Objects unchanged since an earlier backup, referenced instead of copied.
    pub skipped: u64,
    /// The index object listing every object.
    pub index: IndexObject,
}

/// Where the index of a copy is and what it must hash to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexObject {
    /// Object name inside the backup's folder ([`OBJECTS_INDEX_NAME`]).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the whole object, hex.
    pub blake3: String,
}

/// The index object: every object of one copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectIndex {
    /// The source as in [`BucketCopyRecord::source`].
    pub source: String,
    /// The folder copied, as the source's keys spell it (`""` = the whole bucket).
    pub prefix: String,
    /// The objects, sorted by key.
    pub objects: Vec<IndexEntry>,
}

/// One copied object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    /// The key relative to the copied prefix, exactly as the source spells it.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The source's ETag when it was copied (how the next incremental copy recognises it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// BLAKE3 of the bytes, hex.
    pub blake3: String,
    /// The backup whose `.copied-objects/<holder>/` folder holds the bytes.
    pub holder: String,
}

impl ObjectIndex {
    /// Parses an index and checks it: sorted unique keys, well-formed hashes and holders.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BackupError> {
        let index: ObjectIndex = serde_json::from_slice(bytes).map_err(|error| {
            BackupError::Integrity(format!("the objects index is malformed: {error}"))
        })?;
        for pair in index.objects.windows(2) {
            if pair[0].key >= pair[1].key {
                return Err(BackupError::Integrity(
                    "the objects index is not sorted by key".into(),
                ));
            }
        }
        for entry in &index.objects {
            if entry.blake3.len() != 64 || from_hex(&entry.blake3).is_none() {
                return Err(BackupError::Integrity(format!(
                    "the objects index has a malformed hash for {:?}",
                    entry.key
                )));
            }
            crate::names::check_backup_name(&entry.holder).map_err(|_| {
                BackupError::Integrity(format!(
                    "the objects index names an invalid holder for {:?}",
                    entry.key
                ))
            })?;
        }
        Ok(index)
    }

    /// Serializes the index (compact: it may list many thousands of objects).
    pub fn to_json(&self) -> Result<Vec<u8>, BackupError> {
        serde_json::to_vec(self).map_err(|error| {
            BackupError::Internal(format!("cannot serialize the objects index: {error}"))
        })
    }
}

/// The name of the object holding the bytes of `key` inside its holder's folder: the BLAKE3 of
/// the key, hex. A fixed-length name of `0-9a-f` works on every backend whatever the key holds
/// (spaces, `%`, `+`, unicode, hundreds of segments, a trailing `/`).
pub fn copied_object_name(key: &str) -> String {
    blake3::hash(key.as_bytes()).to_hex().to_string()
}
