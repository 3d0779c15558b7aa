//! The backup operator under exactly the RBAC its Helm chart grants: the chart's ServiceAccount,
//! ClusterRole, bindings and leader-election Role are rendered by `helm template` and applied to
//! the real kube-apiserver; the operator then runs as `system:serviceaccount:<ns>:<sa>` (testkit
//! `ControlPlane::kubeconfig_as`) with leader election on, and a backup and a restore must
//! succeed. A rule the controllers need and the chart lacks makes a step fail (or be logged as
//! forbidden, which the test also refuses).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/operator_env.rs"]
mod operator_env;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::PostParams;
use operator_env::chart_rbac::{self, RefusalCheck};
use operator_env::{Env, eventually};
use serde_json::json;
use vertice_backup::api::restore_request::RestoreRequest;
use vertice_backup::api::run::RunPhase;
use vertice_testkit::chart;
use vertice_testkit::control_plane::ControlPlane;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_and_a_restore_succeed_with_only_the_charts_rbac() {
    let mut env = Env::new("chart-rbac", true).await;
    let control_plane = ControlPlane::shared().await.unwrap();
    let namespace = env.name().to_owned();
    // The release is named after the namespace, so its cluster-scoped objects are this test's.
    let release = namespace.clone();
    let service_account = format!("{release}-vertice-backup");
    let lease = format!("{release}-vertice-backup-leader");
    // The chart's defaults: bound cluster-wide, with the leader-election Role. (Every other
    // operator test runs under the namespaced variant, `watchNamespace`, without election.)
    let rbac = chart::install_rbac(
        &env.client,
        &chart_rbac::chart_dir(),
        &release,
        &namespace,
        &chart_rbac::TEMPLATES,
        &[],
    )
    .await
    .unwrap();
    assert_eq!(rbac.service_account, service_account);
    assert!(
        rbac.applied
            .contains(&format!("ClusterRoleBinding {release}-vertice-backup")),
        "{:?}",
        rbac.applied
    );
    let as_operator = rbac.client(control_plane).await.unwrap();
    let refusal_check = RefusalCheck::new(rbac.user());
    // The flags the chart passes for leader election, so the Lease Role is exercised too.
    let flags = [
        "--leader-election".to_owned(),
        "true".to_owned(),
        format!("--leader-election-namespace={namespace}"),
        format!("--lease-name={lease}"),
        "--identity=chart-rbac-test".to_owned(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    env.start_operator_with_client(as_operator, &flags, None)
        .await;

    env.inline_request("nightly", json!({}), json!({})).await;
    env.wait_phase("nightly", RunPhase::Succeeded).await;

    let restores: Api<RestoreRequest> = Api::namespaced(env.client.clone(), &namespace);
    let restore: RestoreRequest = serde_json::from_value(json!({
        "apiVersion": "backup.vertice.dev/v1alpha1",
        "kind": "RestoreRequest",
        "metadata": {"name": "copy"},
        "spec": {
            "source": {"backupRequestRef": {"name": "nightly"}},
            "target": {
                "engine": "postgres",
                "host": "127.0.0.1",
                "port": env.pg.port(),
                "user": env.pg.superuser(),
                "passwordSecretRef": {"name": "db", "key": "password"},
            },
        },
    }))
    .unwrap();
    restores
        .create(&PostParams::default(), &restore)
        .await
        .unwrap();
    eventually("RestoreRequest copy to succeed", || async {
        let status = restores.get("copy").await.ok()?.status?;
        assert!(
            !status.phase.is_finished() || status.phase == RunPhase::Succeeded,
            "the restore ended {:?}: {status:?}",
            status.phase
        );
        (status.phase == RunPhase::Succeeded).then_some(())
    })
    .await;

    // Leader election went through the chart's Role: this replica holds the chart's Lease.
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &namespace);
    let holder = leases
        .get(&lease)
        .await
        .unwrap()
        .spec
        .and_then(|spec| spec.holder_identity);
    assert_eq!(holder.as_deref(), Some("chart-rbac-test"));
    // Events were recorded under the operator's identity.
    let events: Api<Event> = Api::namespaced(env.client.clone(), &namespace);
    let recorded = eventually("an Event about the BackupRequest", || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items.into_iter().find(|event| {
            event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("nightly")
        })
    })
    .await;
    assert!(recorded.reason.is_some(), "{recorded:?}");

    // Nothing the operator tried was refused, not even what it only logs.
    env.stop_operator().await;
    drop(refusal_check);
}

