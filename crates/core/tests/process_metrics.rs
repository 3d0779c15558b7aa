//! The `process_*` metrics (gap C11) as a real operator serves them on its admin server's
//! `/metrics`, against a REAL kube-apiserver: the operator runs as a standby replica (another
//! identity holds its Lease), which is also what proves a standby exports them. Each value is
//! compared with what this process measures by itself, and the ones that move are moved by the
//! test, proving they are read at scrape time.

#[allow(dead_code)] // the shared helpers; this file needs only some
mod common;

use std::{
    fs::File,
    net::SocketAddr,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use common::eventually;
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{Api, api::PostParams};
use tokio_util::sync::CancellationToken;
use vertice_core::{
    Operator,
    cli::{LogFormat, RunArgs},
};
use vertice_testkit::{control_plane::ControlPlane, namespace::TestNamespace};

const WAIT: Duration = Duration::from_secs(30);
const LEASE: &str = "process-metrics-leader";

/// The value of the unlabelled sample `name` in an OpenMetrics text.
fn sample(body: &str, name: &str) -> anyhow::Result<f64> {
    let prefix = format!("{name} ");
    let line = body
        .lines()
        .find(|line| line.starts_with(&prefix))
        .with_context(|| format!("no sample {name} in:\n{body}"))?;
    Ok(line[prefix.len()..].trim().parse()?)
}

async fn scrape(admin: SocketAddr) -> anyhow::Result<String> {
    Ok(reqwest::get(format!("http://{admin}/metrics"))
        .await?
        .error_for_status()?
        .text()
        .await?)
}

/// `VmRSS` of `/proc/self/status`, in bytes: a second source for the resident memory.
fn vm_rss_bytes() -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    let kib: f64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib * 1024.0)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or_default()
}

/// Starts a standby operator (no controllers; the Lease is held by someone else for an hour).
async fn start_standby(
    cp: &ControlPlane,
    namespace: &str,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let client = cp.admin_client().await?;
    let leases: Api<Lease> = Api::namespaced(client, namespace);
    let mut lease = Lease::default();
    lease.metadata.name = Some(LEASE.to_owned());
    lease.spec = Some(LeaseSpec {
        holder_identity: Some("another-replica".to_owned()),
        lease_duration_seconds: Some(3600),
        renew_time: Some(MicroTime(Timestamp::now())),
        ..LeaseSpec::default()
    });
    leases.create(&PostParams::default(), &lease).await?;

    let args = RunArgs {
        kubeconfig: Some(cp.admin_kubeconfig().to_owned()),
        namespace: Some(namespace.to_owned()),
        admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        log_format: LogFormat::Text,
        log_filter: "info".to_owned(),
        leader_election: true,
        leader_election_namespace: Some(namespace.to_owned()),
        identity: Some("standby".to_owned()),
        concurrency: 1,
        lease_name: Some(LEASE.to_owned()),
        lease_duration_seconds: 3600,
        lease_renew_deadline_seconds: 3000,
        lease_retry_period_seconds: 1,
    };
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let operator = Operator::new("process-test", args)
        .handle_signals(false)
        .shutdown_on(stop)
        .on_admin_bound(bound_tx);
    let task = tokio::spawn(async move {
        if let Err(error) = operator.run().await {
            eprintln!("operator stopped with {error}");
        }
    });
    let admin = bound_rx
        .await
        .context("the operator stopped before its admin server bound")?;
    Ok((admin, task))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_metrics_are_served_and_read_at_scrape_time() -> anyhow::Result<()> {
    let test_started = unix_now();
    let cp = ControlPlane::shared().await?;
    let client = cp.admin_client().await?;
    let ns = TestNamespace::create(&client, "core-process").await?;
    let stop = CancellationToken::new();
    let (admin, task) = start_standby(cp, ns.name(), stop.clone()).await?;

    let body = scrape(admin).await?;
    for (family, kind) in [
        ("process_resident_memory_bytes", "gauge"),
        ("process_cpu_seconds", "counter"),
        ("process_start_time_seconds", "gauge"),
        ("process_open_fds", "gauge"),
    ] {
        assert!(
            body.contains(&format!("# TYPE {family} {kind}\n")),
            "{body}"
        );
    }

    // Resident memory agrees with /proc/self/status within a factor of two (both move a little).
    let rss = sample(&body, "process_resident_memory_bytes")?;
    let vm_rss = vm_rss_bytes()?;
    assert!(
        rss > vm_rss / 2.0 && rss < vm_rss * 2.0,
        "scraped {rss} B, VmRSS {vm_rss} B"
    );

    // The start time: before this test began (plus one clock tick), and it does not move.
    let start = sample(&body, "process_start_time_seconds")?;
    assert!(
        start <= test_started + 0.01 && start > test_started - 3600.0,
        "start {start}, test began {test_started}"
    );
    assert_eq!(
        sample(&scrape(admin).await?, "process_start_time_seconds")?,
        start
    );

    // CPU: burn some on a blocking thread; the next scrape shows more.
    let cpu_before = sample(&body, "process_cpu_seconds_total")?;
    tokio::task::spawn_blocking(|| {
        let until = Instant::now() + Duration::from_millis(300);
        let mut x: u64 = 1;
        while Instant::now() < until {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    })
    .await?;
    let cpu_after = eventually("the CPU counter to grow", WAIT, || async {
        let cpu = sample(&scrape(admin).await.ok()?, "process_cpu_seconds_total").ok()?;
        (cpu > cpu_before).then_some(cpu)
    })
    .await?;
    assert!(cpu_after > cpu_before);

    // Open fds: 64 more files show; closing them shows too. Other tests of this binary open and
    // close connections meanwhile, hence the margins.
    const EXTRA: usize = 64;
    let fds_before = sample(&scrape(admin).await?, "process_open_fds")?;
    let files = (0..EXTRA)
        .map(|_| File::open("/dev/null"))
        .collect::<Result<Vec<_>, _>>()?;
    let fds_with_files = eventually("the open files to show", WAIT, || async {
        let fds = sample(&scrape(admin).await.ok()?, "process_open_fds").ok()?;
        (fds >= fds_before + 48.0).then_some(fds)
    })
    .await?;
    drop(files);
    eventually("the closed files to go", WAIT, || async {
        let fds = sample(&scrape(admin).await.ok()?, "process_open_fds").ok()?;
        (fds <= fds_with_files - 48.0).then_some(())
    })
    .await?;

    stop.cancel();
    if tokio::time::timeout(WAIT, task).await.is_err() {
        bail!("the standby operator did not stop within {WAIT:?}");
    }
    Ok(())
}
