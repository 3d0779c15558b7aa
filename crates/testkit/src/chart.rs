//! An operator's Helm chart in tests: render some of its templates with `helm template`, apply
//! them to the test control plane with server-side apply, and talk to the apiserver as the
//! ServiceAccount the chart creates — so an end-to-end test runs the operator with exactly the
//! RBAC the chart grants, and a rule the chart lacks fails the test (issue 9).
//!
//! Nothing here knows one operator: a chart is a directory, its templates are named by the
//! caller, and the ServiceAccount is found in what the chart renders.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{self, Scope};
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::Value;

use crate::control_plane::ControlPlane;
use crate::tools::tool_binary;

/// The field manager of the objects [`apply_server_side`] writes when the caller names none.
pub const FIELD_MANAGER: &str = "vertice-testkit-chart";

/// The templates that hold a chart's ServiceAccount and RBAC, by the convention every
/// operator's chart follows (`charts/<operator>/templates/`).
pub const RBAC_TEMPLATES: [&str; 2] = ["templates/serviceaccount.yaml", "templates/rbac.yaml"];

/// The kind a chart's ServiceAccount has in its rendered YAML.
const SERVICE_ACCOUNT_KIND: &str = "ServiceAccount";

/// `helm template <release> <chart_dir> --namespace <namespace> --show-only <template>… --set
/// <key=value>…`: the rendered YAML stream of `templates` (paths inside the chart, e.g.
/// `templates/rbac.yaml`; all of them when empty).
///
/// Errors: helm missing (with how to install it), or helm's own message (a template that
/// renders nothing, a value the schema refuses, a chart that does not parse).
pub fn render(
    chart_dir: &Path,
    release: &str,
    namespace: &str,
    templates: &[&str],
    set: &[(&str, &str)],
) -> anyhow::Result<String> {
    let helm = tool_binary("helm")?;
    let mut command = Command::new(&helm);
    command
        .arg("template")
        .arg(release)
        .arg(chart_dir)
        .args(["--namespace", namespace]);
    for template in templates {
        command.args(["--show-only", template]);
    }
    for (key, value) in set {
        command.arg("--set").arg(format!("{key}={value}"));
    }
    let output = command
        .output()
        .with_context(|| format!("running {}", helm.display()))?;
    if !output.status.success() {
        bail!(
            "helm template {release} {}: {}",
            chart_dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).context("helm template printed text that is not UTF-8")
}

/// The objects of a multi-document YAML stream, in order (empty documents skipped).
///
/// Errors: a document that is not YAML.
pub fn documents(yaml: &str) -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value = Value::deserialize(document).context("parsing rendered YAML")?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// Server-side applies every object of `manifests` (a YAML stream, e.g. from [`render`]) with
/// `client` under `field_manager`, taking over fields another manager owns (as
/// `kubectl apply --server-side --force-conflicts`), in order. An object without
/// `metadata.namespace` of a namespaced kind goes to `default_namespace`. Applying the same
/// stream again changes nothing. Returns each object as `Kind namespace/name` (or `Kind name`).
///
/// Errors: a document without `apiVersion`, `kind` or `metadata.name`; a kind the apiserver
/// does not serve; the apiserver refusing an object (its message, naming the object).
pub async fn apply_server_side(
    client: &Client,
    manifests: &str,
    default_namespace: &str,
    field_manager: &str,
) -> anyhow::Result<Vec<String>> {
    let params = PatchParams::apply(field_manager).force();
    let mut applied = Vec::new();
    for object in documents(manifests)? {
        let object: DynamicObject =
            serde_json::from_value(object).context("a rendered document is not an object")?;
        let Some(types) = object.types.clone() else {
            bail!("a rendered document has no apiVersion and kind");
        };
        let Some(name) = object.metadata.name.clone() else {
            bail!("a rendered {} has no metadata.name", types.kind);
        };
        let (group, version) = match types.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", types.api_version.as_str()),
        };
        let kind = GroupVersionKind::gvk(group, version, &types.kind);
        let (resource, capabilities) = discovery::pinned_kind(client, &kind)
            .await
            .with_context(|| format!("the apiserver does not serve {kind:?}"))?;
        let (api, shown) = if capabilities.scope == Scope::Namespaced {
            let namespace = object
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| default_namespace.to_owned());
            let shown = format!("{} {namespace}/{name}", types.kind);
            (
                Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &resource),
                shown,
            )
        } else {
            let shown = format!("{} {name}", types.kind);
            (
                Api::<DynamicObject>::all_with(client.clone(), &resource),
                shown,
            )
        };
        api.patch(&name, &params, &Patch::Apply(&object))
            .await
            .with_context(|| format!("server-side apply of {shown}"))?;
        applied.push(shown);
    }
    Ok(applied)
}

