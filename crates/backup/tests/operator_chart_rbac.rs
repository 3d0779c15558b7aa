//! The backup operator under exactly the RBAC its Helm chart grants: the chart's ServiceAccount,
//! ClusterRole, bindings and leader-election Role are rendered by `helm template` and applied to
//! the real kube-apiserver; the operator then runs as `system:serviceaccount:<ns>:<sa>` (testkit
//! `ControlPlane::kubeconfig_as`) with leader election on, and a backup and a restore must
//! succeed. A rule the controllers need and the chart lacks makes a step fail (or be logged as
//! forbidden, which the test also refuses).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/operator_env.rs"]
mod operator_env;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::PostParams;
use operator_env::{Env, eventually};
use serde_json::json;
use vertice_backup::api::restore_request::RestoreRequest;
use vertice_backup::api::run::RunPhase;
use vertice_testkit::control_plane::ControlPlane;
use vertice_testkit::tools::tool_binary;

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/backup")
}

/// `helm template` of the chart's ServiceAccount and RBAC for release `release` in `namespace`.
fn render_rbac(release: &str, namespace: &str) -> anyhow::Result<String> {
    let output = Command::new(tool_binary("helm")?)
        .args(["template", release])
        .arg(chart_dir())
        .args(["--namespace", namespace])
        .args(["--show-only", "templates/serviceaccount.yaml"])
        .args(["--show-only", "templates/rbac.yaml"])
        .output()?;
    anyhow::ensure!(output.status.success(), "helm template: {output:?}");
    Ok(String::from_utf8(output.stdout)?)
}

/// `kubectl apply --server-side -f -` of `manifests` as the admin.
fn apply_as_admin(control_plane: &ControlPlane, manifests: &str) -> anyhow::Result<()> {
    let mut child = Command::new(tool_binary("kubectl")?)
        .arg(format!(
            "--kubeconfig={}",
            control_plane.admin_kubeconfig().display()
        ))
        .args(["apply", "--server-side", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(manifests.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    anyhow::ensure!(output.status.success(), "kubectl apply: {output:?}");
    Ok(())
}

async fn client_from(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_and_a_restore_succeed_with_only_the_charts_rbac() {
    let mut env = Env::new("chart-rbac", true).await;
    let control_plane = ControlPlane::shared().await.unwrap();
    let namespace = env.name().to_owned();
    // The release is named after the namespace, so its cluster-scoped objects are this test's.
    let release = namespace.clone();
    let service_account = format!("{release}-vertice-backup");
    let lease = format!("{release}-vertice-backup-leader");
    let rbac = render_rbac(&release, &namespace).unwrap();
    assert!(rbac.contains("kind: ClusterRoleBinding"), "{rbac}");
    apply_as_admin(control_plane, &rbac).unwrap();

    let kubeconfig = control_plane
        .kubeconfig_as(&namespace, &service_account)
        .unwrap();
    let as_operator = client_from(&kubeconfig).await.unwrap();
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
    let capture = vertice_testkit::log_capture::LogCapture::install().unwrap();
    let refused: Vec<String> = capture
        .lines()
        .into_iter()
        // The apiserver's refusals read `… is forbidden: User "system:serviceaccount:…"`.
        .filter(|line| line.to_lowercase().contains("forbidden"))
        .collect();
    assert!(refused.is_empty(), "refused calls: {refused:#?}");
    env.stop_operator().await;
}
