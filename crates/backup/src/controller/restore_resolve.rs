//! A RestoreRequest's effective settings and the engine [`RunSpec`] built from them.
//!
//! The backup comes from a succeeded BackupRequest (`source.backupRequestRef`: its store and
//! encryption are the ones that run used, read through [`resolve::settings`], and the backup
//! name is the one in its status) or from `source.storage` + `backupName` + `encryption`.
//! The target database gets a deterministic default name, so an operator restarted mid-restore
//! repeats the same restore instead of starting a second one into another database.

use kube::{Api, ResourceExt};
use vertice_core::error::{ErrorClass, ReconcileError};

use super::engine_config;
use super::mounts::Mounts;
use super::resolve::{self, ResolveError};
use crate::api::executor::ExecutorSpec;
use crate::api::policy::EncryptionSpec;
use crate::api::restore_request::{RestoreRequest, RestoreTargetSpec};
use crate::api::run::RunPhase;
use crate::api::storage::StorageSpec;
use crate::api::target::{EngineKind, ServerConnection};
use crate::api::{BackupRequest, VerticeBackup};
use crate::engine::spec::{self, Action, RunSpec};
use crate::source::Engine;
use crate::source::identifier::generated_name;

/// Where the backup to restore is.
#[derive(Clone, Debug)]
pub struct RestoreSettings {
    /// The backup's name in the store.
    pub backup_name: String,
    /// The store holding it.
    pub storage: StorageSpec,
    /// The keys that open it.
    pub encryption: EncryptionSpec,
    /// The database the backup was taken from, when known (names the default target).
    pub source_database: Option<String>,
    /// Where the restore executes.
    pub executor: ExecutorSpec,
}

/// Why a restore cannot start (yet).
#[derive(Debug)]
pub enum SourceState {
    /// Ready to run.
    Ready(Box<RestoreSettings>),
    /// The BackupRequest has not finished yet: wait for it (its changes wake this request).
    Waiting(String),
    /// The BackupRequest failed: there is nothing to restore.
    BackupFailed(String),
}

/// Why a restore's settings cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum RestoreResolveError {
    /// `source.backupRequestRef` names a BackupRequest that does not exist (yet).
    #[error("BackupRequest {0:?} (source.backupRequestRef) does not exist")]
    RunNotFound(String),
    /// Its VerticeBackup, a Secret or a field is missing, or the API failed.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
}

impl ReconcileError for RestoreResolveError {
    fn reason(&self) -> &'static str {
        match self {
            Self::RunNotFound(_) => "BackupRequestNotFound",
            Self::Resolve(error) => error.reason(),
        }
    }

    fn class(&self) -> ErrorClass {
        match self {
            Self::RunNotFound(_) => ErrorClass::Wait,
            Self::Resolve(error) => error.class(),
        }
    }
}

/// Resolves `request`'s backup. Errors: a missing BackupRequest, VerticeBackup or field.
pub async fn source(
    request: &RestoreRequest,
    runs: &Api<BackupRequest>,
    policies: &Api<VerticeBackup>,
) -> Result<SourceState, RestoreResolveError> {
    let source = &request.spec.source;
    let executor = request.spec.executor.clone().unwrap_or_default();
    if let Some(reference) = &source.backup_request_ref {
        let run = runs
            .get_opt(&reference.name)
            .await
            .map_err(ResolveError::Kube)?
            .ok_or_else(|| RestoreResolveError::RunNotFound(reference.name.clone()))?;
        let status = run.status.clone().unwrap_or_default();
        match status.phase {
            RunPhase::Succeeded => {}
            RunPhase::Failed => {
                return Ok(SourceState::BackupFailed(format!(
                    "BackupRequest {:?} failed; there is no backup to restore",
                    reference.name
                )));
            }
            phase => {
                return Ok(SourceState::Waiting(format!(
                    "waiting for BackupRequest {:?} to succeed (it is {phase:?})",
                    reference.name
                )));
            }
        }
        let settings = resolve::settings(&run, policies).await?;
        let backup_name = status
            .result
            .and_then(|result| result.backup_name)
            .unwrap_or(settings.backup_name);
        return Ok(SourceState::Ready(Box::new(RestoreSettings {
            backup_name,
            storage: settings.storage,
            encryption: settings.encryption,
            source_database: settings.target.and_then(|target| target.database),
            executor,
        })));
    }
    let missing =
        |field: &str| ResolveError::Unsupported(format!("the restore source needs `{field}`"));
    Ok(SourceState::Ready(Box::new(RestoreSettings {
        backup_name: source
            .backup_name
            .clone()
            .ok_or_else(|| missing("backupName"))?,
        storage: source.storage.clone().ok_or_else(|| missing("storage"))?,
        encryption: source
            .encryption
            .clone()
            .ok_or_else(|| missing("encryption"))?,
        source_database: None,
        executor,
    })))
}

