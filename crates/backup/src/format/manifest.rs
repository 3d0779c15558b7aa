//! The manifest: the last object written for a backup, and the only proof that it exists.
//! It says how to read the data objects and holds every hash a reader checks.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::BackupError;
use crate::format::bucket_copy::BucketCopyRecord;
use crate::format::{
    BACKUP_ID_LEN, BackupId, FORMAT_VERSION, HEADER_LEN, MAX_CHUNK_SIZE, OLDEST_FORMAT_VERSION,
    from_hex,
};
use crate::keys::WrappedKey;
use crate::pipeline::compress::Compression;
use crate::pipeline::encrypt::TAG_LEN;
use crate::source::{DatabaseProperties, ObjectCounts, SourceInfo};

/// One backup's manifest (`manifest.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Format version of the data objects and this manifest.
    pub format_version: u32,
    /// The backup's name (its folder in the store).
    pub name: String,
    /// Random id, hex; bound into every chunk's associated data.
    pub backup_id: String,
    /// Engine, server version and tool versions; absent for a backup of a plain stream.
    pub source: Option<SourceInfo>,
    /// When the dump started.
    pub started_at: DateTime<Utc>,
    /// When the last data object was complete.
    pub finished_at: DateTime<Utc>,
    /// Size of the dump.
    pub raw_size: u64,
    /// Size of all data objects together.
    pub stored_size: u64,
    /// How chunks are compressed.
    pub compression: Compression,
    /// How the data key is wrapped (and by which key id); absent if the backup is not encrypted.
    pub encryption: Option<WrappedKey>,
    /// Raw chunk size.
    pub chunk_size: u64,
    /// The data objects, in order.
    pub objects: Vec<DataObject>,
    /// The chunks, in dump order.
    pub chunks: Vec<ChunkEntry>,
    /// BLAKE3 of the whole raw dump, hex.
    pub raw_blake3: String,
    /// The databases the dump holds (empty for Redis and plain streams).
    #[serde(default)]
    pub databases: Vec<String>,
    /// Row counts per table or key count, taken at dump time.
    pub counts: Option<ObjectCounts>,
    /// Database-level properties of the dumped database(s) — encoding, locale, settings,
    /// comments — that a restore gives the restored database(s). Absent in manifests written
    /// before they were recorded (and for Redis and plain streams): those restore as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_properties: Option<DatabaseProperties>,
    /// Labels given by the user (for example the schedule that made the backup).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The run's object-storage copy, if it had one (see [`crate::format::bucket_copy`]).
    /// Absent in manifests of runs without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_copy: Option<BucketCopyRecord>,
    /// The run's managed-database snapshot (issue 8 §2), when its database part was one.
    /// Absent in other manifests, and in those written before snapshots existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<crate::snapshot::SnapshotRecord>,
    /// Encrypted backups: BLAKE3 keyed hash of this manifest without this field, under a key
    /// derived from the data key (see `manifest_seal`), hex. Absent when not encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

/// One data object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataObject {
    /// Object name inside the backup's folder.
    pub name: String,
    /// Size in bytes, header included.
    pub size: u64,
    /// BLAKE3 of the whole object, hex: format 1 only (format 2 leaves it out, see
    /// "Versions" in [`crate::format`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
}

/// One chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkEntry {
    /// Index of the data object that holds it.
    pub object: u32,
    /// Offset inside that object.
    pub offset: u64,
    /// Raw (dump) bytes in the chunk.
    pub raw_size: u64,
    /// Stored (compressed, encrypted) bytes.
    pub stored_size: u64,
    /// BLAKE3 of the stored bytes, hex.
    pub blake3: String,
}

/// The part of a manifest `list` and retention need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupListing {
    /// Backup name.
    pub name: String,
    /// Engine, if the backup came from a database.
    pub engine: Option<crate::source::Engine>,
    /// Start of the dump.
    pub started_at: DateTime<Utc>,
    /// End of the upload.
    pub finished_at: DateTime<Utc>,
    /// Dump size.
    pub raw_size: u64,
    /// Stored size.
    pub stored_size: u64,
    /// Compression algorithm.
    pub compression: String,
    /// Key id, if encrypted.
    pub key_id: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// Worst-case growth of a chunk by compression (zstd and deflate bounds are far below this).
fn max_stored_size(raw: u64) -> u64 {
    raw + raw / 64 + 1024 + TAG_LEN as u64
}

