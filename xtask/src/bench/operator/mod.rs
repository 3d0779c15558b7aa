//! `cargo xtask bench backup-operator`: the backup operator at scale (issue 7, "Benchmark").
//!
//! On the test control plane, with a tiny PostgreSQL database and the S3 server (testkit), it
//! creates `--finished-per-policy` (10) finished BackupRequests for each of `--policies` (1,000)
//! VerticeBackups, then the VerticeBackups themselves, all firing daily in the same UTC minute
//! with the InProcess executor, and starts the release operator as a local process. It measures:
//!
//! - the operator's resident memory with the policies cached and the finished runs present,
//!   before the minute (VmRSS), and its peak over the whole run (VmHWM) — target ≤ 64 MiB.
//!   The finished runs carry the label this operator gives them once their work is done, so
//!   they stay out of its caches; `--unlabelled-finished` seeds them as an older operator left
//!   them, which measures the one-off upgrade instead;
//! - from the scheduled minute to the last of that minute's BackupRequests `Running` (its
//!   `status.startTime`) and to all `Succeeded` (`status.completionTime`);
//! - reconciles per minute at steady state afterwards (`vertice_reconcile_total` from the
//!   operator's `/metrics`, over `--steady-seconds`) — target: none beyond timers.
//!
//! The issue asks for the local store; the InProcess executor refuses a `local` store (a
//! PersistentVolumeClaim only a Job can mount), so the runs write to the S3 server, which keeps
//! its objects on the local disk. There is no baseline to divide by: the figures are absolute.

mod fixtures;
mod scrape;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};
use vertice_backup::api::BackupRequest;
use vertice_backup::api::run::RunPhase;
use vertice_testkit::control_plane::ControlPlane;
use vertice_testkit::services::postgres::Postgres;
use vertice_testkit::services::s3::S3Server;

use crate::demo::{binary, database, secrets, stack};
use fixtures::Target;

/// The namespace of the benchmark's objects.
const NAMESPACE: &str = "vertice-bench";
/// The bucket.
const BUCKET: &str = "bench";
/// The database login and database of the tiny source.
const LOGIN: &str = "bench";
const DATABASE: &str = "tiny";
/// How long the slot's runs may take before the benchmark gives up.
const RUNS_DEADLINE: Duration = Duration::from_secs(30 * 60);
/// The peak RSS target of the issue.
const RSS_TARGET_MIB: f64 = 64.0;

/// Flags of `cargo xtask bench backup-operator`.
#[derive(Args, Clone, Debug)]
pub struct OperatorBenchArgs {
    /// backup-operator: how many VerticeBackups fire in the same minute.
    #[arg(long, default_value_t = 1000)]
    pub policies: usize,
    /// backup-operator: finished BackupRequests per VerticeBackup created before the operator
    /// starts.
    #[arg(long, default_value_t = 10)]
    pub finished_per_policy: usize,
    /// backup-operator: create the finished BackupRequests as an operator older than the
    /// `backup.vertice.dev/finished` label left them (unlabelled, so the operator caches and
    /// labels each one at start: the one-off cost of the upgrade). By default they are as
    /// this operator leaves them: labelled, so they stay out of its caches.
    #[arg(long)]
    pub unlabelled_finished: bool,
    /// backup-operator: the operator's `--max-concurrent-runs-per-project` (all policies are
    /// one project, the namespace).
    #[arg(long, default_value_t = 16)]
    pub max_concurrent_runs: u16,
    /// backup-operator: how long reconciles are counted at steady state, seconds.
    #[arg(long, default_value_t = 60)]
    pub steady_seconds: u64,
}

/// Runs the benchmark; prints its figures.
pub fn run(
    args: &OperatorBenchArgs,
    binary_override: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    crate::tools::run(crate::tools::ToolsArgs {})?;
    let binary = match binary_override {
        Some(binary) => binary,
        None => binary::build_backup_binary(true)?,
    };
    println!("==> starting the control plane");
    let control_plane = ControlPlane::start_blocking()?;
    let work = tempfile::tempdir().context("creating the benchmark's folder")?;
    let kubeconfig = work.path().join("kubeconfig");
    std::fs::copy(control_plane.admin_kubeconfig(), &kubeconfig)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let client = control_plane.admin_client().await?;
        measure(args, &client, &binary, &kubeconfig, work.path()).await
    });
    drop(runtime);
    control_plane.stop();
    result
}