/// The chart's namespaced RBAC for `env`'s namespace with `resource` taken out of every rule
/// of the ClusterRole (as if the chart had forgotten it), the operator started under it, and a
/// backup asked for (its spec with `extra` merged, e.g. to make it fail): the apiserver's
/// refusal of `resource` must show in the operator's log at warn or error. A refusal in the log
/// (at any level) is what fails every other operator test (`chart_rbac::RefusalCheck`) when the
/// chart lacks a rule.
async fn a_refusal_is_logged_without(resource: &str, extra: serde_json::Value) {
    let mut env = Env::new("rbac-missing", true).await;
    let control_plane = ControlPlane::shared().await.unwrap();
    let namespace = env.name().to_owned();
    let values = [
        ("watchNamespace", namespace.as_str()),
        ("leaderElection.enabled", "false"),
    ];
    let rendered = chart::render(
        &chart_rbac::chart_dir(),
        &namespace,
        &namespace,
        &chart_rbac::TEMPLATES,
        &values,
    )
    .unwrap();
    let mut objects = chart::documents(&rendered).unwrap();
    let role = objects
        .iter_mut()
        .find(|object| object["kind"] == "ClusterRole")
        .unwrap();
    let rules = role["rules"].as_array_mut().unwrap();
    let before = rules.len();
    for rule in rules.iter_mut() {
        let resources = rule["resources"].as_array_mut().unwrap();
        resources.retain(|granted| granted != resource);
    }
    rules.retain(|rule| rule["resources"].as_array().is_some_and(|r| !r.is_empty()));
    let stream: Vec<String> = objects.iter().map(ToString::to_string).collect();
    let admin = control_plane.admin_client().await.unwrap();
    chart::apply_server_side(&admin, &stream.join("\n---\n"), &namespace, "rbac-test")
        .await
        .unwrap();
    let service_account = chart::service_account_name(&rendered).unwrap();
    let user = format!("system:serviceaccount:{namespace}:{service_account}");
    let client = chart::client_as_service_account(control_plane, &namespace, &service_account)
        .await
        .unwrap();
    assert!(before > 0);
    let flags = ["--leader-election", "false", "--run-backoff-limit", "0"];
    env.start_operator_with_client(client, &flags, None).await;
    env.inline_request("nightly", extra, json!({})).await;

    let refused = format!("resource \\\"{resource}\\\"");
    let plain = format!("resource \"{resource}\"");
    // At warn or error, as a user running the operator at the chart's `info` level sees it
    // (kube's client also logs every refusal at debug, which nobody sees in production).
    let line = eventually(
        &format!("a refusal of {resource} logged at warn"),
        || async {
            chart_rbac::refusals(&user).into_iter().find(|line| {
                (line.contains(" WARN ") || line.contains(" ERROR "))
                    && (line.contains(&refused) || line.contains(&plain))
            })
        },
    )
    .await;
    assert!(line.contains(&namespace), "{line}");
    env.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_events_the_refused_event_is_logged() {
    a_refusal_is_logged_without("events", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_jobs_the_refused_watch_and_create_are_logged() {
    a_refusal_is_logged_without("jobs", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_status_subresource_the_refused_status_write_is_logged() {
    a_refusal_is_logged_without("backuprequests/status", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pods_the_refused_read_of_a_failed_runs_cause_is_logged() {
    // Only a failed run's cause is read from its pod; the database refuses connections here.
    // A port nothing listens on (free a moment ago).
    let unreachable = vertice_testkit::ports::free_port().unwrap();
    let failing = json!({
        "target": {
            "engine": "postgres",
            "host": "127.0.0.1",
            "port": unreachable,
            "user": "postgres",
            "passwordSecretRef": {"name": "db", "key": "password"},
            "database": "shop",
        }
    });
    a_refusal_is_logged_without("pods", failing).await;
}
