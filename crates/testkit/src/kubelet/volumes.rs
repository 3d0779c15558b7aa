//! A Pod's volumes as host directories, and each container's bind mounts onto them.
//!
//! Emulated: `secret` and `configMap` (all keys, or `items` with per-item `mode`; `defaultMode`,
//! default 0644; `optional`), `downwardAPI` (`fieldRef` items), `emptyDir` (a fresh directory
//! per Pod, whatever the `medium`), and `persistentVolumeClaim` (one directory per claim for the
//! kubelet's lifetime, shared by every Pod naming it; the claim object must exist). Secret,
//! ConfigMap and downwardAPI volumes are mounted read-only, as the kubelet does. Files are
//! written once when the Pod starts: later changes of the Secret are not synced into them.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, PersistentVolumeClaim, Pod, Volume};
use kube::Api;

use super::env::{Environment, expand, field_value};
use super::sources::{KeyData, PrepareError, Sources, key_not_found, not_found};

/// The mode of a projected file when neither the item nor the volume sets one (Kubernetes
/// `SecretVolumeSourceDefaultMode` and friends).
const DEFAULT_FILE_MODE: u32 = 0o644;

/// One bind mount inside a container's mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The host file or directory.
    pub(crate) source: PathBuf,
    /// Where the container sees it (an absolute path).
    pub(crate) target: String,
    pub(crate) read_only: bool,
}

/// A volume materialised on the host.
struct VolumeDir {
    path: PathBuf,
    /// Secret, ConfigMap and downwardAPI volumes, and read-only claims.
    read_only: bool,
    /// emptyDir and PVC: a missing `subPath` is created, as the kubelet does.
    writable_tree: bool,
}

/// One file of a Secret, ConfigMap or downwardAPI volume.
struct VolumeFile {
    /// Relative to the volume.
    path: String,
    contents: Vec<u8>,
    /// The item's own mode, else the volume's `defaultMode`.
    mode: Option<i32>,
}

/// The Pod's volumes by name.
pub(crate) struct PodVolumes {
    volumes: BTreeMap<String, VolumeDir>,
}

/// Writes every volume of `pod` under `pod_dir/volumes`, and makes claim directories under
/// `claims_root/<namespace>/<claim>`.
pub(crate) async fn materialise(
    client: &kube::Client,
    pod: &Pod,
    sources: &mut Sources,
    pod_dir: &Path,
    claims_root: &Path,
) -> Result<PodVolumes, PrepareError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut volumes = BTreeMap::new();
    for volume in pod
        .spec
        .iter()
        .flat_map(|spec| spec.volumes.iter().flatten())
    {
        let path = pod_dir.join("volumes").join(&volume.name);
        let dir =
            materialise_one(client, namespace, pod, volume, sources, path, claims_root).await?;
        volumes.insert(volume.name.clone(), dir);
    }
    Ok(PodVolumes { volumes })
}