/// The engine of a CRD engine kind.
fn engine(kind: EngineKind) -> Engine {
    match kind {
        EngineKind::Postgres => Engine::Postgres,
        EngineKind::Mariadb => Engine::Mariadb,
        EngineKind::Redis => Engine::Redis,
    }
}

/// The database a restore creates: `target.database`, else `<source database or request
/// name>_restore_<first 8 hex digits of the request's UID>` within the engine's name limit.
/// Deterministic: the same request always restores into the same database.
pub fn target_database(request: &RestoreRequest, settings: &RestoreSettings) -> String {
    if let Some(database) = &request.spec.target.database {
        return database.clone();
    }
    let base = settings
        .source_database
        .clone()
        .unwrap_or_else(|| request.name_any().replace('-', "_"));
    let uid = request.uid().unwrap_or_default().replace('-', "");
    let tag: String = uid.chars().take(8).collect();
    generated_name(
        engine(request.spec.target.engine),
        &base,
        &format!("_restore_{tag}"),
    )
}

/// `postgres://host:port/database` (or `mariadb://…`): where the restore went, for status.
pub fn describe_target(target: &RestoreTargetSpec, database: &str) -> String {
    let (scheme, default_port) = match target.engine {
        EngineKind::Postgres => ("postgres", 5432),
        EngineKind::Mariadb => ("mariadb", 3306),
        EngineKind::Redis => ("redis", 6379),
    };
    format!(
        "{scheme}://{}:{}/{database}",
        target.host.as_deref().unwrap_or_default(),
        target.port.unwrap_or(default_port)
    )
}

/// Whether `request` is a VerticeBackup's restore drill (it is owned by one, see
/// `verification.rs`): it restores into a scratch database that the runner removes after
/// comparing the counts (action `drill`), so drills do not pile up databases.
pub fn is_drill(request: &RestoreRequest) -> bool {
    request
        .owner_references()
        .iter()
        .any(|owner| owner.controller == Some(true) && owner.kind == "VerticeBackup")
}

/// The restore [`RunSpec`] of `request`, with its Secrets under `mounts`. Redis targets (an
/// RDB file written into a volume of the Redis server) are not supported by the operator yet.
pub fn restore_spec(
    request: &RestoreRequest,
    settings: &RestoreSettings,
    mounts: &mut Mounts,
) -> Result<RunSpec, ResolveError> {
    let target = &request.spec.target;
    if target.engine == EngineKind::Redis {
        return Err(ResolveError::Unsupported(
            "restoring redis through a RestoreRequest is not supported yet: use \
             `vertice-backup restore --target-data-dir` on the Redis server's volume"
                .into(),
        ));
    }
    let drill = is_drill(request);
    // A drill names its own scratch database; PostgreSQL still needs one to connect to.
    let database = if drill {
        "postgres".to_owned()
    } else {
        target_database(request, settings)
    };
    let connection = ServerConnection {
        engine: target.engine,
        host: target.host.clone().unwrap_or_default(),
        port: target.port,
        user: target.user.clone(),
        password_secret_ref: target.password_secret_ref.clone(),
        connect_timeout_seconds: None,
    };
    let source = engine_config::source_config(&connection, Some(&database), &[], mounts)?;
    if drill {
        return Ok(RunSpec {
            action: Action::Drill,
            name: Some(settings.backup_name.clone()),
            source: Some(source),
            storage: engine_config::store_config(&settings.storage, mounts),
            encryption: engine_config::encryption(&settings.encryption, mounts),
            ..RunSpec::default()
        });
    }
    Ok(RunSpec {
        action: Action::Restore,
        name: Some(settings.backup_name.clone()),
        source: Some(source),
        snapshot: None,
        storage: engine_config::store_config(&settings.storage, mounts),
        objects: None,
        compression: "zstd".into(),
        compression_level: None,
        fixed_compression_level: false,
        chunk_size: None,
        parallelism: None,
        encryption: engine_config::encryption(&settings.encryption, mounts),
        labels: Default::default(),
        restore: spec::RestoreSpec {
            target_database: Some(database),
            target_data_dir: None,
            overwrite: request.spec.overwrite.unwrap_or(false),
            no_owner: request.spec.no_owner.unwrap_or(false),
            no_privileges: request.spec.no_privileges.unwrap_or(false),
            keep_events_enabled: false,
            verify: request.spec.verify.unwrap_or(true),
        },
    })
}

/// Every Secret key the restore reads: the target's password, the store's credentials and
/// the encryption keys.
pub fn secret_keys(request: &RestoreRequest, settings: &RestoreSettings) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    if let Some(password) = &request.spec.target.password_secret_ref {
        keys.push((password.name.clone(), password.key.clone()));
    }
    keys.extend(engine_config::store_secret_keys(&settings.storage));
    for key in settings
        .encryption
        .key_secret_ref
        .iter()
        .chain(&settings.encryption.previous_key_secret_refs)
    {
        keys.push((key.name.clone(), key.key.clone()));
    }
    keys
}
