//! Leader hand-over between two processes when the leader is SIGKILLed, against a REAL
//! kube-apiserver + etcd with the test-only `Sample` kind (`sample/`).
//!
//! The second process is this test binary itself, re-executed with `--exact leader_child`
//! and `VERTICE_SAMPLE_CHILD=1`; without that variable `leader_child` does nothing.

mod common;
mod sample;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, install_crd};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use sample::*;
use vertice_core::Operator;
use vertice_testkit::{control_plane::ControlPlane, namespace::TestNamespace};

/// Kills (SIGKILL) and reaps the child process when dropped, so no test leaves one behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_replica(identity: &str, namespace: &str, kubeconfig: &Path) -> anyhow::Result<ChildGuard> {
    let child = Command::new(std::env::current_exe()?)
        .args(["--exact", "leader_child", "--nocapture", "--test-threads=1"])
        .env("VERTICE_SAMPLE_CHILD", "1")
        .env("SAMPLE_IDENTITY", identity)
        .env("SAMPLE_NAMESPACE", namespace)
        .env("SAMPLE_KUBECONFIG", kubeconfig)
        // The child exits when this pipe closes, i.e. when this process dies in any way.
        .stdin(Stdio::piped())
        .spawn()?;
    Ok(ChildGuard(child))
}

async fn lease_holder(client: &Client, namespace: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    leases
        .get("sample-leader")
        .await
        .ok()?
        .spec?
        .holder_identity
}

/// The Lease's holder and last renewal time (RFC 3339).
async fn lease_renewal(client: &Client, namespace: &str) -> Option<(Option<String>, String)> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let spec = leases.get("sample-leader").await.ok()?.spec?;
    let renewed = spec.renew_time.map(|time| time.0.to_string())?;
    Some((spec.holder_identity, renewed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_hand_over_between_processes() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.admin_client().await?;
    install_crd::<Sample>(&client).await?;
    let ns = TestNamespace::create(&client, "core-leader").await?;
    let api: Api<Sample> = Api::namespaced(client.clone(), ns.name());

    let mut first = spawn_replica("replica-a", ns.name(), cp.admin_kubeconfig())?;
    eventually("replica-a to lead", Duration::from_secs(60), || async {
        (lease_holder(&client, ns.name()).await.as_deref() == Some("replica-a")).then_some(())
    })
    .await?;
    let _second = spawn_replica("replica-b", ns.name(), cp.admin_kubeconfig())?;
    api.create(&PostParams::default(), &sample("led", "1"))
        .await?;
    let by_a = wait_ready(&api, "led", "True", 1).await?;
    assert_eq!(
        by_a.status
            .as_ref()
            .and_then(|s| s.reconciled_by.as_deref()),
        Some("replica-a")
    );
    // While the standby runs, the leader keeps renewing: three renewal times seen (a poll
    // with a deadline), each by replica-a.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut renewals: Vec<String> = Vec::new();
    while renewals.len() < 3 {
        assert!(Instant::now() < deadline, "renewals stopped: {renewals:?}");
        if let Some((holder, renewed)) = lease_renewal(&client, ns.name()).await {
            assert_eq!(holder.as_deref(), Some("replica-a"));
            if renewals.last() != Some(&renewed) {
                renewals.push(renewed);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    first.0.kill()?; // SIGKILL: no release, the Lease must expire
    first.0.wait()?;
    let killed = Instant::now();
    eventually(
        "replica-b to take over",
        Duration::from_secs(30),
        || async {
            (lease_holder(&client, ns.name()).await.as_deref() == Some("replica-b")).then_some(())
        },
    )
    .await?;
    let takeover = killed.elapsed();
    eprintln!("standby took over {takeover:?} after the leader was killed (lease 4 s, retry 1 s)");
    // Lease duration + one retry period, plus scheduling slack.
    assert!(
        takeover <= Duration::from_secs(4 + 1 + 2),
        "takeover took {takeover:?}"
    );

    api.patch(
        "led",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"value": "2"}})),
    )
    .await?;
    let by_b = wait_ready(&api, "led", "True", 2).await?;
    assert_eq!(
        by_b.status
            .as_ref()
            .and_then(|s| s.reconciled_by.as_deref()),
        Some("replica-b")
    );
    assert_eq!(
        by_b.status.as_ref().and_then(|s| s.value.as_deref()),
        Some("2")
    );
    Ok(())
}

/// The replica process of `leader_hand_over_between_processes`; a no-op in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_child() -> anyhow::Result<()> {
    if std::env::var_os("VERTICE_SAMPLE_CHILD").is_none() {
        return Ok(());
    }
    // Exit when the parent goes away (stdin closes) or after a hard limit, whatever happens.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(180));
        std::process::exit(3);
    });
    let identity = std::env::var("SAMPLE_IDENTITY")?;
    let namespace = std::env::var("SAMPLE_NAMESPACE")?;
    let kubeconfig = std::env::var("SAMPLE_KUBECONFIG")?;
    Operator::new(
        "sample",
        run_args(&namespace, Path::new(&kubeconfig), &identity, true),
    )
    .controller(controller(&identity, Arc::new(Journal::default())))
    .run()
    .await?;
    Ok(())
}