async fn materialise_one(
    client: &kube::Client,
    namespace: &str,
    pod: &Pod,
    volume: &Volume,
    sources: &mut Sources,
    path: PathBuf,
    claims_root: &Path,
) -> Result<VolumeDir, PrepareError> {
    let fresh = |path: &Path| -> Result<(), PrepareError> {
        if path.exists() {
            std::fs::remove_dir_all(path)
                .map_err(PrepareError::io(format!("clearing {}", path.display())))?;
        }
        std::fs::create_dir_all(path)
            .map_err(PrepareError::io(format!("creating {}", path.display())))
    };
    if let Some(source) = &volume.secret {
        let name = source.secret_name.as_deref().unwrap_or_default();
        fresh(&path)?;
        let data = sources.secret(name).await?.cloned();
        let optional = source.optional == Some(true);
        match data {
            Some(data) => {
                let files = select_keys(
                    "Secret",
                    namespace,
                    name,
                    &data,
                    source.items.as_deref(),
                    optional,
                )?;
                write_files(&path, files, source.default_mode)?;
            }
            None if optional => {}
            None => return Err(not_found("secret", name)),
        }
        return Ok(VolumeDir {
            path,
            read_only: true,
            writable_tree: false,
        });
    }
    if let Some(source) = &volume.config_map {
        let name = source.name.as_str();
        fresh(&path)?;
        let data = sources.config_map(name).await?.cloned();
        let optional = source.optional == Some(true);
        match data {
            Some(data) => {
                let files = select_keys(
                    "ConfigMap",
                    namespace,
                    name,
                    &data,
                    source.items.as_deref(),
                    optional,
                )?;
                write_files(&path, files, source.default_mode)?;
            }
            None if optional => {}
            None => return Err(not_found("configmap", name)),
        }
        return Ok(VolumeDir {
            path,
            read_only: true,
            writable_tree: false,
        });
    }
    if let Some(source) = &volume.downward_api {
        fresh(&path)?;
        let mut files = Vec::new();
        for item in source.items.iter().flatten() {
            let Some(selector) = &item.field_ref else {
                return Err(PrepareError::Config(format!(
                    "downwardAPI volume {}: only fieldRef items are emulated",
                    volume.name
                )));
            };
            let text = match selector.field_path.as_str() {
                "metadata.labels" => format_map(pod.metadata.labels.as_ref()),
                "metadata.annotations" => format_map(pod.metadata.annotations.as_ref()),
                _ => field_value(pod, selector)?,
            };
            files.push(VolumeFile {
                path: item.path.clone(),
                contents: text.into_bytes(),
                mode: item.mode,
            });
        }
        write_files(&path, files, source.default_mode)?;
        return Ok(VolumeDir {
            path,
            read_only: true,
            writable_tree: false,
        });
    }
    if volume.empty_dir.is_some() {
        fresh(&path)?;
        return Ok(VolumeDir {
            path,
            read_only: false,
            writable_tree: true,
        });
    }
    if let Some(source) = &volume.persistent_volume_claim {
        let claim = source.claim_name.as_str();
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        let exists = claims
            .get_opt(claim)
            .await
            .map_err(|source| PrepareError::Api {
                what: format!("persistentvolumeclaim {claim:?}"),
                source,
            })?
            .is_some();
        if !exists {
            return Err(not_found("persistentvolumeclaim", claim));
        }
        let path = claims_root.join(namespace).join(claim);
        std::fs::create_dir_all(&path)
            .map_err(PrepareError::io(format!("creating {}", path.display())))?;
        return Ok(VolumeDir {
            path,
            read_only: source.read_only == Some(true),
            writable_tree: true,
        });
    }
    Err(PrepareError::Config(format!(
        "volume {}: only secret, configMap, downwardAPI, emptyDir and persistentVolumeClaim \
         volumes are emulated by testkit's kubelet",
        volume.name
    )))
}

/// The files of a Secret/ConfigMap volume: every key, or just `items` (a missing item key is an
/// error unless the volume is optional).
fn select_keys(
    kind: &str,
    namespace: &str,
    name: &str,
    data: &KeyData,
    items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
    optional: bool,
) -> Result<Vec<VolumeFile>, PrepareError> {
    let Some(items) = items.filter(|items| !items.is_empty()) else {
        return Ok(data
            .iter()
            .map(|(key, value)| VolumeFile {
                path: key.clone(),
                contents: value.clone(),
                mode: None,
            })
            .collect());
    };
    let mut files = Vec::new();
    for item in items {
        match data.get(&item.key) {
            Some(value) => files.push(VolumeFile {
                path: item.path.clone(),
                contents: value.clone(),
                mode: item.mode,
            }),
            None if optional => {}
            None => return Err(key_not_found(kind, namespace, name, &item.key)),
        }
    }
    Ok(files)
}