/// The name of the only ServiceAccount in `manifests` (a YAML stream).
///
/// Errors: none or more than one rendered (the caller's templates or values are wrong).
pub fn service_account_name(manifests: &str) -> anyhow::Result<String> {
    let names: Vec<String> = documents(manifests)?
        .iter()
        .filter(|object| object["kind"].as_str() == Some(SERVICE_ACCOUNT_KIND))
        .filter_map(|object| object["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    match names.as_slice() {
        [name] => Ok(name.clone()),
        _ => bail!("expected one rendered ServiceAccount, found {names:?}"),
    }
}

/// A client of `control_plane` authenticated as the ServiceAccount `service_account` of
/// `namespace` through the kubeconfig of [`ControlPlane::kubeconfig_as`]: the apiserver sees
/// `system:serviceaccount:<namespace>:<service_account>` and RBAC applies as in a cluster.
///
/// Errors: a name that is empty or holds a `:`, or the kubeconfig not being readable.
pub async fn client_as_service_account(
    control_plane: &ControlPlane,
    namespace: &str,
    service_account: &str,
) -> anyhow::Result<Client> {
    let path = control_plane.kubeconfig_as(namespace, service_account)?;
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    crate::control_plane::client_from_kubeconfig(&text).await
}

/// A chart's ServiceAccount with its RBAC applied (see [`install_rbac`]).
#[derive(Clone, Debug)]
pub struct InstalledRbac {
    /// The ServiceAccount's namespace (the release's).
    pub namespace: String,
    /// The ServiceAccount's name, as the chart rendered it.
    pub service_account: String,
    /// `Kind namespace/name` of every object applied.
    pub applied: Vec<String>,
}

impl InstalledRbac {
    /// The user the apiserver sees for the ServiceAccount:
    /// `system:serviceaccount:<namespace>:<name>` (it appears in the apiserver's refusals).
    pub fn user(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }

    /// A client acting as the ServiceAccount ([`client_as_service_account`]).
    ///
    /// Errors: as [`client_as_service_account`].
    pub async fn client(&self, control_plane: &ControlPlane) -> anyhow::Result<Client> {
        client_as_service_account(control_plane, &self.namespace, &self.service_account).await
    }
}

/// Renders `templates` of the chart in `chart_dir` for `release` in `namespace` with `set`,
/// applies them with `admin` (a client allowed to grant RBAC, as `helm install` would run),
/// and names the one
/// ServiceAccount they hold. Cluster-scoped objects (a ClusterRole and its binding) are named
/// after the release by the usual chart helpers: a test gives each release its own name (e.g.
/// its namespace's) so tests sharing a control plane do not share them.
///
/// Errors: as [`render`], [`apply_server_side`] and [`service_account_name`].
pub async fn install_rbac(
    admin: &Client,
    chart_dir: &Path,
    release: &str,
    namespace: &str,
    templates: &[&str],
    set: &[(&str, &str)],
) -> anyhow::Result<InstalledRbac> {
    let manifests = render(chart_dir, release, namespace, templates, set)?;
    let service_account = service_account_name(&manifests)?;
    let applied = apply_server_side(admin, &manifests, namespace, FIELD_MANAGER).await?;
    Ok(InstalledRbac {
        namespace: namespace.to_owned(),
        service_account,
        applied,
    })
}

/// Whether `line` (a log line) records the apiserver refusing `user`: its 403 message reads
/// `… is forbidden: User "<user>" cannot …`, possibly with the quotes escaped by a log encoder.
pub fn is_refusal_of(line: &str, user: &str) -> bool {
    line.contains("forbidden")
        && (line.contains(&format!("User \"{user}\""))
            || line.contains(&format!("User \\\"{user}\\\"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_recognised_with_plain_and_escaped_quotes() {
        let user = "system:serviceaccount:ns-a:op";
        let plain = r#"WARN reconcile failed: jobs.batch is forbidden: User "system:serviceaccount:ns-a:op" cannot create resource "jobs""#;
        let escaped = r#"{"error":"pods is forbidden: User \"system:serviceaccount:ns-a:op\" cannot list resource \"pods\""}"#;
        assert!(is_refusal_of(plain, user));
        assert!(is_refusal_of(escaped, user));
        // Another test's operator, a store's 403 and a user whose name only starts alike.
        assert!(!is_refusal_of(plain, "system:serviceaccount:ns-b:op"));
        assert!(!is_refusal_of("s3 answered 403 Forbidden", user));
        assert!(!is_refusal_of(plain, "system:serviceaccount:ns-a:o"));
    }

    #[test]
    fn the_only_service_account_is_named_and_two_are_refused() {
        let one = "---\nkind: ClusterRole\nmetadata: {name: r}\n---\nkind: ServiceAccount\nmetadata: {name: op}\n";
        assert_eq!(service_account_name(one).unwrap(), "op");
        let two = format!("{one}---\nkind: ServiceAccount\nmetadata: {{name: other}}\n");
        assert!(service_account_name(&two).is_err());
        assert!(service_account_name("kind: Role\nmetadata: {name: r}\n").is_err());
    }
}
