//! A run's effective settings and the engine [`RunSpec`] built from them.
//!
//! A BackupRequest either names a VerticeBackup (`spec.backupRef`: its target, storage,
//! encryption, compression, executor, hooks and notifications apply) or carries them inline.
//! [`settings`] reads the VerticeBackup and checks that every referenced Secret key exists, so a
//! missing object becomes one clear `Ready=False` reason ([`ResolveError`], class `Wait`: retried
//! with backoff, because the object may appear without the BackupRequest changing).
//!
//! Secrets never enter a spec by value: [`Mounts`] gives each referenced Secret a volume and
//! the spec names FILES under a mount root (`/var/run/vertice/secrets/<volume>/<key>` in a
//! Job; a private temporary directory for the in-process executor). The same helpers
//! ([`source_config`], [`store_config`], [`encryption`]) serve restores and drills.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use vertice_core::error::{ErrorClass, ReconcileError};

use super::engine_config::{
    compression, encryption, object_copy_config, source_config, store_config, store_secret_keys,
};
use super::labels;
use super::mounts::Mounts;
use super::project::{self, RunIdentity};
use super::snapshot_config::{snapshot_config, snapshot_secret_keys};
use crate::api::executor::ExecutorSpec;
use crate::api::notify::{HooksSpec, NotificationSpec};
use crate::api::object_copy::ObjectCopySpec;
use crate::api::policy::{CompressionSpec, EncryptionSpec};
use crate::api::snapshot::SnapshotTarget;
use crate::api::storage::{StorageSpec, StoreKind};
use crate::api::target::DatabaseTarget;
use crate::api::{BackupRequest, VerticeBackup};
use crate::engine::spec::{self, Action, RunSpec};

/// Why a run's settings cannot be resolved. Messages name objects and keys, never values.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// `spec.backupRef` names a VerticeBackup that does not exist (yet).
    #[error("VerticeBackup {0:?} (spec.backupRef) does not exist")]
    PolicyNotFound(String),
    /// A referenced Secret does not exist (yet).
    #[error("Secret {0:?} does not exist")]
    SecretNotFound(String),
    /// A referenced Secret lacks the key.
    #[error("Secret {secret:?} has no key {key:?}")]
    SecretKeyMissing {
        /// The Secret.
        secret: String,
        /// The key.
        key: String,
    },
    /// The settings cannot run as asked (e.g. a local store with the in-process executor).
    #[error("{0}")]
    Unsupported(String),
    /// Reading from the Kubernetes API failed.
    #[error("reading from the Kubernetes API failed: {0}")]
    Kube(#[source] kube::Error),
    /// Writing the operator's private Secret files failed.
    #[error("cannot write the run's private files: {0}")]
    LocalFiles(#[source] std::io::Error),
}

impl ReconcileError for ResolveError {
    fn reason(&self) -> &'static str {
        match self {
            Self::PolicyNotFound(_) => "BackupPolicyNotFound",
            Self::SecretNotFound(_) => "SecretNotFound",
            Self::SecretKeyMissing { .. } => "SecretKeyMissing",
            Self::Unsupported(_) => "UnsupportedSettings",
            Self::Kube(_) => "KubernetesApiError",
            Self::LocalFiles(_) => "LocalFilesFailed",
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            Self::PolicyNotFound(_) | Self::SecretNotFound(_) | Self::SecretKeyMissing { .. } => {
                ErrorClass::Wait
            }
            Self::Unsupported(_) => ErrorClass::Permanent,
            Self::Kube(_) | Self::LocalFiles(_) => ErrorClass::Transient,
        }
    }
}

/// The VerticeBackup a run belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRef {
    /// Its name.
    pub name: String,
    /// Its UID.
    pub uid: String,
}

/// Everything one backup run uses, from its VerticeBackup or inline.
#[derive(Clone, Debug)]
pub struct RunSettings {
    /// The VerticeBackup (absent for an inline run).
    pub policy: Option<PolicyRef>,
    /// The database part when it is a dump, if any.
    pub target: Option<DatabaseTarget>,
    /// The database part when it is a managed-database snapshot (never with `target`).
    pub snapshot: Option<SnapshotTarget>,
    /// The object-storage part (a bucket copy), if any. A run has at least one part.
    pub object_store: Option<ObjectCopySpec>,
    /// The store.
    pub storage: StorageSpec,
    /// Encryption.
    pub encryption: EncryptionSpec,
    /// Compression (default zstd level 1).
    pub compression: Option<CompressionSpec>,
    /// Where it executes.
    pub executor: ExecutorSpec,
    /// HTTP hooks around the run.
    pub hooks: HooksSpec,
    /// Who is told.
    pub notifications: Vec<NotificationSpec>,
    /// The backup's name in the store.
    pub backup_name: String,
    /// Labels for the manifest: the request's own plus the owner labels (see [`labels`]).
    pub labels: BTreeMap<String, String>,
    /// The run's project and environment (see `project.rs`).
    pub identity: RunIdentity,
}

