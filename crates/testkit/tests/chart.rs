//! `vertice_testkit::chart` against the REAL helm and kube-apiserver: a small chart of the
//! test's own (a ServiceAccount, a Role whose resource is a value, a RoleBinding, and a
//! ClusterRole + ClusterRoleBinding named after the release) is rendered, server-side applied
//! as the admin, and the ServiceAccount's client may do exactly what the chart grants.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::Api;
use vertice_testkit::chart::{self, FIELD_MANAGER};
use vertice_testkit::control_plane::ControlPlane;
use vertice_testkit::namespace::TestNamespace;

const CHART_YAML: &str = "apiVersion: v2\nname: probe\nversion: 0.1.0\n";

const SERVICE_ACCOUNT: &str = r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Release.Name }}-probe
  namespace: {{ .Release.Namespace }}
"#;

// The Role leaves out its namespace: apply_server_side puts it in the release's.
const RBAC: &str = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .Release.Name }}-probe
rules:
  - apiGroups: [""]
    resources: [{{ .Values.resource | quote }}]
    verbs: ["list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .Release.Name }}-probe
  namespace: {{ .Release.Namespace }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .Release.Name }}-probe
subjects:
  - kind: ServiceAccount
    name: {{ .Release.Name }}-probe
    namespace: {{ .Release.Namespace }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ .Release.Name }}-probe
rules:
  - apiGroups: ["rbac.authorization.k8s.io"]
    resources: ["clusterroles"]
    resourceNames: [{{ printf "%s-probe" .Release.Name | quote }}]
    verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ .Release.Name }}-probe
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ .Release.Name }}-probe
subjects:
  - kind: ServiceAccount
    name: {{ .Release.Name }}-probe
    namespace: {{ .Release.Namespace }}
"#;

const UNUSED: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unused\n";

fn write_chart(dir: &Path) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("Chart.yaml"), CHART_YAML).unwrap();
    std::fs::write(dir.join("values.yaml"), "resource: configmaps\n").unwrap();
    std::fs::write(dir.join("templates/serviceaccount.yaml"), SERVICE_ACCOUNT).unwrap();
    std::fs::write(dir.join("templates/rbac.yaml"), RBAC).unwrap();
    std::fs::write(dir.join("templates/unused.yaml"), UNUSED).unwrap();
}

fn is_forbidden(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(response) if response.code == 403)
}

use vertice_testkit::chart::RBAC_TEMPLATES as TEMPLATES;

#[tokio::test]
async fn a_charts_service_account_may_do_exactly_what_its_rbac_grants() {
    let control_plane = ControlPlane::shared().await.unwrap();
    let admin = control_plane.admin_client().await.unwrap();
    let namespace = TestNamespace::create(&admin, "chart-rbac").await.unwrap();
    let other = TestNamespace::create(&admin, "chart-other").await.unwrap();
    let ns = namespace.name();
    let dir = tempfile::tempdir().unwrap();
    write_chart(dir.path());

    // Only the templates asked for are rendered.
    let rendered = chart::render(dir.path(), ns, ns, &TEMPLATES, &[]).unwrap();
    assert!(!rendered.contains("unused"), "{rendered}");
    assert_eq!(chart::documents(&rendered).unwrap().len(), 5);

    let installed = chart::install_rbac(&admin, dir.path(), ns, ns, &TEMPLATES, &[])
        .await
        .unwrap();
    assert_eq!(installed.service_account, format!("{ns}-probe"));
    assert_eq!(
        installed.user(),
        format!("system:serviceaccount:{ns}:{ns}-probe")
    );
    assert!(
        installed.applied.contains(&format!("Role {ns}/{ns}-probe")),
        "{:?}",
        installed.applied
    );
    assert!(
        installed
            .applied
            .contains(&format!("ClusterRole {ns}-probe")),
        "{:?}",
        installed.applied
    );
    let client = installed.client(control_plane).await.unwrap();

    // Granted: listing ConfigMaps in its namespace, reading its own ClusterRole.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    config_maps.list(&Default::default()).await.unwrap();
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    let own = cluster_roles.get(&format!("{ns}-probe")).await.unwrap();
    let managers: Vec<_> = own
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|entry| entry.manager)
        .collect();
    assert_eq!(managers, [FIELD_MANAGER]);
    // Not granted: another resource, another namespace, another verb, another ClusterRole.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), other.name());
    let refusals = [
        secrets.list(&Default::default()).await.unwrap_err(),
        elsewhere.list(&Default::default()).await.unwrap_err(),
        config_maps.get("anything").await.unwrap_err(),
        cluster_roles.get("cluster-admin").await.unwrap_err(),
    ];
    for refusal in &refusals {
        assert!(is_forbidden(refusal), "{refusal}");
        assert!(
            chart::is_refusal_of(&refusal.to_string(), &installed.user()),
            "{refusal}"
        );
    }

    // Applying a changed rendering updates the objects in place (a value moves the grant);
    // applying it again changes nothing and does not fail.
    let set = [("resource", "secrets")];
    for _ in 0..2 {
        chart::install_rbac(&admin, dir.path(), ns, ns, &TEMPLATES, &set)
            .await
            .unwrap();
    }
    // RBAC changes reach the authorizer's cache within moments.
    vertice_testkit::wait::eventually(
        "the Role to grant Secrets instead of ConfigMaps",
        std::time::Duration::from_secs(30),
        || async {
            let secrets_allowed = secrets.list(&Default::default()).await.is_ok();
            let config_maps_refused = config_maps
                .list(&Default::default())
                .await
                .is_err_and(|error| is_forbidden(&error));
            (secrets_allowed && config_maps_refused).then_some(())
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn helms_refusal_is_reported_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    write_chart(dir.path());
    // A template that is not in the chart, and a chart directory that does not exist.
    let missing = chart::render(dir.path(), "r", "ns", &["templates/nope.yaml"], &[]).unwrap_err();
    assert!(format!("{missing:#}").contains("nope.yaml"), "{missing:#}");
    let no_chart = dir.path().join("absent");
    let absent = chart::render(&no_chart, "r", "ns", &[], &[]).unwrap_err();
    assert!(format!("{absent:#}").contains("absent"), "{absent:#}");
    // A rendering with no ServiceAccount cannot name one.
    let rendered = chart::render(dir.path(), "r", "ns", &["templates/unused.yaml"], &[]).unwrap();
    assert!(chart::service_account_name(&rendered).is_err());
}
