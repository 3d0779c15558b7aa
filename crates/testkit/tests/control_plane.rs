//! The test control plane against the REAL etcd, kube-apiserver and kube-controller-manager:
//! version, namespace lifecycle, ownerReference garbage collection and RBAC for a non-admin user.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Resource};
use vertice_testkit::control_plane::ControlPlane;
use vertice_testkit::namespace::TestNamespace;
use vertice_testkit::process::wait_until;

fn config_map(name: &str, owner: Option<OwnerReference>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            owner_references: owner.map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
        ..ConfigMap::default()
    }
}

#[tokio::test]
async fn server_reports_the_pinned_kubernetes_version() {
    let control_plane = ControlPlane::shared().await.unwrap();
    println!(
        "kube-apiserver {} at {}",
        control_plane.server_version(),
        control_plane.url()
    );
    assert_eq!(control_plane.server_version(), "v1.36.3");
    let info = control_plane
        .admin_client()
        .await
        .unwrap()
        .apiserver_version()
        .await
        .unwrap();
    assert_eq!(info.git_version, "v1.36.3");
    assert!(control_plane.admin_kubeconfig().is_file());
}

#[tokio::test]
async fn deleted_namespace_is_removed_by_the_namespace_controller() {
    let control_plane = ControlPlane::shared().await.unwrap();
    let client = control_plane.admin_client().await.unwrap();
    let namespace = TestNamespace::create(&client, "ns-lifecycle")
        .await
        .unwrap();
    let name = namespace.name().to_owned();
    assert!(name.starts_with("ns-lifecycle-"));

    // Content in the namespace makes the controller do real work before it removes the finalizer.
    Api::<ConfigMap>::namespaced(client.clone(), &name)
        .create(&PostParams::default(), &config_map("content", None))
        .await
        .unwrap();
    let namespaces = Api::<Namespace>::all(client.clone());
    assert!(namespaces.get_opt(&name).await.unwrap().is_some());

    drop(namespace);
    wait_until(
        "the namespace to disappear",
        Duration::from_secs(60),
        || {
            let namespaces = namespaces.clone();
            let name = name.clone();
            async move { Ok(namespaces.get_opt(&name).await?.is_none()) }
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn garbage_collector_deletes_owned_objects() {
    let control_plane = ControlPlane::shared().await.unwrap();
    let client = control_plane.admin_client().await.unwrap();
    let namespace = TestNamespace::create(&client, "gc").await.unwrap();
    let config_maps = Api::<ConfigMap>::namespaced(client, namespace.name());

    let owner = config_maps
        .create(&PostParams::default(), &config_map("owner", None))
        .await
        .unwrap();
    config_maps
        .create(
            &PostParams::default(),
            &config_map("owned", Some(owner.owner_ref(&()).unwrap())),
        )
        .await
        .unwrap();
    config_maps
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();

    wait_until(
        "the owned ConfigMap to be garbage-collected",
        Duration::from_secs(90),
        || {
            let config_maps = config_maps.clone();
            async move { Ok(config_maps.get_opt("owned").await?.is_none()) }
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_user_without_rbac_is_forbidden_until_granted_a_role() {
    let control_plane = ControlPlane::shared().await.unwrap();
    let admin = control_plane.admin_client().await.unwrap();
    let namespace = TestNamespace::create(&admin, "rbac").await.unwrap();
    let user = "jane";
    let as_jane = control_plane
        .client_as(user, &["vertice-testers", "qa"])
        .await
        .unwrap();
    let janes_config_maps = Api::<ConfigMap>::namespaced(as_jane, namespace.name());

    let denied = janes_config_maps
        .list(&Default::default())
        .await
        .unwrap_err();
    match denied {
        kube::Error::Api(status) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }

    let role = Role {
        metadata: ObjectMeta {
            name: Some("config-map-reader".to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".to_owned()]),
            verbs: vec!["get".to_owned(), "list".to_owned()],
            ..PolicyRule::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), namespace.name())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    // Bound to the second group, which proves both O attributes of the certificate count.
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("qa-reads-config-maps".to_owned()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "Role".to_owned(),
            name: "config-map-reader".to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "Group".to_owned(),
            name: "qa".to_owned(),
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), namespace.name())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    // The RBAC authorizer reads from an informer, so the grant shows up within moments.
    wait_until(
        "jane to be allowed to list",
        Duration::from_secs(10),
        || {
            let janes_config_maps = janes_config_maps.clone();
            async move { Ok(janes_config_maps.list(&Default::default()).await.is_ok()) }
        },
    )
    .await
    .unwrap();
    // Still only what the Role grants.
    let create = janes_config_maps
        .create(&PostParams::default(), &config_map("nope", None))
        .await
        .unwrap_err();
    assert!(matches!(create, kube::Error::Api(status) if status.code == 403));

    // The file form works for subprocesses, with the same identity.
    let kubeconfig = control_plane
        .kubeconfig_for_user(user, &["vertice-testers", "qa"])
        .unwrap();
    let kubectl = vertice_testkit::tools::tool_binary("kubectl").unwrap();
    let output = std::process::Command::new(kubectl)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), user);
}

/// Runs kubectl with `kubeconfig`; (success, stdout, stderr).
fn kubectl_with(
    kubeconfig: &std::path::Path,
    args: &[&str],
) -> anyhow::Result<(bool, String, String)> {
    let kubectl = vertice_testkit::tools::tool_binary("kubectl")?;
    let output = std::process::Command::new(kubectl)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args)
        .output()?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn a_service_account_kubeconfig_is_that_account_and_gets_only_its_bindings() {
    let control_plane = ControlPlane::shared().await.unwrap();
    let admin = control_plane.admin_client().await.unwrap();
    let namespace = TestNamespace::create(&admin, "sa-identity").await.unwrap();
    let ns = namespace.name();

    // Two accounts of the namespace: only `operator` will be bound.
    let operator = control_plane.kubeconfig_as(ns, "operator").unwrap();
    let other = control_plane.kubeconfig_as(ns, "other").unwrap();
    let (ok, whoami, stderr) = kubectl_with(&operator, &["auth", "whoami", "-o", "json"]).unwrap();
    assert!(ok, "{stderr}");
    let review: serde_json::Value = serde_json::from_str(&whoami).unwrap();
    let user_info = &review["status"]["userInfo"];
    assert_eq!(
        user_info["username"],
        format!("system:serviceaccount:{ns}:operator")
    );
    let groups: Vec<&str> = user_info["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    assert!(groups.contains(&"system:serviceaccounts"), "{groups:?}");
    assert!(
        groups.contains(&format!("system:serviceaccounts:{ns}").as_str()),
        "{groups:?}"
    );

    let list = ["get", "configmaps", "-n", ns];
    for kubeconfig in [&operator, &other] {
        let (ok, _, stderr) = kubectl_with(kubeconfig, &list).unwrap();
        assert!(
            !ok && stderr.to_lowercase().contains("forbidden"),
            "{stderr}"
        );
    }

    let role = Role {
        metadata: ObjectMeta {
            name: Some("config-map-reader".to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".to_owned()]),
            verbs: vec!["get".to_owned(), "list".to_owned()],
            ..PolicyRule::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    // A subject of kind ServiceAccount, as a chart binds it.
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("operator-reads-config-maps".to_owned()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "Role".to_owned(),
            name: "config-map-reader".to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: "operator".to_owned(),
            namespace: Some(ns.to_owned()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    wait_until(
        "the bound service account to be allowed to list",
        Duration::from_secs(10),
        || {
            let operator = operator.clone();
            async move { Ok(kubectl_with(&operator, &list)?.0) }
        },
    )
    .await
    .unwrap();
    // The other account of the same namespace is still refused, and so is a verb not granted.
    let (ok, _, stderr) = kubectl_with(&other, &list).unwrap();
    assert!(
        !ok && stderr.to_lowercase().contains("forbidden"),
        "{stderr}"
    );
    let (ok, _, stderr) =
        kubectl_with(&operator, &["create", "configmap", "nope", "-n", ns]).unwrap();
    assert!(
        !ok && stderr.to_lowercase().contains("forbidden"),
        "{stderr}"
    );

    // Names that would change whose identity it is are refused.
    for (bad_namespace, bad_account) in
        [("", "operator"), (ns, ""), ("a:b", "operator"), (ns, "x:y")]
    {
        assert!(
            control_plane
                .kubeconfig_as(bad_namespace, bad_account)
                .is_err(),
            "{bad_namespace:?}/{bad_account:?}"
        );
    }
}
