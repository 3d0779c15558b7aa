//! A container's environment as the kubelet builds it: `envFrom` first (later sources win), then
//! `env` (which wins over `envFrom`), with `$(VAR)` references expanded in `env` values, `command`
//! and `args`; values from `secretKeyRef`, `configMapKeyRef` and `fieldRef`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod};

use super::sources::{PrepareError, Sources, key_not_found, not_found};

/// The address the Pod's processes are reachable at: they share the test's network namespace,
/// like a `hostNetwork` Pod on a node whose address is loopback.
pub(crate) const POD_IP: &str = "127.0.0.1";

/// The container's environment variables, name → value.
pub(crate) type Environment = BTreeMap<String, String>;

/// Builds the environment of `container` in `pod` (kubelet `makeEnvironmentVariables`). A missing
/// Secret, ConfigMap or key is an error unless the reference is `optional`.
pub(crate) async fn resolve(
    pod: &Pod,
    container: &Container,
    sources: &mut Sources,
) -> Result<Environment, PrepareError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut environment = Environment::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let data = if let Some(reference) = &from.config_map_ref {
            match sources.config_map(&reference.name).await? {
                Some(data) => data.clone(),
                None if reference.optional == Some(true) => continue,
                None => return Err(not_found("configmap", &reference.name)),
            }
        } else if let Some(reference) = &from.secret_ref {
            match sources.secret(&reference.name).await? {
                Some(data) => data.clone(),
                None if reference.optional == Some(true) => continue,
                None => return Err(not_found("secret", &reference.name)),
            }
        } else {
            continue;
        };
        for (key, value) in data {
            let name = format!("{prefix}{key}");
            // The kubelet skips (and reports in an event) names it cannot pass on.
            if is_env_var_name(&name) {
                environment.insert(name, String::from_utf8_lossy(&value).into_owned());
            }
        }
    }
    for variable in container.env.iter().flatten() {
        let value = match &variable.value_from {
            None => expand(variable.value.as_deref().unwrap_or_default(), &environment),
            Some(source) => {
                if let Some(selector) = &source.secret_key_ref {
                    let optional = selector.optional == Some(true);
                    match sources.secret(&selector.name).await? {
                        Some(data) => match data.get(&selector.key) {
                            Some(value) => String::from_utf8_lossy(value).into_owned(),
                            None if optional => continue,
                            None => {
                                return Err(key_not_found(
                                    "Secret",
                                    namespace,
                                    &selector.name,
                                    &selector.key,
                                ));
                            }
                        },
                        None if optional => continue,
                        None => return Err(not_found("secret", &selector.name)),
                    }
                } else if let Some(selector) = &source.config_map_key_ref {
                    let optional = selector.optional == Some(true);
                    match sources.config_map(&selector.name).await? {
                        Some(data) => match data.get(&selector.key) {
                            Some(value) => String::from_utf8_lossy(value).into_owned(),
                            None if optional => continue,
                            None => {
                                return Err(key_not_found(
                                    "ConfigMap",
                                    namespace,
                                    &selector.name,
                                    &selector.key,
                                ));
                            }
                        },
                        None if optional => continue,
                        None => return Err(not_found("configmap", &selector.name)),
                    }
                } else if let Some(selector) = &source.field_ref {
                    field_value(pod, selector)?
                } else {
                    return Err(PrepareError::Config(format!(
                        "env {}: only value, secretKeyRef, configMapKeyRef and fieldRef are \
                         emulated by testkit's kubelet",
                        variable.name
                    )));
                }
            }
        };
        environment.insert(variable.name.clone(), value);
    }
    Ok(environment)
}