async fn measure(
    args: &OperatorBenchArgs,
    client: &kube::Client,
    binary: &std::path::Path,
    kubeconfig: &std::path::Path,
    work: &std::path::Path,
) -> anyhow::Result<()> {
    let postgres = Postgres::start().await?;
    let password = secrets::random_hex(16)?;
    seed_tiny_database(&postgres, &password).await?;
    let s3 = S3Server::start().await?;
    s3.create_bucket(BUCKET)?;
    vertice_testkit::crds::install_crds(client, &vertice_backup::crds()).await?;
    create_namespace(client).await?;
    secrets::create(
        client,
        NAMESPACE,
        &secrets::SecretValues {
            database_password: password,
            s3_access_key: s3.access_key().to_owned(),
            s3_secret_key: s3.secret_key().to_owned(),
            encryption_key_hex: secrets::random_hex(32)?,
            webhook_url: "http://127.0.0.1:9/unused".to_owned(),
        },
    )
    .await?;

    let finished = args.policies * args.finished_per_policy;
    let started = Instant::now();
    println!("==> creating {finished} finished BackupRequests");
    fixtures::create_finished_requests(
        client,
        NAMESPACE,
        args.policies,
        args.finished_per_policy,
        Utc::now(),
        !args.unlabelled_finished,
    )
    .await?;
    println!("<== in {:.0?}", started.elapsed());

    // Room to create the policies (about 20 ms each here) and start the operator first.
    let lead_ms = 45_000 + 25 * i64::try_from(args.policies).unwrap_or(i64::MAX / 50);
    let slot = fixtures::next_minute_after(Utc::now(), chrono::Duration::milliseconds(lead_ms));
    let target = Target {
        host: postgres.host().to_owned(),
        port: postgres.port(),
        user: LOGIN.to_owned(),
        database: DATABASE.to_owned(),
        s3_endpoint: s3.endpoint(),
        bucket: BUCKET.to_owned(),
    };
    println!(
        "==> creating {} VerticeBackups firing at {slot} ({})",
        args.policies,
        fixtures::daily_cron(slot)
    );
    let started = Instant::now();
    fixtures::create_policies(client, NAMESPACE, args.policies, slot, &target).await?;
    println!("<== in {:.0?}", started.elapsed());

    let admin_addr: SocketAddr = ([127, 0, 0, 1], vertice_testkit::ports::free_port()?).into();
    let limit = args.max_concurrent_runs.to_string();
    let mut operator = stack::start_operator(
        binary,
        kubeconfig,
        admin_addr,
        work,
        &[
            "--leader-election-namespace",
            NAMESPACE,
            "--max-concurrent-runs-per-project",
            &limit,
            "--log-filter",
            "warn",
        ],
    )
    .await?;
    let pid = operator.pid();
    if Utc::now() >= slot {
        bail!(
            "setting up took past the slot {slot}; run again (the lead is computed from --policies)"
        );
    }
    println!("    operator ready; waiting for {slot}");
    let until_slot = (slot - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until_slot.saturating_sub(Duration::from_secs(2))).await;
    let rss_before_kib = scrape::status_kib(pid, "VmRSS").unwrap_or_default();
    // Printed now too, so a run stopped before the slot ends still tells the cache's cost.
    println!(
        "    operator RSS before the slot: {:.1} MiB (peak so far {:.1} MiB)",
        rss_before_kib as f64 / 1024.0,
        scrape::status_kib(pid, "VmHWM").unwrap_or_default() as f64 / 1024.0
    );

    let outcome = wait_for_slot(client, args.policies, slot).await;
    let metrics_url = format!("http://{admin_addr}/metrics");
    let steady = steady_reconciles(&metrics_url, Duration::from_secs(args.steady_seconds)).await;
    let peak_kib = scrape::status_kib(pid, "VmHWM").unwrap_or_default();
    operator.stop(Duration::from_secs(15));
    let outcome = outcome?;
    let steady = steady?;

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!();
    println!(
        "backup-operator: {} VerticeBackups, {finished} finished BackupRequests ({}), InProcess, S3 on local disk, {} concurrent runs",
        args.policies,
        if args.unlabelled_finished {
            "unlabelled, as before the finished label"
        } else {
            "labelled finished, as this operator leaves them"
        },
        args.max_concurrent_runs
    );
    println!(
        "  operator RSS before the slot:                                   {:.1} MiB",
        mib(rss_before_kib)
    );
    println!(
        "  operator peak RSS (VmHWM, whole run):                           {:.1} MiB (target ≤ {RSS_TARGET_MIB} MiB: {})",
        mib(peak_kib),
        if mib(peak_kib) <= RSS_TARGET_MIB {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "  scheduled minute -> last BackupRequest Running:  {} s",
        outcome.last_started_seconds
    );
    println!(
        "  scheduled minute -> all Succeeded:               {} s ({} succeeded, {} failed)",
        outcome.last_completed_seconds, outcome.succeeded, outcome.failed
    );
    println!(
        "  reconciles per minute at steady state:           {:.1} (over {} s; target: none beyond timers)",
        steady, args.steady_seconds
    );
    if outcome.failed > 0 {
        bail!("{} of the slot's runs failed", outcome.failed);
    }
    Ok(())
}

/// How the slot's runs went, in whole seconds after the slot.
struct SlotOutcome {
    last_started_seconds: i64,
    last_completed_seconds: i64,
    succeeded: usize,
    failed: usize,
}

/// Waits until the slot's `policies` BackupRequests (all but the seeded ones) have all finished; their status times say
/// when the last one started and the last one finished.
async fn wait_for_slot(
    client: &kube::Client,
    policies: usize,
    slot: DateTime<Utc>,
) -> anyhow::Result<SlotOutcome> {
    let api: Api<BackupRequest> = Api::namespaced(client.clone(), NAMESPACE);
    let suffix = format!("-{}", slot.timestamp().div_euclid(60));
    let deadline = Instant::now() + RUNS_DEADLINE;
    let mut last_report = String::new();
    loop {
        let requests: Vec<_> = api
            .list(&ListParams::default().labels(&format!("!{}", fixtures::SEEDED_LABEL)))
            .await?
            .items
            .into_iter()
            .filter(|r| {
                r.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.ends_with(&suffix))
            })
            .collect();
        let phase = |r: &BackupRequest| r.status.as_ref().map(|s| s.phase).unwrap_or_default();
        let count = |wanted: RunPhase| requests.iter().filter(|r| phase(r) == wanted).count();
        let report = format!(
            "{} created: {} pending, {} queued, {} running, {} succeeded, {} failed",
            requests.len(),
            count(RunPhase::Pending),
            count(RunPhase::Queued),
            count(RunPhase::Running),
            count(RunPhase::Succeeded),
            count(RunPhase::Failed)
        );
        if report != last_report {
            println!("    [{:>4} s] {report}", (Utc::now() - slot).num_seconds());
            last_report = report;
        }
        let finished = requests.iter().filter(|r| phase(r).is_finished()).count();
        if requests.len() >= policies && finished == requests.len() {
            let seconds_after =
                |time: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
                    time.map_or(0, |t| t.0.as_second() - slot.timestamp())
                };
            let times = requests
                .iter()
                .filter_map(|r| r.status.as_ref())
                .map(|s| &s.times);
            let (mut started, mut completed) = (0, 0);
            for time in times {
                started = started.max(seconds_after(time.start_time.as_ref()));
                completed = completed.max(seconds_after(time.completion_time.as_ref()));
            }
            return Ok(SlotOutcome {
                last_started_seconds: started,
                last_completed_seconds: completed,
                succeeded: count(RunPhase::Succeeded),
                failed: count(RunPhase::Failed),
            });
        }
        if Instant::now() > deadline {
            bail!("the slot's runs did not finish within {RUNS_DEADLINE:?}: {last_report}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Reconciles per minute over `window`, from `vertice_reconcile_total`.
async fn steady_reconciles(metrics_url: &str, window: Duration) -> anyhow::Result<f64> {
    // Let the last status writes of the slot settle first.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = scrape::counter_sum(
        &scrape::fetch(metrics_url).await?,
        "vertice_reconcile_total",
    );
    tokio::time::sleep(window).await;
    let after = scrape::counter_sum(
        &scrape::fetch(metrics_url).await?,
        "vertice_reconcile_total",
    );
    Ok((after - before) * 60.0 / window.as_secs_f64().max(1.0))
}

/// A login and a database of one small table (a few hundred rows).
async fn seed_tiny_database(postgres: &Postgres, password: &str) -> anyhow::Result<()> {
    let login = database::quote_identifier(LOGIN);
    postgres
        .sql(&format!(
            "CREATE ROLE {login} LOGIN PASSWORD {}",
            database::quote_literal(password)
        ))
        .await?;
    postgres
        .sql(&format!(
            "CREATE DATABASE {} OWNER {login}",
            database::quote_identifier(DATABASE)
        ))
        .await?;
    postgres
        .sql_in(
            DATABASE,
            &format!(
                "SET ROLE {login}; CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL); \
                 INSERT INTO items SELECT n, 'item ' || n FROM generate_series(1, 300) AS n;"
            ),
        )
        .await?;
    Ok(())
}

async fn create_namespace(client: &kube::Client) -> anyhow::Result<()> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    Ok(())
}
