//! The `snapshot` part of BackupRequests and VerticeBackups (issue 8 §2) against the real
//! kube-apiserver: the example is accepted; `provider: gcp | azure` are refused at admission
//! with a message saying they are not supported yet; a run with both a dump target and a
//! snapshot, or a snapshot without storage, is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/admission.rs"]
mod admission;

use admission::{api, create, example, setup, workspace_yaml};
use serde_json::{Value, json};

#[tokio::test]
async fn snapshot_runs_are_admitted_only_for_aws_and_alone() {
    let (client, namespace) = setup("api-snapshots").await;
    let runs = api(&client, namespace.name(), "BackupRequest");
    let policies = api(&client, namespace.name(), "VerticeBackup");

    // In docs/: the demo applies every file of examples/backup/, and has no RDS.
    let run = workspace_yaml("docs/backup/backuprequest-rds-snapshot.yaml");
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