impl Manifest {
    /// Parses a manifest, refusing unknown format versions before anything else.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BackupError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct VersionOnly {
            format_version: u32,
        }
        let version: VersionOnly = serde_json::from_slice(bytes).map_err(|error| {
            BackupError::Integrity(format!("the manifest is not valid JSON: {error}"))
        })?;
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version.format_version) {
            return Err(BackupError::UnsupportedFormat {
                found: version.format_version,
                supported: FORMAT_VERSION,
            });
        }
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|error| {
            BackupError::Integrity(format!("the manifest is malformed: {error}"))
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Serializes the manifest.
    pub fn to_json(&self) -> Result<Vec<u8>, BackupError> {
        serde_json::to_vec_pretty(self).map_err(|error| {
            BackupError::Internal(format!("cannot serialize the manifest: {error}"))
        })
    }

    /// The backup id as bytes.
    pub fn backup_id_bytes(&self) -> Result<BackupId, BackupError> {
        from_hex(&self.backup_id)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| BackupError::Integrity("the manifest's backup id is malformed".into()))
    }

    /// Checks that the chunk list tiles the data objects exactly and that every size is within
    /// bounds, so a reader can trust offsets and never over-allocate.
    pub fn validate(&self) -> Result<(), BackupError> {
        let bad = |what: String| Err(BackupError::Integrity(format!("manifest: {what}")));
        self.backup_id_bytes()?;
        if self.backup_id.len() != BACKUP_ID_LEN * 2 {
            return bad("backup id has the wrong length".into());
        }
        if self.chunk_size == 0 || self.chunk_size > MAX_CHUNK_SIZE as u64 {
            return bad(format!("chunk size {} is out of bounds", self.chunk_size));
        }
        if self.chunks.is_empty() || self.objects.is_empty() {
            return bad("no chunks".into());
        }
        let mut next_offset = vec![HEADER_LEN; self.objects.len()];
        let mut last_object = 0u32;
        let (mut raw_total, mut stored_total) = (0u64, 0u64);
        let last = self.chunks.len() - 1;
        for (index, chunk) in self.chunks.iter().enumerate() {
            let object = usize::try_from(chunk.object).unwrap_or(usize::MAX);
            if object >= self.objects.len() || chunk.object < last_object {
                return bad(format!(
                    "chunk {index} names an unknown or out-of-order object"
                ));
            }
            last_object = chunk.object;
            if chunk.offset != next_offset[object] {
                return bad(format!("chunk {index} does not follow the previous one"));
            }
            if chunk.raw_size > self.chunk_size
                || (index != last && chunk.raw_size != self.chunk_size)
            {
                return bad(format!("chunk {index} has raw size {}", chunk.raw_size));
            }
            if chunk.stored_size > max_stored_size(chunk.raw_size) {
                return bad(format!(
                    "chunk {index} has stored size {}",
                    chunk.stored_size
                ));
            }
            if chunk.blake3.len() != 64 || from_hex(&chunk.blake3).is_none() {
                return bad(format!("chunk {index} has a malformed hash"));
            }
            next_offset[object] = chunk.offset + chunk.stored_size;
            raw_total += chunk.raw_size;
            stored_total += chunk.stored_size;
        }
        for (index, object) in self.objects.iter().enumerate() {
            if object.size != next_offset[index] || object.size == HEADER_LEN {
                return bad(format!("object {} is not tiled by its chunks", object.name));
            }
            let expected =
                crate::format::data_object_name(u32::try_from(index).unwrap_or(u32::MAX));
            if object.name != expected {
                return bad(format!("object {index} is named {:?}", object.name));
            }
            match (&object.blake3, self.format_version) {
                (None, 1) => return bad(format!("object {} has no hash", object.name)),
                (Some(hash), _) if hash.len() != 64 || from_hex(hash).is_none() => {
                    return bad(format!("object {} has a malformed hash", object.name));
                }
                _ => {}
            }
        }
        if raw_total != self.raw_size {
            return bad("raw sizes do not add up".into());
        }
        let objects_total: u64 = self.objects.iter().map(|object| object.size).sum();
        if stored_total + HEADER_LEN * self.objects.len() as u64 != objects_total
            || objects_total != self.stored_size
        {
            return bad("stored sizes do not add up".into());
        }
        Ok(())
    }

    /// The summary of this backup.
    pub fn summary(&self) -> BackupListing {
        BackupListing {
            name: self.name.clone(),
            engine: self.source.as_ref().map(|source| source.engine),
            started_at: self.started_at,
            finished_at: self.finished_at,
            raw_size: self.raw_size,
            stored_size: self.stored_size,
            compression: self.compression.name().into(),
            key_id: self.encryption.as_ref().map(|key| key.key_id.clone()),
            labels: self.labels.clone(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        let hash = "ab".repeat(32);
        Manifest {
            format_version: FORMAT_VERSION,
            name: "b1".into(),
            backup_id: "00".repeat(16),
            source: None,
            started_at: Utc::now(),
            finished_at: Utc::now(),
            raw_size: 150,
            stored_size: 32 + 60 + 32 + 20,
            compression: Compression::default(),
            encryption: None,
            seal: None,
            database_properties: None,
            snapshot: None,
            chunk_size: 100,
            objects: vec![
                DataObject {
                    name: "data-000000.vbk".into(),
                    size: 92,
                    blake3: None,
                },
                DataObject {
                    name: "data-000001.vbk".into(),
                    size: 52,
                    blake3: None,
                },
            ],
            chunks: vec![
                ChunkEntry {
                    object: 0,
                    offset: 32,
                    raw_size: 100,
                    stored_size: 60,
                    blake3: hash.clone(),
                },
                ChunkEntry {
                    object: 1,
                    offset: 32,
                    raw_size: 50,
                    stored_size: 20,
                    blake3: hash,
                },
            ],
            raw_blake3: "cd".repeat(32),
            databases: Vec::new(),
            counts: Some(ObjectCounts::Keys(3)),
            labels: BTreeMap::from([("schedule".into(), "nightly".into())]),
            bucket_copy: None,
        }
    }

    #[test]
    fn json_round_trip_and_validation() {
        let manifest = sample();
        let json = manifest.to_json().unwrap();
        assert_eq!(Manifest::from_json(&json).unwrap(), manifest);
        let text = String::from_utf8(json).unwrap();
        assert!(text.contains(&format!("\"formatVersion\": {FORMAT_VERSION}")));
        assert!(text.contains("\"rawBlake3\""));
    }

    #[test]
    fn manifests_without_database_properties_still_parse() {
        // What a backup made before properties were recorded wrote.
        let json = sample().to_json().unwrap();
        assert!(!String::from_utf8_lossy(&json).contains("databaseProperties"));
        assert_eq!(
            Manifest::from_json(&json).unwrap().database_properties,
            None
        );
        let mut with = sample();
        with.database_properties = Some(crate::source::DatabaseProperties::Mariadb(
            crate::source::mariadb_properties::MariadbDatabasesProperties::default(),
        ));
        let json = with.to_json().unwrap();
        assert_eq!(Manifest::from_json(&json).unwrap(), with);
    }

    #[test]
    fn unknown_format_versions_are_refused_first() {
        for found in [0, FORMAT_VERSION + 1, 99] {
            let json = format!(r#"{{"formatVersion": {found}, "whatever": true}}"#);
            assert!(matches!(
                Manifest::from_json(json.as_bytes()),
                Err(BackupError::UnsupportedFormat {
                    found: f,
                    supported: FORMAT_VERSION
                }) if f == found
            ));
        }
        let message = Manifest::from_json(br#"{"formatVersion": 99}"#)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(&format!("versions 1 to {FORMAT_VERSION}")),
            "{message}"
        );
    }

    #[test]
    fn format_1_needs_object_hashes_and_format_2_leaves_them_out() {
        let current = sample();
        let json = current.to_json().unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let objects = value["objects"].as_array().unwrap();
        assert_eq!(objects.len(), 2);
        assert!(objects.iter().all(|object| object.get("blake3").is_none()));
        assert_eq!(Manifest::from_json(&json).unwrap(), current);

        let mut old = sample();
        old.format_version = 1;
        let refused = Manifest::from_json(&old.to_json().unwrap()).unwrap_err();
        assert!(
            matches!(&refused, BackupError::Integrity(message) if message.contains("no hash")),
            "{refused}"
        );
        for object in &mut old.objects {
            object.blake3 = Some("cd".repeat(32));
        }
        assert_eq!(Manifest::from_json(&old.to_json().unwrap()).unwrap(), old);
        old.objects[1].blake3 = Some("not hex".into());
        assert!(Manifest::from_json(&old.to_json().unwrap()).is_err());
    }

    #[test]
    fn inconsistent_manifests_are_refused() {
        let mutations: Vec<fn(&mut Manifest)> = vec![
            |m| m.chunks[1].offset = 33,
            |m| m.chunks[0].raw_size = 99,
            |m| m.chunks[1].raw_size = 101,
            |m| m.chunks[1].stored_size = 10_000,
            |m| m.objects[1].size = 53,
            |m| m.raw_size = 151,
            |m| m.stored_size = 1,
            |m| m.chunk_size = u64::MAX,
            |m| m.chunks[0].object = 5,
            |m| m.chunks.clear(),
            |m| m.backup_id = "zz".into(),
            |m| m.chunks[0].blake3 = "x".into(),
            |m| m.objects[0].name = "../../etc/passwd".into(),
        ];
        for (index, mutate) in mutations.into_iter().enumerate() {
            let mut manifest = sample();
            mutate(&mut manifest);
            assert!(
                manifest.validate().is_err(),
                "mutation {index} was accepted"
            );
        }
    }
}
