//! The `snapshot` part of BackupRequests and VerticeBackups (issue 8 §2) against the real
//! kube-apiserver: the example is accepted; `provider: gcp | azure` are refused at admission
//! with a message saying they are not supported yet; a run with both a dump target and a
//! snapshot, or a snapshot without storage, is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};
use vertice_testkit::control_plane::ControlPlane;
use vertice_testkit::crds::install_crds;
use vertice_testkit::namespace::TestNamespace;

const GROUP: &str = "backup.vertice.dev";
const VERSION: &str = "v1alpha1";

/// `examples/backup/<file>`, or `docs/backup/<file>` for the snapshot example (the demo
/// applies every file in `examples/backup/`, and has no RDS).
fn example(file: &str) -> Value {
    let folder = if file.contains("rds") {
        "docs/backup"
    } else {
        "examples/backup"
    };
    let path = format!("{}/../../{folder}/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn create(api: &Api<DynamicObject>, mut object: Value, name: &str) -> Result<(), String> {
    object["metadata"] = json!({"name": name});
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object)
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}

#[tokio::test]
async fn snapshot_runs_are_admitted_only_for_aws_and_alone() {
    let control_plane = ControlPlane::shared().await.unwrap();
    let client = control_plane.admin_client().await.unwrap();
    install_crds(&client, &vertice_backup::crds())
        .await
        .unwrap();
    let namespace = TestNamespace::create(&client, "api-snapshots")
        .await
        .unwrap();
    let gvk = |kind| ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, VERSION, kind));
    let runs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace.name(), &gvk("BackupRequest"));
    let policies: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace.name(), &gvk("VerticeBackup"));

    let run = example("backuprequest-rds-snapshot.yaml");
    create(&runs, run.clone(), "accepted").await.unwrap();

    let vb = example("verticebackup.yaml");
    let with = |mut object: Value, pointer: &str, value: Value| {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let map = object.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        if value.is_null() {
            map.remove(key);
        } else {
            map.insert(key.to_owned(), value);
        }
        object
    };
    let not_yet = "gcp and azure are not supported yet";
    let cases = vec![
        (
            "gcp",
            with(run.clone(), "/spec/snapshot/provider", json!("gcp")),
            not_yet,
        ),
        (
            "azure",
            with(run.clone(), "/spec/snapshot/provider", json!("azure")),
            not_yet,
        ),
        (
            "an unknown provider",
            with(run.clone(), "/spec/snapshot/provider", json!("oracle")),
            "spec.snapshot.provider",
        ),
        (
            "a dump target too",
            with(run.clone(), "/spec/target", vb["spec"]["target"].clone()),
            "not both",
        ),
        (
            "no storage",
            with(run.clone(), "/spec/storage", Value::Null),
            "needs `storage` and `encryption`",
        ),
        (
            "a reserved tag",
            with(
                run.clone(),
                "/spec/snapshot/tags",
                json!({"aws:owner": "x"}),
            ),
            "must not start with `aws:`",
        ),
        (
            "no credentials",
            with(
                run.clone(),
                "/spec/snapshot/credentialsSecretRef",
                Value::Null,
            ),
            "credentialsSecretRef",
        ),
        (
            "a timeout of zero",
            with(run.clone(), "/spec/snapshot/timeoutSeconds", json!(0)),
            "spec.snapshot.timeoutSeconds",
        ),
    ];
    let mut wrong = Vec::new();
    for (index, (what, object, expected)) in cases.into_iter().enumerate() {
        match create(&runs, object, &format!("refused-{index}")).await {
            Ok(()) => wrong.push(format!("{what}: accepted")),
            Err(message) if message.contains(expected) => {}
            Err(message) => wrong.push(format!(
                "{what}: refused with {message:?}, expected {expected:?}"
            )),
        }
    }
    // A VerticeBackup refuses gcp the same way.
    let policy = with(
        vb.clone(),
        "/spec/snapshot",
        run["spec"]["snapshot"].clone(),
    );
    let policy = with(policy, "/spec/snapshot/provider", json!("gcp"));
    match create(&policies, policy, "gcp-policy").await {
        Ok(()) => wrong.push("VerticeBackup with gcp: accepted".into()),
        Err(message) if message.contains(not_yet) => {}
        Err(message) => wrong.push(format!("VerticeBackup with gcp: {message}")),
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
