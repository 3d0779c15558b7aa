//! `cargo xtask demo`: the backup operator at work on a local control plane.
//!
//! It starts the control plane the tests use (etcd, kube-apiserver, kube-controller-manager from
//! `cargo xtask tools`), PostgreSQL with a seeded shop database, the S3 server, the kubelet
//! stand-in (runner Jobs run the freshly built `vertice-backup`), the backup CRDs and Secrets,
//! the operator as a local process, and applies `examples/backup/` (a schedule firing every
//! minute, an on-demand BackupRequest, a RestoreRequest into a new database, and a project
//! backup: the database dumped and a bucket folder of uploaded documents copied in one run).
//!
//! Interactive: prints how to watch, follows the runs, stops everything on Ctrl-C.
//! `--once`: waits until the four runs succeed (or one fails, or the deadline passes), prints a
//! summary, and exits 0 — non-zero with the failing object's conditions otherwise.

pub(crate) mod binary;
pub(crate) mod database;
mod examples;
mod progress;
pub(crate) mod secrets;
pub(crate) mod stack;
mod summary;
mod uploads;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use vertice_testkit::control_plane::ControlPlane;

use crate::workspace_root;
use progress::{Outcome, Snapshot, Watched};
use stack::Stack;

/// How often the runs' status is read.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often `--once` says it is still waiting when nothing changed.
const STILL_WAITING_EVERY: Duration = Duration::from_secs(15);

/// Arguments of `cargo xtask demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Run non-interactively: wait until the on-demand backup, the first scheduled backup, the
    /// restore and the project backup succeed, print a summary and exit 0 (non-zero when one fails or the
    /// deadline passes).
    #[arg(long)]
    pub once: bool,
    /// With `--once`: how long to wait for the runs, in seconds (the first scheduled run starts
    /// at the next full minute).
    #[arg(long, default_value_t = 300)]
    pub timeout_seconds: u64,
    /// Where the demo writes its kubeconfig and the operator's log (default `.demo/` in the
    /// workspace).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Skip `cargo xtask tools` (when you know the tools are installed).
    #[arg(long)]
    pub no_tools: bool,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| workspace_root().join(".demo"));
    if !args.no_tools {
        crate::tools::run(crate::tools::ToolsArgs {})?;
    }
    println!("==> building vertice-backup");
    let binary = binary::build_backup_binary(false)?;

    println!("==> starting the local control plane");
    let started = Instant::now();
    let control_plane = ControlPlane::start_blocking()?;
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let kubeconfig = state_dir.join("kubeconfig");
    // A copy, because the control plane's own folder is removed when it stops; the copy is
    // self-contained (certificates inline).
    std::fs::copy(control_plane.admin_kubeconfig(), &kubeconfig)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    println!(
        "<== control plane ready in {:.1?}: kube-apiserver {} at {}",
        started.elapsed(),
        control_plane.server_version(),
        control_plane.url()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let client = control_plane.admin_client().await?;
        let stack = Stack::start(&client, &control_plane, &binary, &state_dir).await?;
        let result = if args.once {
            once(&client, &stack, Duration::from_secs(args.timeout_seconds)).await
        } else {
            interactive(&client, &stack, &kubeconfig).await
        };
        println!("stopping the operator, the kubelet stand-in and the services");
        stack.stop();
        result
    });
    drop(runtime);

    println!("stopping the control plane");
    control_plane.stop();
    // Its certificates belong to a CA that no longer exists.
    let _ = std::fs::remove_file(&kubeconfig);
    drop(control_plane);
    println!("stopped");
    result
}

/// The names the demo follows, from the applied examples.
fn watched(stack: &Stack) -> anyhow::Result<Watched> {
    Ok(Watched {
        namespace: stack::NAMESPACE.to_owned(),
        policy: stack.example("VerticeBackup")?.name.clone(),
        on_demand: stack.example("BackupRequest")?.name.clone(),
        restore: stack.example("RestoreRequest")?.name.clone(),
        project: stack.project.name.clone(),
    })
}

/// `--once`: waits for the outcome, then prints the summary or the failure.
async fn once(client: &kube::Client, stack: &Stack, timeout: Duration) -> anyhow::Result<()> {
    let watched = watched(stack)?;
    println!(
        "==> waiting up to {timeout:?} for {}, the first scheduled run of {} and {} to succeed, then {}",
        watched.on_demand, watched.policy, watched.project, watched.restore
    );
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last_lines = Vec::new();
    let mut last_print = Instant::now();
    loop {
        let snapshot = Snapshot::read(client, &watched).await?;
        let lines = snapshot.lines(&watched);
        if lines != last_lines || last_print.elapsed() >= STILL_WAITING_EVERY {
            println!("    [{:>4.0?}]", started.elapsed());
            for line in &lines {
                println!("      {line}");
            }
            last_lines = lines;
            last_print = Instant::now();
        }
        match snapshot.outcome() {
            Outcome::Succeeded => {
                println!("<== all succeeded in {:.0?}", started.elapsed());
                return summary::print(stack, &snapshot).await;
            }
            Outcome::Failed(object) => {
                summary::print_failure(client, stack, &snapshot, &object).await;
                bail!("{object} failed");
            }
            Outcome::Waiting if Instant::now() > deadline => {
                summary::print_failure(client, stack, &snapshot, "the deadline").await;
                bail!("the runs did not finish within {timeout:?}");
            }
            Outcome::Waiting => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Interactive: prints how to watch, then follows the runs until Ctrl-C.
async fn interactive(
    client: &kube::Client,
    stack: &Stack,
    kubeconfig: &std::path::Path,
) -> anyhow::Result<()> {
    let kubectl = vertice_testkit::tools::tool_binary("kubectl")?;
    let namespace = stack::NAMESPACE;
    println!();
    println!("Watch it from another terminal (you are cluster-admin):");
    println!("    export KUBECONFIG={}", kubeconfig.display());
    println!("    {} -n {namespace} get vb,br,rr -w", kubectl.display());
    println!("    {} -n {namespace} get jobs,pods", kubectl.display());
    println!(
        "    curl -s http://{}/metrics | grep vertice_backup",
        stack.admin_addr
    );
    println!(
        "    tail -f {}    # the operator's log",
        stack.operator.log_path().display()
    );
    println!(
        "The schedule fires every minute. Database {} on {}:{}; S3 at {} (bucket {}).",
        database::SOURCE_DATABASE,
        stack.postgres.host(),
        stack.postgres.port(),
        stack.s3.endpoint(),
        stack::BUCKET
    );
    println!("Press Ctrl-C to stop everything.");
    println!();

    let watched = watched(stack)?;
    let follow = async {
        let mut last_lines = Vec::new();
        let mut summarized = false;
        loop {
            match Snapshot::read(client, &watched).await {
                Ok(snapshot) => {
                    let lines = snapshot.lines(&watched);
                    if lines != last_lines {
                        for line in &lines {
                            println!("    {line}");
                        }
                        last_lines = lines;
                    }
                    if !summarized && snapshot.outcome() == Outcome::Succeeded {
                        if let Err(error) = summary::print(stack, &snapshot).await {
                            println!("    {error:#}");
                        }
                        summarized = true;
                    }
                }
                Err(error) => println!("    reading the runs failed: {error:#}"),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    };
    tokio::select! {
        signal = tokio::signal::ctrl_c() => signal.context("waiting for Ctrl-C"),
        () = follow => Ok(()),
    }
}
