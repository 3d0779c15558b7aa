//! Everything the demo runs beside the control plane: PostgreSQL with the seeded shop, the S3
//! server with the backups bucket and the uploads bucket the project backup copies, a webhook
//! receiver for failure notifications, the kubelet stand-in
//! that runs the operator's runner Jobs with the freshly built binary, the CRDs, the Secrets,
//! the backup operator as a local process with only its chart's RBAC, and the examples applied.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use vertice_testkit::chart;
use vertice_testkit::control_plane::ControlPlane;
use vertice_testkit::kubelet::{Kubelet, KubeletOptions};
use vertice_testkit::process::ServiceProcess;
use vertice_testkit::services::http_sink::HttpSink;
use vertice_testkit::services::postgres::Postgres;
use vertice_testkit::services::s3::S3Server;

use super::database::{self, RowCounts};
use super::examples::{self, Endpoints, Example};
use super::secrets::{self, SecretValues};
use super::uploads::{self, Seeded};

/// The namespace the demo's objects live in.
pub const NAMESPACE: &str = "vertice-demo";
/// The image the operator puts in its runner Jobs; the kubelet stand-in runs the local binary
/// for it.
pub const RUNNER_IMAGE: &str = "ghcr.io/vertice/backup:demo";
/// The bucket the demo's backups go to.
pub const BUCKET: &str = "shop-backups";
/// The Helm release the demo renders the chart's ServiceAccount and RBAC for; it holds the
/// chart's name, so the chart names its objects (ServiceAccount, ClusterRole) just this.
const RELEASE: &str = "vertice-backup";
/// The leader-election Lease the chart's Role lets the operator use: `<full name>-leader`.
const LEASE: &str = "vertice-backup-leader";
/// How long the operator may take to serve `/readyz`.
const OPERATOR_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the operator may take to stop after SIGTERM before it is killed.
const OPERATOR_STOP_GRACE: Duration = Duration::from_secs(15);

/// The running pieces. Stopped by [`Stack::stop`] (operator first, so it never sees its
/// services vanish mid-run) or, in field order, when dropped.
pub struct Stack {
    /// The backup operator process.
    pub operator: ServiceProcess,
    /// Its admin server (`/metrics`, `/healthz`, `/readyz`).
    pub admin_addr: SocketAddr,
    /// Runs the runner Jobs' Pods.
    pub kubelet: Kubelet,
    /// Receives the policy's failure notifications.
    pub webhook: HttpSink,
    /// The S3 server.
    pub s3: S3Server,
    /// The database server.
    pub postgres: Postgres,
    /// Rows per table of the seeded database.
    pub source_rows: RowCounts,
    /// The examples as applied (localized), one of each of `examples::KINDS`.
    pub examples: Vec<Example>,
    /// The project backup example as applied (localized).
    pub project: Example,
    /// The uploaded documents the project backup copies.
    pub uploads: Seeded,
}

impl Stack {
    /// Starts every piece and applies the examples. `client` is the admin's; the operator
    /// runs as the chart's ServiceAccount (`charts/backup`, rendered by `helm template` and
    /// applied with its defaults: bound cluster-wide, leader election on) through a kubeconfig
    /// of `control_plane` for it, as `helm install` would run it. `binary` is the
    /// `vertice-backup` executable; `state_dir` receives the operator's log
    /// (`vertice-backup.log`).
    ///
    /// Errors: a piece did not start (its log tail is in the message) or the apiserver refused
    /// an object.
    pub async fn start(
        client: &kube::Client,
        control_plane: &ControlPlane,
        binary: &Path,
        state_dir: &Path,
    ) -> anyhow::Result<Self> {
        let postgres = step(
            "PostgreSQL with the seeded shop database",
            Postgres::start(),
        )
        .await?;
        let database_password = secrets::random_hex(16)?;
        let source_rows = step("seeding", database::seed(&postgres, &database_password)).await?;
        println!(
            "    {} rows in {} tables of database {}",
            database::total_rows(&source_rows),
            source_rows.len(),
            database::SOURCE_DATABASE
        );
        let s3 = step("the S3 server", S3Server::start()).await?;
        s3.create_bucket(BUCKET)?;
        let uploads = step("the uploaded documents", uploads::seed(&s3)).await?;
        let webhook = HttpSink::start().await?;

        step("the backup CRDs", async {
            vertice_testkit::crds::install_crds(client, &vertice_backup::crds()).await
        })
        .await?;
        create_namespace(client, NAMESPACE).await?;
        let chart_dir = crate::workspace_root().join("charts/backup");
        let rbac = step("the chart's ServiceAccount and RBAC", async {
            chart::install_rbac(
                client,
                &chart_dir,
                RELEASE,
                NAMESPACE,
                &chart::RBAC_TEMPLATES,
                &[],
            )
            .await
        })
        .await?;
        let operator_kubeconfig = control_plane.kubeconfig_as(NAMESPACE, &rbac.service_account)?;
        secrets::create(
            client,
            NAMESPACE,
            &SecretValues {
                database_password,
                s3_access_key: s3.access_key().to_owned(),
                s3_secret_key: s3.secret_key().to_owned(),
                encryption_key_hex: secrets::random_hex(32)?,
                webhook_url: webhook.url_for("/ops"),
            },
        )
        .await?;

        let kubelet = step(
            "the kubelet stand-in",
            Kubelet::start(
                client,
                KubeletOptions::new(NAMESPACE).image(RUNNER_IMAGE, binary),
            ),
        )
        .await?;
        let admin_addr: SocketAddr = ([127, 0, 0, 1], vertice_testkit::ports::free_port()?).into();
        let operator = step(
            "the backup operator",
            start_operator(
                binary,
                &operator_kubeconfig,
                admin_addr,
                state_dir,
                &[
                    "--leader-election-namespace",
                    NAMESPACE,
                    "--lease-name",
                    LEASE,
                    "--runner-image",
                    RUNNER_IMAGE,
                ],
            ),
        )
        .await?;

        let endpoints = Endpoints {
            database_host: postgres.host().to_owned(),
            database_port: postgres.port(),
            s3_endpoint: s3.endpoint(),
            bucket: BUCKET.to_owned(),
        };
        let mut applied = Vec::new();
        let examples_dir = crate::workspace_root().join("examples/backup");
        for example in examples::load(&examples_dir)? {
            applied.push(apply_example(client, example, &endpoints).await?);
        }
        let project = examples::load_project(&examples_dir)?;
        let project = apply_example(client, project, &endpoints).await?;
        Ok(Self {
            operator,
            admin_addr,
            kubelet,
            webhook,
            s3,
            postgres,
            source_rows,
            examples: applied,
            project,
            uploads,
        })
    }

