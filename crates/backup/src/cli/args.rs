//! Flags shared by the subcommands. Each is named as the custom resource field will be.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::backup::{BackupOptions, default_parallelism};
use crate::engine::{EncryptionSpec, PipelineSettings};
use crate::error::BackupError;
use crate::format::DEFAULT_CHUNK_SIZE;
use crate::keys::{KeyEncryptionKey, KeyRing};
use crate::pipeline::compress::Compression;
use crate::pipeline::upload::UploadLimits;
use crate::source::SourceConfig;
use crate::store::StoreConfig;

use super::output::OutputFormat;

/// Store and output flags every subcommand takes.
#[derive(Clone, Debug, clap::Args)]
pub struct CommonArgs {
    /// Where the backups are.
    #[command(flatten)]
    pub store: StoreConfig,
    /// Result format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Encryption key flags. Keys come from files or environment variables, never from flags.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct KeyArgs {
    /// A file holding a key-encryption key (32 raw bytes, 64 hex digits or base64), e.g. a
    /// mounted Secret. Repeat when reading backups made with older keys.
    #[arg(long = "encryption-key-file", env = "VERTICE_BACKUP_KEY_FILE")]
    pub key_files: Vec<PathBuf>,
    /// The name of an environment variable holding a key-encryption key.
    #[arg(long = "encryption-key-env")]
    pub key_env: Option<String>,
    /// The id recorded in manifests for the (first) key; defaults to the key's fingerprint.
    #[arg(long = "encryption-key-id")]
    pub key_id: Option<String>,
    /// Store the backup unencrypted (backups are encrypted unless this is given).
    #[arg(long)]
    pub no_encryption: bool,
}

impl KeyArgs {
    /// The same keys as a run spec's encryption: the first file is the writing key, the
    /// others are older keys for reading.
    pub fn to_spec(&self) -> EncryptionSpec {
        EncryptionSpec {
            key_file: self.key_files.first().cloned(),
            key_env: self.key_env.clone(),
            key_id: self.key_id.clone(),
            previous_key_files: self.key_files.iter().skip(1).cloned().collect(),
            disabled: self.no_encryption,
        }
    }

    /// Every key given, for reading (see [`EncryptionSpec::key_ring`]).
    pub fn key_ring(&self) -> Result<KeyRing, BackupError> {
        self.to_spec().key_ring()
    }

    /// The one key new backups are encrypted with, or `None` with `--no-encryption` (see
    /// [`EncryptionSpec::writing_key`]).
    pub fn writing_key(&self) -> Result<Option<KeyEncryptionKey>, BackupError> {
        self.to_spec().writing_key()
    }
}

/// How the data is processed.
#[derive(Clone, Debug, clap::Args)]
pub struct PipelineArgs {
    /// zstd (default), gzip or none.
    #[arg(long, default_value = "zstd")]
    pub compression: String,
    /// zstd 1–19 (default 1: keeps up with pg_dump on few cores) or a fast level −7…−1 (less
    /// CPU, less compression), or gzip 1–9 (default 6).
    #[arg(long, allow_negative_numbers = true)]
    pub compression_level: Option<i32>,
    /// zstd: compress every chunk at the given level even when that holds the dump back. By
    /// default the level drops (through −5 down to storing chunks as they are) while
    /// compression is slower than the dump or no CPU core is idle, and returns when it keeps up.
    #[arg(long)]
    pub fixed_compression_level: bool,
    /// Raw chunk size in bytes.
    #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE)]
    pub chunk_size: usize,
    /// Chunks compressed/encrypted (or decoded) at once; default the number of CPUs.
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Multipart parts uploading at once.
    #[arg(long, default_value_t = 4)]
    pub upload_concurrency: usize,
    /// Multipart part size in MiB (at least 5).
    #[arg(long, default_value_t = 8)]
    pub upload_part_size_mib: usize,
}