fn write_files(
    dir: &Path,
    files: Vec<VolumeFile>,
    default_mode: Option<i32>,
) -> Result<(), PrepareError> {
    for VolumeFile {
        path,
        contents,
        mode,
    } in files
    {
        let path = dir.join(checked_relative(&path)?);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(PrepareError::io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, contents)
            .map_err(PrepareError::io(format!("writing {}", path.display())))?;
        let mode = mode
            .or(default_mode)
            .and_then(|mode| u32::try_from(mode).ok())
            .unwrap_or(DEFAULT_FILE_MODE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(PrepareError::io(format!("chmod {}", path.display())))?;
    }
    Ok(())
}

/// A relative path without `..` (the apiserver validates this too; checked again because the
/// path becomes a host path here).
fn checked_relative(path: &str) -> Result<&Path, PrepareError> {
    let relative = Path::new(path);
    let safe = !path.is_empty()
        && relative
            .components()
            .all(|component| matches!(component, Component::Normal(_)));
    if safe {
        Ok(relative)
    } else {
        Err(PrepareError::Config(format!(
            "path {path:?} must be relative and must not contain '..'"
        )))
    }
}

/// Kubernetes `fieldpath.FormatMap`: `key="value"` lines in key order.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={value:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The bind mounts of `container`, parents before children. `subPathExpr` is expanded with the
/// container's environment.
pub(crate) fn container_mounts(
    volumes: &PodVolumes,
    container: &Container,
    environment: &Environment,
) -> Result<Vec<Mount>, PrepareError> {
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let Some(volume) = volumes.volumes.get(&mount.name) else {
            return Err(PrepareError::Config(format!(
                "volumeMount {}: no volume of that name",
                mount.name
            )));
        };
        let sub_path = match (&mount.sub_path, &mount.sub_path_expr) {
            (Some(path), _) if !path.is_empty() => Some(path.clone()),
            (_, Some(expression)) if !expression.is_empty() => {
                Some(expand(expression, environment))
            }
            _ => None,
        };
        let source = match sub_path {
            None => volume.path.clone(),
            Some(sub_path) => {
                let source = volume.path.join(checked_relative(&sub_path)?);
                if !source.exists() {
                    if !volume.writable_tree {
                        return Err(PrepareError::Config(format!(
                            "volumeMount {}: subPath {sub_path:?} does not exist",
                            mount.name
                        )));
                    }
                    std::fs::create_dir_all(&source)
                        .map_err(PrepareError::io(format!("creating {}", source.display())))?;
                }
                source
            }
        };
        mounts.push(Mount {
            source,
            target: mount.mount_path.clone(),
            read_only: volume.read_only || mount.read_only == Some(true),
        });
    }
    sort_parents_first(&mut mounts);
    Ok(mounts)
}

/// Orders mounts so a mount at `/a` comes before one at `/a/b` (runtimes sort by depth too).
pub(crate) fn sort_parents_first(mounts: &mut [Mount]) {
    mounts.sort_by_key(|mount| Path::new(&mount.target).components().count());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_paths_must_stay_inside_the_volume() {
        for good in ["a", "dir/a", "a.b/c-d"] {
            assert!(checked_relative(good).is_ok(), "{good}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a", "a/./b/.."] {
            assert!(checked_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn maps_are_formatted_like_the_downward_api() {
        let map: BTreeMap<String, String> = [
            ("b".to_owned(), "two \"q\"".to_owned()),
            ("a".to_owned(), "one".to_owned()),
        ]
        .into();
        assert_eq!(format_map(Some(&map)), "a=\"one\"\nb=\"two \\\"q\\\"\"");
        assert_eq!(format_map(None), "");
    }

    #[test]
    fn parents_are_mounted_before_children() {
        let mount = |target: &str| Mount {
            source: PathBuf::from("/x"),
            target: target.to_owned(),
            read_only: false,
        };
        let mut mounts = vec![mount("/a/b/c"), mount("/dev/termination-log"), mount("/a")];
        sort_parents_first(&mut mounts);
        let targets: Vec<&str> = mounts.iter().map(|m| m.target.as_str()).collect();
        assert_eq!(targets, ["/a", "/dev/termination-log", "/a/b/c"]);
    }
}
