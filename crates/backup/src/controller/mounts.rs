//! Where a run's Secrets and store volume are mounted: [`Mounts`] gives each referenced Secret a
//! volume, and the run spec names files under its root (`/var/run/vertice/secrets` in a Job, a
//! private temporary directory for the in-process executor).

use std::path::{Path, PathBuf};

use crate::api::refs::SecretKeyRef;

/// Where a Job mounts the Secrets a run needs (one directory per Secret).
pub const SECRETS_ROOT: &str = "/var/run/vertice/secrets";

/// Where a Job mounts a `local` store's PersistentVolumeClaim.
pub const LOCAL_STORE_PATH: &str = "/var/run/vertice/store";

/// One Secret mounted as a directory: volume `volume` holds one file per key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretVolume {
    /// The Pod volume name (`secret-<n>`).
    pub volume: String,
    /// The Secret's name.
    pub secret: String,
}

/// What a run mounts: its Secrets (each under `root/<volume>/`) and, for a local store, a
/// PersistentVolumeClaim at [`LOCAL_STORE_PATH`].
#[derive(Clone, Debug)]
pub struct Mounts {
    root: PathBuf,
    /// The Secret volumes, in order of first use.
    pub secrets: Vec<SecretVolume>,
    /// The claim of a local store.
    pub claim: Option<String>,
}

impl Mounts {
    /// Mounts under `root` ([`SECRETS_ROOT`] in a Job).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            secrets: Vec::new(),
            claim: None,
        }
    }

    /// The mount root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory where `secret` is mounted (adding a volume for it on first use).
    pub fn secret_dir(&mut self, secret: &str) -> PathBuf {
        let volume = match self.secrets.iter().find(|v| v.secret == secret) {
            Some(existing) => existing.volume.clone(),
            None => {
                let volume = format!("secret-{}", self.secrets.len());
                self.secrets.push(SecretVolume {
                    volume: volume.clone(),
                    secret: secret.to_owned(),
                });
                volume
            }
        };
        self.root.join(volume)
    }

    /// The file that holds `reference`'s key.
    pub fn secret_file(&mut self, reference: &SecretKeyRef) -> PathBuf {
        self.secret_dir(&reference.name).join(&reference.key)
    }
}