impl PipelineArgs {
    /// Chunks processed at once.
    pub fn parallelism(&self) -> usize {
        self.parallelism.unwrap_or_else(default_parallelism).max(1)
    }

    /// The engine's pipeline settings.
    pub fn settings(&self) -> PipelineSettings {
        PipelineSettings {
            compression: self.compression.clone(),
            compression_level: self.compression_level,
            fixed_compression_level: self.fixed_compression_level,
            chunk_size: self.chunk_size,
            parallelism: self.parallelism,
            upload: UploadLimits {
                part_size: self.upload_part_size_mib.saturating_mul(1024 * 1024),
                concurrency: self.upload_concurrency,
                ..UploadLimits::default()
            },
        }
    }

    /// Backup options for `name`.
    pub fn options(
        &self,
        name: &str,
        key: Option<KeyEncryptionKey>,
        labels: BTreeMap<String, String>,
    ) -> Result<BackupOptions, BackupError> {
        let mut options = BackupOptions::new(name, key);
        options.compression = Compression::from_spec(&self.compression, self.compression_level)?;
        options.adaptive_compression = !self.fixed_compression_level;
        options.chunk_size = self.chunk_size;
        options.parallelism = self.parallelism();
        options.labels = labels;
        options.upload = UploadLimits {
            part_size: self.upload_part_size_mib.saturating_mul(1024 * 1024),
            concurrency: self.upload_concurrency,
            ..UploadLimits::default()
        };
        Ok(options)
    }
}

/// Which database, as flags (or a spec file). Passwords come from env or files.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SourceArgs {
    /// postgres, mariadb or redis.
    #[arg(long)]
    pub engine: Option<String>,
    /// Host name, IP address, or Unix socket directory/path.
    #[arg(long)]
    pub host: Option<String>,
    /// Port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Login user.
    #[arg(long)]
    pub user: Option<String>,
    /// Database (PostgreSQL: one; MariaDB: repeat, or none for all).
    #[arg(long = "database")]
    pub databases: Vec<String>,
    /// Environment variable holding the password.
    #[arg(long)]
    pub password_env: Option<String>,
    /// File holding the password (e.g. a mounted Secret).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Where the database client tools live.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// A JSON or YAML file with the whole connection (`{"engine": "postgres", "host": …}`),
    /// instead of the flags above.
    #[arg(long)]
    pub source_spec: Option<PathBuf>,
    /// A connection already parsed (the runner's spec).
    #[arg(skip)]
    pub resolved: Option<SourceConfig>,
}

impl SourceArgs {
    /// The connection, or `None` when no database was named.
    pub fn config(&self) -> Result<Option<SourceConfig>, BackupError> {
        if let Some(config) = &self.resolved {
            return Ok(Some(config.clone()));
        }
        if let Some(path) = &self.source_spec {
            let text = std::fs::read_to_string(path).map_err(|error| {
                BackupError::Config(format!("cannot read {}: {error}", path.display()))
            })?;
            return serde_yaml::from_str(&text).map(Some).map_err(|error| {
                BackupError::Config(format!(
                    "invalid source spec {}: {}",
                    path.display(),
                    super::spec_error::describe(&text, &error)
                ))
            });
        }
        let Some(engine) = &self.engine else {
            return Ok(None);
        };
        let mut spec = serde_json::Map::new();
        spec.insert("engine".into(), engine.as_str().into());
        spec.insert(
            "host".into(),
            self.host
                .clone()
                .unwrap_or_else(|| "127.0.0.1".into())
                .into(),
        );
        if let Some(port) = self.port {
            spec.insert("port".into(), port.into());
        }
        if let Some(user) = &self.user {
            let field = if engine == "redis" {
                "username"
            } else {
                "user"
            };
            spec.insert(field.into(), user.as_str().into());
        }
        match engine.as_str() {
            "postgres" => {
                let database = self
                    .databases
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "postgres".into());
                spec.insert("database".into(), database.into());
            }
            "mariadb" => {
                spec.insert("databases".into(), self.databases.clone().into());
            }
            _ => {}
        }
        if let Some(var) = &self.password_env {
            spec.insert("password".into(), serde_json::json!({ "env": var }));
        } else if let Some(path) = &self.password_file {
            spec.insert("password".into(), serde_json::json!({ "file": path }));
        }
        if let Some(dir) = &self.bin_dir {
            spec.insert("binDir".into(), serde_json::json!(dir));
        }
        serde_json::from_value(serde_json::Value::Object(spec))
            .map(Some)
            .map_err(|error| BackupError::Config(format!("invalid database flags: {error}")))
    }
}

