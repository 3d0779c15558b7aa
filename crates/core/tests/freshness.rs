//! `freshness::is_current` against a REAL kube-apiserver: a copy read before a change, or of an
//! object deleted since, is not current; the latest copy is.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use vertice_core::freshness::is_current;
use vertice_testkit::{control_plane::ControlPlane, namespace::TestNamespace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_latest_version_is_current() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.admin_client().await?;
    let ns = TestNamespace::create(&client, "core-fresh").await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    let created = api
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("settings".into()),
                    ..ObjectMeta::default()
                },
                ..ConfigMap::default()
            },
        )
        .await?;
    assert!(is_current(&api, &created).await?, "just created");

    let patch = serde_json::json!({"data": {"k": "v"}});
    let changed = api
        .patch("settings", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    assert!(!is_current(&api, &created).await?, "read before the change");
    assert!(is_current(&api, &changed).await?, "the changed copy");

    let mut unversioned = changed.clone();
    unversioned.metadata.resource_version = None;
    assert!(
        !is_current(&api, &unversioned).await?,
        "a copy without a version"
    );

    api.delete("settings", &DeleteParams::default()).await?;
    assert!(!is_current(&api, &changed).await?, "deleted since");
    drop(ns);
    Ok(())
}