    /// The applied example of `kind` (the loader guarantees one of each of `examples::KINDS`).
    pub fn example(&self, kind: &str) -> anyhow::Result<&Example> {
        self.examples
            .iter()
            .find(|example| example.kind == kind)
            .with_context(|| format!("no {kind} example was applied"))
    }

    /// Stops the operator (SIGTERM, then SIGKILL after a grace period), then everything else.
    pub fn stop(mut self) {
        self.operator.stop(OPERATOR_STOP_GRACE);
        drop(self);
    }
}

/// Applies `example` in [`NAMESPACE`], pointed at `endpoints`; returns it as applied.
///
/// Errors: it names a Secret the demo does not create, or the apiserver refused it.
async fn apply_example(
    client: &kube::Client,
    mut example: Example,
    endpoints: &Endpoints,
) -> anyhow::Result<Example> {
    for secret in examples::secret_names(&example.object) {
        if !secrets::NAMES.contains(&secret.as_str()) {
            bail!(
                "examples/backup/{} names Secret {secret}, which the demo does not create",
                example.file
            );
        }
    }
    examples::localize(&mut example.object, endpoints);
    examples::apply(client, NAMESPACE, &example.object).await?;
    println!(
        "    applied examples/backup/{} ({} {})",
        example.file, example.kind, example.name
    );
    Ok(example)
}

/// Runs `future` between a start line and a done line with its duration.
async fn step<T>(what: &str, future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    println!("==> {what}");
    let started = Instant::now();
    let value = future.await.with_context(|| format!("starting {what}"))?;
    println!("<== {what}: ready in {:.1?}", started.elapsed());
    Ok(value)
}

async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

/// `vertice-backup run` as a local process, as the chart's Deployment would run it, with a
/// clean environment (the demo's own cloud credentials must not leak into it) and `extra`
/// flags. Waits until its `/readyz` answers 200 (its caches are synced). Its output goes to
/// `state_dir/vertice-backup.log`.
///
/// Errors: it exited or did not get ready within a minute (its log tail is in the message).
pub async fn start_operator(
    binary: &Path,
    kubeconfig: &Path,
    admin_addr: SocketAddr,
    state_dir: &Path,
    extra: &[&str],
) -> anyhow::Result<ServiceProcess> {
    let mut command = Command::new(binary);
    command
        .arg("run")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--admin-addr", &admin_addr.to_string()])
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default());
    // A log of an earlier demo in the same folder would mix into this one's failure report.
    let _ = std::fs::remove_file(state_dir.join("vertice-backup.log"));
    let mut operator = ServiceProcess::spawn("vertice-backup", command, state_dir, None)?;
    let readyz = format!("http://{admin_addr}/readyz");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + OPERATOR_READY_TIMEOUT;
    loop {
        operator.ensure_running()?;
        let ready = http
            .get(&readyz)
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            return Ok(operator);
        }
        if Instant::now() > deadline {
            bail!(
                "the operator did not answer {readyz} within {OPERATOR_READY_TIMEOUT:?}; its log ends:\n{}",
                operator.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
