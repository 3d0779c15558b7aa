//! The Secrets and ConfigMaps a Pod's env and volumes read, fetched once per start attempt, and
//! the error kinds of preparing a container.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;

/// Why a container could not be prepared. Every kind keeps the Pod `Pending` with the container
/// waiting in `CreateContainerConfigError` and is retried, as the kubelet does.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrepareError {
    /// The spec names something that does not exist or is not emulated (the message says which).
    #[error("{0}")]
    Config(String),
    /// Reading a referenced object failed.
    #[error("reading {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// Writing a volume's files failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl PrepareError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// Key → bytes of one Secret or ConfigMap (`data` and `binaryData` merged).
pub(crate) type KeyData = BTreeMap<String, Vec<u8>>;

/// Reads Secrets and ConfigMaps of one namespace, each at most once.
pub(crate) struct Sources {
    secrets: Api<Secret>,
    config_maps: Api<ConfigMap>,
    secret_cache: HashMap<String, Option<KeyData>>,
    config_map_cache: HashMap<String, Option<KeyData>>,
}

impl Sources {
    pub(crate) fn new(client: &kube::Client, namespace: &str) -> Self {
        Self {
            secrets: Api::namespaced(client.clone(), namespace),
            config_maps: Api::namespaced(client.clone(), namespace),
            secret_cache: HashMap::new(),
            config_map_cache: HashMap::new(),
        }
    }

    /// The Secret's data, or `None` when it does not exist.
    pub(crate) async fn secret(&mut self, name: &str) -> Result<Option<&KeyData>, PrepareError> {
        if !self.secret_cache.contains_key(name) {
            let secret = self
                .secrets
                .get_opt(name)
                .await
                .map_err(|source| PrepareError::Api {
                    what: format!("secret {name:?}"),
                    source,
                })?;
            let data = secret.map(|secret| {
                let mut data: KeyData = BTreeMap::new();
                for (key, value) in secret.data.unwrap_or_default() {
                    data.insert(key, value.0);
                }
                // The apiserver folds `stringData` into `data`; kept for objects read elsewhere.
                for (key, value) in secret.string_data.unwrap_or_default() {
                    data.insert(key, value.into_bytes());
                }
                data
            });
            self.secret_cache.insert(name.to_owned(), data);
        }
        Ok(self.secret_cache.get(name).and_then(Option::as_ref))
    }

    /// The ConfigMap's data and binaryData, or `None` when it does not exist.
    pub(crate) async fn config_map(
        &mut self,
        name: &str,
    ) -> Result<Option<&KeyData>, PrepareError> {
        if !self.config_map_cache.contains_key(name) {
            let config_map =
                self.config_maps
                    .get_opt(name)
                    .await
                    .map_err(|source| PrepareError::Api {
                        what: format!("configmap {name:?}"),
                        source,
                    })?;
            let data = config_map.map(|config_map| {
                let mut data: KeyData = BTreeMap::new();
                for (key, value) in config_map.data.unwrap_or_default() {
                    data.insert(key, value.into_bytes());
                }
                for (key, value) in config_map.binary_data.unwrap_or_default() {
                    data.insert(key, value.0);
                }
                data
            });
            self.config_map_cache.insert(name.to_owned(), data);
        }
        Ok(self.config_map_cache.get(name).and_then(Option::as_ref))
    }
}

/// The kubelet's words for a missing object, e.g. `secret "db" not found`.
pub(crate) fn not_found(kind: &str, name: &str) -> PrepareError {
    PrepareError::Config(format!("{kind} {name:?} not found"))
}

/// The kubelet's words for a missing key, e.g. `couldn't find key password in Secret ns/db`.
pub(crate) fn key_not_found(kind: &str, namespace: &str, name: &str, key: &str) -> PrepareError {
    PrepareError::Config(format!(
        "couldn't find key {key} in {kind} {namespace}/{name}"
    ))
}