impl RunSettings {
    /// The name used in metrics and notifications: the VerticeBackup's, else the request's.
    pub fn backup_label(&self, request: &BackupRequest) -> String {
        self.policy
            .as_ref()
            .map(|policy| policy.name.clone())
            .unwrap_or_else(|| request.name_any())
    }
}

/// The settings of `request`: read from its VerticeBackup (`backupRef`) or its inline fields.
/// Errors: [`ResolveError::PolicyNotFound`] for a missing VerticeBackup; `Unsupported` for an
/// inline request without target/storage/encryption (admission refuses those).
pub async fn settings(
    request: &BackupRequest,
    policies: &Api<VerticeBackup>,
) -> Result<RunSettings, ResolveError> {
    let spec = &request.spec;
    let mut labels = spec.labels.clone();
    labels.insert(labels::REQUEST.into(), request.name_any());
    labels.insert(
        labels::REQUEST_UID.into(),
        request.uid().unwrap_or_default(),
    );
    let backup_name = spec
        .backup_name
        .clone()
        .unwrap_or_else(|| request.name_any());
    if let Some(reference) = &spec.backup_ref {
        let policy = policies
            .get_opt(&reference.name)
            .await
            .map_err(ResolveError::Kube)?
            .ok_or_else(|| ResolveError::PolicyNotFound(reference.name.clone()))?;
        let policy_ref = PolicyRef {
            name: policy.name_any(),
            uid: policy.uid().unwrap_or_default(),
        };
        labels.insert(labels::POLICY.into(), policy_ref.name.clone());
        labels.insert(labels::POLICY_UID.into(), policy_ref.uid.clone());
        let identity = project::identity(request, Some(&policy.spec));
        labels.extend(project::identity_labels(&identity));
        let vb = policy.spec;
        return Ok(RunSettings {
            policy: Some(policy_ref),
            // Admission refuses a VerticeBackup with both database parts.
            target: vb.target,
            snapshot: vb.snapshot,
            object_store: vb.object_store,
            storage: vb.storage,
            encryption: vb.encryption,
            compression: vb.compression,
            executor: spec.executor.clone().or(vb.executor).unwrap_or_default(),
            hooks: vb.hooks.unwrap_or_default(),
            notifications: vb.notifications,
            backup_name,
            labels,
            identity,
        });
    }
    let missing = |field: &str| ResolveError::Unsupported(format!("an inline run needs `{field}`"));
    if spec.target.is_none() && spec.snapshot.is_none() && spec.object_store.is_none() {
        return Err(missing("target`, `snapshot` or `objectStore"));
    }
    let identity = project::identity(request, None);
    labels.extend(project::identity_labels(&identity));
    Ok(RunSettings {
        policy: None,
        target: spec.target.clone(),
        snapshot: spec.snapshot.clone(),
        object_store: spec.object_store.clone(),
        storage: spec.storage.clone().ok_or_else(|| missing("storage"))?,
        encryption: spec
            .encryption
            .clone()
            .ok_or_else(|| missing("encryption"))?,
        compression: spec.compression.clone(),
        executor: spec.executor.clone().unwrap_or_default(),
        hooks: HooksSpec::default(),
        notifications: Vec::new(),
        backup_name,
        labels,
        identity,
    })
}

/// Every Secret key the run's data path reads (database password, store credentials,
/// encryption keys), as (secret, key) pairs. Hooks and notifications are read by the operator
/// itself through the notify library, not listed here.
pub fn data_secret_keys(settings: &RunSettings) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    if let Some(password) = settings
        .target
        .as_ref()
        .and_then(|target| target.connection.password_secret_ref.as_ref())
    {
        keys.push((password.name.clone(), password.key.clone()));
    }
    if let Some(snapshot) = &settings.snapshot {
        keys.extend(snapshot_secret_keys(snapshot));
    }
    keys.extend(store_secret_keys(&settings.storage));
    if let Some(objects) = &settings.object_store {
        keys.extend(store_secret_keys(&objects.source));
    }
    let encryption = &settings.encryption;
    for key in encryption
        .key_secret_ref
        .iter()
        .chain(&encryption.previous_key_secret_refs)
    {
        keys.push((key.name.clone(), key.key.clone()));
    }
    keys
}

