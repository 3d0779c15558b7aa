//! Helpers shared by the core's integration tests (each test file includes this module).

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, CustomResourceExt, ResourceExt,
    api::{Patch, PatchParams},
};

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    vertice_testkit::wait::eventually(what, timeout, check).await
}

/// Installs (server-side applies) the CRD of `K` and waits until it is established.
pub async fn install_crd<K: CustomResourceExt>(client: &Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = K::crd();
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply("vertice-core-tests").force(),
        &Patch::Apply(&crd),
    )
    .await?;
    eventually(
        &format!("the CRD {name} to be established"),
        Duration::from_secs(30),
        || async {
            let crd = crds.get(&name).await.ok()?;
            let conditions = crd.status?.conditions?;
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        },
    )
    .await
}
