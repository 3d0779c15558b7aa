//! One run's spec: what the operator's Job (through `vertice-backup runner`), the CLI and the
//! operator's in-process executor all run. Secrets in it are references (files, environment
//! variables), never values, so a spec can be logged and stored in a Job's environment.
//!
//! ```yaml
//! action: backup            # backup | restore | verify | drill
//! name: nightly-20260101    # optional for backup
//! source: {engine: postgres, host: db, user: backup, database: app, password: {file: /secrets/pw}}
//! storage: {store: s3, bucket: backups, endpoint: "http://minio:9000", prefix: team/app,
//!           credentialsFile: /secrets/s3, credentials: explicit}  # the operator: always explicit
//! compression: zstd
//! compressionLevel: 3
//! encryption: {keyFile: /secrets/backup-key}   # or {disabled: true}
//! labels: {schedule: nightly}
//! restore: {targetDatabase: app_restored, overwrite: false}
//! # instead of `source`, a managed-database snapshot:
//! # snapshot: {instanceId: app-db, region: eu-west-1, credentialsFile: /secrets/aws,
//! #            tags: {team: billing}, timeoutSeconds: 3600}
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::objects::ObjectCopyConfig;
use crate::error::BackupError;
use crate::snapshot::SnapshotConfig;
use crate::source::SourceConfig;
use crate::store::StoreConfig;

/// What to run.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Make a backup.
    #[default]
    Backup,
    /// Restore one.
    Restore,
    /// Verify one.
    Verify,
    /// Drill one.
    Drill,
}

/// Encryption in a spec.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncryptionSpec {
    /// The key-encryption key's file.
    pub key_file: Option<PathBuf>,
    /// Or the environment variable holding it.
    pub key_env: Option<String>,
    /// Its id (default: fingerprint).
    pub key_id: Option<String>,
    /// Older keys, for reading backups made before a rotation.
    #[serde(default)]
    pub previous_key_files: Vec<PathBuf>,
    /// Store backups unencrypted.
    #[serde(default)]
    pub disabled: bool,
}

/// Restore settings in a spec.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreSpec {
    /// Database to create.
    pub target_database: Option<String>,
    /// Redis data directory.
    pub target_data_dir: Option<PathBuf>,
    /// Replace an existing target.
    #[serde(default)]
    pub overwrite: bool,
    /// PostgreSQL: skip ownership.
    #[serde(default)]
    pub no_owner: bool,
    /// PostgreSQL: skip privileges (GRANT/REVOKE).
    #[serde(default)]
    pub no_privileges: bool,
    /// MariaDB: keep the dump's events enabled (by default they arrive disabled).
    #[serde(default)]
    pub keep_events_enabled: bool,
    /// After restoring into a database, count its rows (keys) and compare them with the
    /// counts the manifest recorded at dump time (the drill's check, on the real target).
    #[serde(default)]
    pub verify: bool,
}

/// One run's spec.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunSpec {
    /// What to run.
    #[serde(default)]
    pub action: Action,
    /// Backup name (required except for `backup`).
    pub name: Option<String>,
    /// The database (source, or restore/drill server).
    pub source: Option<SourceConfig>,
    /// A backup's database part as a managed-database snapshot instead of a dump (issue 8
    /// §2): not with `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotConfig>,
    /// The store.
    pub storage: StoreConfig,
    /// A bucket folder to copy into the backup (the object-storage part of a backup run; a
    /// backup needs `source`, `objects` or both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<ObjectCopyConfig>,
    /// Compression algorithm.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Compression level.
    pub compression_level: Option<i32>,
    /// zstd: keep `compressionLevel` even while compression holds the dump back (by default
    /// the level adapts, see [`crate::pipeline::adaptive`]).
    #[serde(default)]
    pub fixed_compression_level: bool,
    /// Raw chunk size.
    pub chunk_size: Option<usize>,
    /// Chunks processed at once.
    pub parallelism: Option<usize>,
    /// Encryption.
    #[serde(default)]
    pub encryption: EncryptionSpec,
    /// Labels for the manifest.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Restore settings.
    #[serde(default)]
    pub restore: RestoreSpec,
}

fn default_compression() -> String {
    "zstd".into()
}

impl Default for RunSpec {
    /// A backup with the engine's defaults and no source or store yet (what a spec file
    /// without those fields would mean, before validation).
    fn default() -> Self {
        RunSpec {
            action: Action::default(),
            name: None,
            source: None,
            snapshot: None,
            storage: StoreConfig::default(),
            objects: None,
            compression: default_compression(),
            compression_level: None,
            fixed_compression_level: false,
            chunk_size: None,
            parallelism: None,
            encryption: EncryptionSpec::default(),
            labels: BTreeMap::new(),
            restore: RestoreSpec::default(),
        }
    }
}

/// The JSON schema of a [`RunSpec`] (draft 2020-12), for tools and for checking specs the
/// operator builds. Not a CRD schema: `source` and `storage` are internally tagged (by
/// `engine` / `store`), which a structural schema cannot express.
pub fn run_spec_schema() -> schemars::Schema {
    schemars::schema_for!(RunSpec)
}

/// Parses a spec (JSON is YAML). The error names the field and never quotes a secret.
pub fn parse_spec(text: &str) -> Result<RunSpec, BackupError> {
    serde_yaml::from_str(text).map_err(|error| {
        BackupError::Config(format!(
            "invalid spec: {}",
            crate::cli::spec_error::describe(text, &error)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_describes_every_field_and_the_tagged_configs() {
        let schema = serde_json::to_value(run_spec_schema()).unwrap();
        let properties = schema["properties"].as_object().unwrap();
        for field in [
            "action",
            "name",
            "source",
            "storage",
            "objects",
            "compression",
            "compressionLevel",
            "chunkSize",
            "parallelism",
            "encryption",
            "labels",
            "restore",
        ] {
            assert!(properties.contains_key(field), "{field} missing: {schema}");
        }
        assert_eq!(schema["required"], serde_json::json!(["storage"]));
        let text = schema.to_string();
        // The engines and store kinds appear as the tag values, and the password stays a
        // reference (env or file), never a value.
        for word in [
            "postgres", "mariadb", "redis", "\"s3\"", "gcs", "azure", "explicit",
        ] {
            assert!(text.contains(word), "{word} missing: {text}");
        }
        assert!(!text.contains("\"value\""), "{text}");
        assert_eq!(schema["properties"]["action"]["default"], "backup");
    }

    #[test]
    fn a_spec_survives_serialize_then_parse() {
        // The operator serializes specs into a Job's environment; the runner parses them back.
        let text = r#"
action: restore
name: nightly-1
source: {engine: mariadb, host: db, user: root, password: {file: /secrets/pw}}
storage: {store: s3, bucket: b, endpoint: "http://127.0.0.1:9000", prefix: team/app}
compressionLevel: -3
encryption: {keyFile: /secrets/key, previousKeyFiles: [/secrets/old]}
labels: {vertice.dev/schedule: nightly}
restore: {targetDatabase: app_restored, overwrite: true}
"#;
        let spec = parse_spec(text).unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        let again = parse_spec(&json).unwrap();
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::to_value(&again).unwrap()
        );
        assert_eq!(again.action, Action::Restore);
        assert_eq!(again.compression_level, Some(-3));
        assert!(again.restore.overwrite);
        assert_eq!(again.encryption.previous_key_files.len(), 1);
    }
}