/// Checks that every (secret, key) exists, reading each Secret once. The data read is dropped
/// at once; errors name the Secret and key only.
pub async fn check_secrets(
    secrets: &Api<Secret>,
    keys: &[(String, String)],
) -> Result<(), ResolveError> {
    let mut seen: BTreeMap<&str, Secret> = BTreeMap::new();
    for (name, key) in keys {
        if !seen.contains_key(name.as_str()) {
            let secret = secrets
                .get_opt(name)
                .await
                .map_err(ResolveError::Kube)?
                .ok_or_else(|| ResolveError::SecretNotFound(name.clone()))?;
            seen.insert(name, secret);
        }
        let has_key = seen.get(name.as_str()).is_some_and(|secret| {
            secret
                .data
                .as_ref()
                .is_some_and(|data| data.contains_key(key))
                || secret
                    .string_data
                    .as_ref()
                    .is_some_and(|data| data.contains_key(key))
        });
        if !has_key {
            return Err(ResolveError::SecretKeyMissing {
                secret: name.clone(),
                key: key.clone(),
            });
        }
    }
    Ok(())
}

/// The backup [`RunSpec`] of `settings` with its Secrets under `mounts`.
pub fn backup_spec(settings: &RunSettings, mounts: &mut Mounts) -> Result<RunSpec, ResolveError> {
    let source = match &settings.target {
        Some(target) => Some(source_config(
            &target.connection,
            target.database.as_deref(),
            &target.databases,
            mounts,
        )?),
        None => None,
    };
    let snapshot = settings
        .snapshot
        .as_ref()
        .map(|snapshot| snapshot_config(snapshot, mounts))
        .transpose()?;
    let (compression, compression_level) = compression(settings.compression.as_ref());
    let storage = store_config(&settings.storage, mounts);
    let objects = settings
        .object_store
        .as_ref()
        .map(|objects| object_copy_config(objects, mounts));
    Ok(RunSpec {
        action: Action::Backup,
        name: Some(settings.backup_name.clone()),
        source,
        snapshot,
        storage,
        objects,
        compression,
        compression_level,
        // The level adapts while compression holds the dump back (the engine's default).
        fixed_compression_level: false,
        chunk_size: None,
        parallelism: None,
        encryption: encryption(&settings.encryption, mounts),
        labels: settings.labels.clone(),
        restore: spec::RestoreSpec::default(),
    })
}

/// `s3://bucket/prefix/name`, `gs://…`, `azure://…` or `pvc://claim/prefix/name`: where a backup
/// is, for status and notifications.
pub fn location(storage: &StorageSpec, backup_name: &str) -> String {
    let (scheme, root) = match storage.store {
        StoreKind::S3 => ("s3", storage.bucket.clone().unwrap_or_default()),
        StoreKind::Gcs => ("gs", storage.bucket.clone().unwrap_or_default()),
        StoreKind::Azure => ("azure", storage.bucket.clone().unwrap_or_default()),
        StoreKind::Local => (
            "pvc",
            storage
                .persistent_volume_claim
                .as_ref()
                .map(|claim| claim.name.clone())
                .unwrap_or_default(),
        ),
    };
    let mut path = root;
    if let Some(prefix) = storage.prefix.as_deref().filter(|p| !p.is_empty()) {
        path = format!("{path}/{prefix}");
    }
    format!("{scheme}://{path}/{backup_name}")
}