/// Parses `key=value` labels.
pub fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>, BackupError> {
    labels
        .iter()
        .map(|label| {
            label
                .split_once('=')
                .filter(|(key, _)| !key.is_empty())
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .ok_or_else(|| BackupError::Config(format!("a label is key=value, not {label:?}")))
        })
        .collect()
}

/// `backup`'s object copy: a bucket folder copied into the backup (see
/// [`crate::engine::objects`]).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ObjectsArgs {
    /// A JSON or YAML file with the object copy, as a run spec's `objects` section:
    /// `{source: {store: s3, bucket: uploads, endpoint: …, credentialsFile: …}, prefix: media/,
    /// exclude: ["*.tmp"]}`. The flags below override its fields.
    #[arg(long)]
    pub objects_spec: Option<PathBuf>,
    /// The folder inside the source bucket to copy, any characters ("" = the whole bucket).
    #[arg(long, requires = "objects_spec")]
    pub objects_prefix: Option<String>,
    /// Copy only keys matching this glob (relative to the prefix; repeat).
    #[arg(long = "objects-include", requires = "objects_spec")]
    pub objects_include: Vec<String>,
    /// Never copy keys matching this glob (relative to the prefix; repeat), e.g. `*.tmp`,
    /// `**/thumbnails/**`.
    #[arg(long = "objects-exclude", requires = "objects_spec")]
    pub objects_exclude: Vec<String>,
    /// Copy every object again instead of referencing those unchanged since the last copy.
    #[arg(long, requires = "objects_spec")]
    pub objects_full: bool,
    /// Objects copied at once (default 8).
    #[arg(long, requires = "objects_spec")]
    pub objects_parallelism: Option<usize>,
}

impl ObjectsArgs {
    /// The object copy, or `None` without --objects-spec. Errors: `Config` for a file that
    /// cannot be read or parsed.
    pub fn config(&self) -> Result<Option<crate::engine::ObjectCopyConfig>, BackupError> {
        let Some(path) = &self.objects_spec else {
            return Ok(None);
        };
        let mut config: crate::engine::ObjectCopyConfig = read_yaml(path, "objects spec")?;
        if let Some(prefix) = &self.objects_prefix {
            config.prefix = prefix.clone();
        }
        config.include.extend(self.objects_include.iter().cloned());
        config.exclude.extend(self.objects_exclude.iter().cloned());
        config.full |= self.objects_full;
        if self.objects_parallelism.is_some() {
            config.parallelism = self.objects_parallelism;
        }
        Ok(Some(config))
    }
}

/// A store config from a JSON or YAML file (`--objects-to-spec`). Errors: `Config`.
pub fn read_store_spec(path: &std::path::Path) -> Result<crate::store::StoreConfig, BackupError> {
    read_yaml(path, "store spec")
}

fn read_yaml<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    what: &str,
) -> Result<T, BackupError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| BackupError::Config(format!("cannot read {}: {error}", path.display())))?;
    serde_yaml::from_str(&text).map_err(|error| {
        BackupError::Config(format!(
            "invalid {what} {}: {}",
            path.display(),
            super::spec_error::describe(&text, &error)
        ))
    })
}