/// The value a `fieldRef` selects (kubelet `podFieldSelectorRuntimeValue`). The whole-map forms
/// `metadata.labels`/`metadata.annotations` are for downwardAPI volumes only, as in Kubernetes.
pub(crate) fn field_value(
    pod: &Pod,
    selector: &ObjectFieldSelector,
) -> Result<String, PrepareError> {
    let path = selector.field_path.as_str();
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" | "status.hostIP" | "status.hostIPs" => POD_IP.to_owned(),
        _ => {
            if let Some(key) = subscript(path, "metadata.labels") {
                map_value(meta.labels.as_ref(), key)
            } else if let Some(key) = subscript(path, "metadata.annotations") {
                map_value(meta.annotations.as_ref(), key)
            } else {
                return Err(PrepareError::Config(format!(
                    "fieldRef {path:?} is not supported"
                )));
            }
        }
    };
    Ok(value)
}

fn map_value(map: Option<&BTreeMap<String, String>>, key: &str) -> String {
    map.and_then(|map| map.get(key))
        .cloned()
        .unwrap_or_default()
}

/// `key` from `<prefix>['key']`.
fn subscript<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)?
        .strip_prefix("['")?
        .strip_suffix("']")
}

/// Relaxed env var names (GA since Kubernetes 1.34): printable ASCII without `=`, not empty.
fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// Kubernetes variable expansion: `$(NAME)` becomes the value of `NAME` when it is defined and
/// stays as written otherwise; `$$` is a literal `$`; any other `$` is kept.
pub(crate) fn expand(input: &str, environment: &Environment) -> String {
    let mut output = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        output.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            output.push('$');
            rest = tail;
        } else if let Some(reference) = after.strip_prefix('(') {
            match reference.find(')') {
                Some(end) => {
                    let name = &reference[..end];
                    match environment.get(name) {
                        Some(value) => output.push_str(value),
                        None => {
                            output.push_str("$(");
                            output.push_str(name);
                            output.push(')');
                        }
                    }
                    rest = &reference[end + 1..];
                }
                None => {
                    output.push('$');
                    output.push_str(after);
                    rest = "";
                }
            }
        } else {
            output.push('$');
            rest = after;
        }
    }
    output.push_str(rest);
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn expansion_follows_the_kubernetes_rules() {
        let environment = env(&[("A", "alpha"), ("B", "b$(A)")]);
        let cases = [
            ("$(A)", "alpha"),
            ("x-$(A)-y", "x-alpha-y"),
            ("$(A)$(A)", "alphaalpha"),
            ("$(MISSING)", "$(MISSING)"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$alpha"),
            ("$A", "$A"),
            ("cost $5", "cost $5"),
            ("trailing $", "trailing $"),
            ("$(unclosed", "$(unclosed"),
            // Values are not expanded again.
            ("$(B)", "b$(A)"),
            ("", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(expand(input, &environment), expected, "input {input:?}");
        }
    }

    #[test]
    fn env_var_names_are_printable_ascii_without_equals() {
        for good in ["A", "a.b-c", "1X", "with space", "~"] {
            assert!(is_env_var_name(good), "{good:?}");
        }
        for bad in ["", "A=B", "tab\t", "é", "nl\n"] {
            assert!(!is_env_var_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn field_refs_read_the_pod() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".to_owned());
        pod.metadata.namespace = Some("ns".to_owned());
        pod.metadata.uid = Some("u-1".to_owned());
        pod.metadata.labels = Some([("app".to_owned(), "db".to_owned())].into());
        pod.metadata.annotations = Some([("a/b".to_owned(), "v".to_owned())].into());
        let select = |path: &str| {
            field_value(
                &pod,
                &ObjectFieldSelector {
                    field_path: path.to_owned(),
                    api_version: None,
                },
            )
        };
        let cases = [
            ("metadata.name", "p"),
            ("metadata.namespace", "ns"),
            ("metadata.uid", "u-1"),
            ("metadata.labels['app']", "db"),
            ("metadata.labels['absent']", ""),
            ("metadata.annotations['a/b']", "v"),
            ("spec.nodeName", ""),
            ("status.podIP", POD_IP),
        ];
        for (path, expected) in cases {
            assert_eq!(select(path).unwrap(), expected, "{path}");
        }
        for unsupported in ["metadata.labels", "spec.hostname", "metadata.labels['x'"] {
            assert!(
                matches!(select(unsupported), Err(PrepareError::Config(_))),
                "{unsupported}"
            );
        }
    }
}