/// A key identifying a storage location for the breaker: store kind, endpoint and bucket (the
/// prefix does not change whether the server answers).
pub fn storage_key(storage: &StorageSpec, namespace: &str) -> String {
    match storage.store {
        StoreKind::Local => format!(
            "local:{namespace}/{}",
            storage
                .persistent_volume_claim
                .as_ref()
                .map(|claim| claim.name.as_str())
                .unwrap_or_default()
        ),
        kind => format!(
            "{kind:?}:{}:{}",
            storage.endpoint.as_deref().unwrap_or_default(),
            storage.bucket.as_deref().unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::policy::CompressionAlgorithm;
    use crate::api::refs::SecretKeyRef;
    use crate::api::refs::{LocalRef, SecretRef};
    use crate::api::target::{EngineKind, ServerConnection};
    use crate::controller::mounts::{LOCAL_STORE_PATH, SECRETS_ROOT};
    use std::path::Path;

    fn settings() -> RunSettings {
        let key = |name: &str, key: &str| SecretKeyRef {
            name: name.into(),
            key: key.into(),
        };
        RunSettings {
            policy: None,
            object_store: None,
            snapshot: None,
            target: Some(DatabaseTarget {
                connection: ServerConnection {
                    engine: EngineKind::Postgres,
                    host: "db".into(),
                    port: Some(6543),
                    user: Some("backup".into()),
                    password_secret_ref: Some(key("db", "password")),
                    connect_timeout_seconds: None,
                },
                database: Some("app".into()),
                databases: Vec::new(),
            }),
            storage: StorageSpec {
                store: StoreKind::S3,
                bucket: Some("backups".into()),
                prefix: Some("team/app".into()),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: None,
                path_style: None,
                account: None,
                credentials_secret_ref: Some(SecretRef { name: "s3".into() }),
                persistent_volume_claim: None,
            },
            encryption: EncryptionSpec {
                key_secret_ref: Some(key("db", "backup-key")),
                previous_key_secret_refs: vec![key("old", "k")],
                disabled: None,
            },
            compression: None,
            executor: ExecutorSpec::default(),
            hooks: HooksSpec::default(),
            notifications: Vec::new(),
            backup_name: "nightly-1".into(),
            labels: BTreeMap::new(),
            identity: RunIdentity::default(),
        }
    }

    #[test]
    fn secrets_become_files_under_one_volume_per_secret() {
        let mut mounts = Mounts::new(SECRETS_ROOT);
        let spec = backup_spec(&settings(), &mut mounts).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json["source"]["password"]["file"],
            "/var/run/vertice/secrets/secret-0/password"
        );
        assert_eq!(
            json["storage"]["credentialsFile"],
            "/var/run/vertice/secrets/secret-1"
        );
        // The key shares the database Secret's volume.
        assert_eq!(
            json["encryption"]["keyFile"],
            "/var/run/vertice/secrets/secret-0/backup-key"
        );
        assert_eq!(
            json["encryption"]["previousKeyFiles"][0],
            "/var/run/vertice/secrets/secret-2/k"
        );
        let secrets: Vec<&str> = mounts.secrets.iter().map(|v| v.secret.as_str()).collect();
        assert_eq!(secrets, ["db", "s3", "old"]);
        assert_eq!(json["source"]["port"], 6543);
        assert_eq!(json["compression"], "zstd");
        assert_eq!(json["compressionLevel"], 1);
    }

    #[test]
    fn every_data_secret_key_is_listed_for_checking() {
        let keys = data_secret_keys(&settings());
        let pairs: Vec<(&str, &str)> = keys.iter().map(|(s, k)| (s.as_str(), k.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("db", "password"),
                ("s3", "AWS_ACCESS_KEY_ID"),
                ("s3", "AWS_SECRET_ACCESS_KEY"),
                ("db", "backup-key"),
                ("old", "k"),
            ]
        );
    }

    #[test]
    fn locations_name_store_bucket_prefix_and_backup() {
        let mut storage = settings().storage;
        assert_eq!(location(&storage, "b1"), "s3://backups/team/app/b1");
        storage.prefix = None;
        assert_eq!(location(&storage, "b1"), "s3://backups/b1");
        storage.store = StoreKind::Local;
        storage.bucket = None;
        storage.persistent_volume_claim = Some(LocalRef { name: "pvc".into() });
        assert_eq!(location(&storage, "b1"), "pvc://pvc/b1");
        let mut mounts = Mounts::new(SECRETS_ROOT);
        let config = store_config(&storage, &mut mounts);
        assert_eq!(config.path.as_deref(), Some(Path::new(LOCAL_STORE_PATH)));
        assert_eq!(mounts.claim.as_deref(), Some("pvc"));
    }

    #[test]
    fn compression_defaults_to_zstd_level_one() {
        assert_eq!(compression(None), ("zstd".into(), Some(1)));
        let gzip = CompressionSpec {
            algorithm: CompressionAlgorithm::Gzip,
            level: Some(9),
        };
        assert_eq!(compression(Some(&gzip)), ("gzip".into(), Some(9)));
        let none = CompressionSpec {
            algorithm: CompressionAlgorithm::None,
            level: None,
        };
        assert_eq!(compression(Some(&none)), ("none".into(), None));
    }
}
