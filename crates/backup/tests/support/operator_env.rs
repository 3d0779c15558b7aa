//! What the operator tests share: the real control plane (one per test binary), a namespace
//! per test, a real PostgreSQL with a seeded database, the real S3 server, the kubelet
//! stand-in running the real `vertice-backup` binary, and the operator itself in this process.
#![allow(dead_code)]

#[path = "chart_rbac.rs"]
pub mod chart_rbac;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vertice_backup::api::BackupRequest;
use vertice_backup::api::run::RunPhase;
use vertice_backup::controller::{self, OperatorArgs};
use vertice_backup::manifest::Manifest;
use vertice_backup::store::{BackupStore, StoreConfig, StoreKind};
use vertice_core::clock::SharedClock;
use vertice_testkit::control_plane::ControlPlane;
use vertice_testkit::crds::install_crds;
use vertice_testkit::kubelet::{Kubelet, KubeletOptions};
use vertice_testkit::namespace::TestNamespace;
use vertice_testkit::services::{Postgres, S3Server};

/// The runner image name the operator puts in Jobs; the kubelet maps it to the binary.
pub const IMAGE: &str = "vertice-backup:test";
/// How long a test waits for something to happen.
pub const WAIT: Duration = Duration::from_secs(120);
/// The encryption key in the `key` Secret (hex of 32 bytes).
pub const KEY_HEX: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";
pub const BUCKET: &str = "backups";

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    args: OperatorArgs,
}

/// One test's world.
pub struct Env {
    pub client: Client,
    pub ns: TestNamespace,
    pub pg: Postgres,
    pub s3: S3Server,
    pub kubelet: Option<Kubelet>,
    pub operator: Option<RunningOperator>,
}

/// An operator running in this process.
pub struct RunningOperator {
    pub token: CancellationToken,
    pub handle: JoinHandle<Result<(), vertice_core::OperatorError>>,
    pub admin: SocketAddr,
    /// Set when it runs as the chart's ServiceAccount: fails the test, once the operator is
    /// dropped, if the apiserver refused it anything.
    pub refusal_check: Option<chart_rbac::RefusalCheck>,
}

impl RunningOperator {
    /// Stops it (as on SIGTERM) and waits until it returned.
    pub async fn stop(self) {
        self.token.cancel();
        let _ = tokio::time::timeout(WAIT, self.handle).await;
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.admin);
        match reqwest::get(&url).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }
}

impl Env {
    /// A namespace with the Secrets `db`, `s3` and `key`, PostgreSQL with database `shop`, the
    /// S3 server with bucket `backups`, and (when `kubelet`) the kubelet stand-in.
    pub async fn new(prefix: &str, kubelet: bool) -> Self {
        // Before any operator starts: its logging keeps this subscriber, so every test's
        // operator logs are captured.
        vertice_testkit::log_capture::LogCapture::install().unwrap();
        let control_plane = ControlPlane::shared().await.unwrap();
        let client = control_plane.admin_client().await.unwrap();
        install_crds(&client, &vertice_backup::crds())
            .await
            .unwrap();
        let ns = TestNamespace::create(&client, prefix).await.unwrap();
        let pg = Postgres::start().await.unwrap();
        pg.create_database("shop").await.unwrap();
        pg.sql_in(
            "shop",
            "CREATE TABLE items (id bigint PRIMARY KEY, name text); \
             INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 2000) g;",
        )
        .await
        .unwrap();
        let s3 = S3Server::start().await.unwrap();
        s3.create_bucket(BUCKET).unwrap();
        let mut env = Env {
            client,
            ns,
            pg,
            s3,
            kubelet: None,
            operator: None,
        };
        env.secret("db", &[("password", env.pg.password().to_owned())])
            .await;
        env.secret(
            "s3",
            &[
                ("AWS_ACCESS_KEY_ID", env.s3.access_key().to_owned()),
                ("AWS_SECRET_ACCESS_KEY", env.s3.secret_key().to_owned()),
            ],
        )
        .await;
        env.secret("key", &[("backup-key", KEY_HEX.to_owned())])
            .await;
        if kubelet {
            env.start_kubelet().await;
        }
        env
    }

    pub fn name(&self) -> &str {
        self.ns.name()
    }

    /// The secrets that must never show anywhere but in their Secret.
    pub fn secrets(&self) -> Vec<String> {
        vec![
            self.pg.password().to_owned(),
            self.s3.secret_key().to_owned(),
            KEY_HEX.to_owned(),
        ]
    }

    pub async fn start_kubelet(&mut self) {
        let options =
            KubeletOptions::new(self.ns.name()).image(IMAGE, env!("CARGO_BIN_EXE_vertice-backup"));
        self.kubelet = Some(Kubelet::start(&self.client, options).await.unwrap());
    }

    /// Creates (or replaces) a Secret.
    pub async fn secret(&self, name: &str, data: &[(&str, String)]) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), self.ns.name());
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(key, value)| ((*key).to_owned(), ByteString(value.clone().into_bytes())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        };
        let _ = api.delete(name, &Default::default()).await;
        eventually("the old Secret to go", || async {
            api.get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await;
        api.create(&PostParams::default(), &secret).await.unwrap();
    }

    /// Starts the operator watching this namespace with `flags` added, as the chart's
    /// ServiceAccount with only the chart's RBAC (`support/chart_rbac.rs`): a rule the chart
    /// lacks fails the test.
    pub async fn start_operator(&mut self, flags: &[&str], clock: Option<SharedClock>) {
        let mut all = vec!["--leader-election", "false"];
        all.extend_from_slice(flags);
        let (rbac, client) = chart_rbac::operator_client(self.ns.name()).await;
        let check = chart_rbac::RefusalCheck::new(rbac.user());
        self.start_operator_with_client(client, &all, clock).await;
        if let Some(operator) = &mut self.operator {
            operator.refusal_check = Some(check);
        }
    }

    /// Starts the operator watching this namespace, talking to the apiserver through `client`
    /// (e.g. as the chart's ServiceAccount), with `flags` (leader election is on unless they
    /// say otherwise).
    pub async fn start_operator_with_client(
        &mut self,
        client: Client,
        flags: &[&str],
        clock: Option<SharedClock>,
    ) {
        let mut argv = vec![
            "vertice-backup-run".to_owned(),
            "--namespace".into(),
            self.ns.name().to_owned(),
            "--admin-addr".into(),
            "127.0.0.1:0".into(),
            "--runner-image".into(),
            IMAGE.into(),
        ];
        argv.extend(flags.iter().map(|flag| (*flag).to_owned()));
        let args = Flags::parse_from(argv).args;
        let token = CancellationToken::new();
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let mut operator = controller::operator(&args)
            .client(client)
            .handle_signals(false)
            .shutdown_on(token.clone())
            .on_admin_bound(bound_tx);
        if let Some(clock) = clock {
            operator = operator.clock(clock);
        }
        let handle = tokio::spawn(operator.run());
        let admin = tokio::time::timeout(WAIT, bound_rx).await.unwrap().unwrap();
        self.operator = Some(RunningOperator {
            token,
            handle,
            admin,
            refusal_check: None,
        });
    }

    pub async fn stop_operator(&mut self) {
        if let Some(operator) = self.operator.take() {
            operator.stop().await;
        }
    }

    pub async fn metrics(&self) -> String {
        match &self.operator {
            Some(operator) => operator.metrics().await,
            None => String::new(),
        }
    }

    pub fn requests(&self) -> Api<BackupRequest> {
        Api::namespaced(self.client.clone(), self.ns.name())
    }

    pub fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), self.ns.name())
    }

    /// The `target` of a run against the seeded database; `password_key` names the key of
    /// the `db` Secret.
    pub fn target(&self, port: u16, password_secret: &str) -> Value {
        json!({
            "engine": "postgres",
            "host": "127.0.0.1",
            "port": port,
            "user": self.pg.superuser(),
            "passwordSecretRef": {"name": password_secret, "key": "password"},
            "database": "shop",
        })
    }

    pub fn storage(&self) -> Value {
        json!({
            "store": "s3",
            "bucket": BUCKET,
            "prefix": "team/app",
            "endpoint": self.s3.endpoint(),
            "region": self.s3.region(),
            "credentialsSecretRef": {"name": "s3"},
        })
    }

    pub fn encryption(&self) -> Value {
        json!({"keySecretRef": {"name": "key", "key": "backup-key"}})
    }

    /// Creates an inline BackupRequest; `extra` is merged into its spec, `labels` onto it.
    pub async fn inline_request(&self, name: &str, extra: Value, labels: Value) -> BackupRequest {
        let mut spec = json!({
            "target": self.target(self.pg.port(), "db"),
            "storage": self.storage(),
            "encryption": self.encryption(),
        });
        merge(&mut spec, extra);
        self.create_request(name, spec, labels).await
    }

    /// A run of project `shop` whose only part is `snapshot` (see `snapshots::snapshot_part`).
    pub async fn snapshot_run(&self, name: &str, snapshot: Value) -> BackupRequest {
        let spec = json!({
            "snapshot": snapshot,
            "storage": self.storage(),
            "encryption": self.encryption(),
        });
        self.create_request(name, spec, json!({"vertice.dev/project": "shop"}))
            .await
    }

    pub async fn create_request(&self, name: &str, spec: Value, labels: Value) -> BackupRequest {
        let object = json!({
            "apiVersion": "backup.vertice.dev/v1alpha1",
            "kind": "BackupRequest",
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
        });
        let request: BackupRequest = serde_json::from_value(object).unwrap();
        self.requests()
            .create(&PostParams::default(), &request)
            .await
            .unwrap()
    }

    /// Waits until `name` is in `phase`; on timeout shows what it saw and the operator's log.
    pub async fn wait_phase(&self, name: &str, phase: RunPhase) -> BackupRequest {
        let api = self.requests();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let seen = api.get(name).await.ok();
            if let Some(request) = &seen
                && request
                    .status
                    .as_ref()
                    .is_some_and(|status| status.phase == phase)
            {
                return request.clone();
            }
            if tokio::time::Instant::now() >= deadline {
                let logs = vertice_testkit::log_capture::LogCapture::install()
                    .map(|capture| capture.lines())
                    .unwrap_or_default();
                let tail = logs
                    .iter()
                    .rev()
                    .take(40)
                    .rev()
                    .cloned()
                    .collect::<Vec<_>>();
                panic!(
                    "timed out waiting for BackupRequest {name} to be {phase:?}; last seen status: {}\nlog tail:\n{}",
                    serde_json::to_string_pretty(&seen.and_then(|r| r.status)).unwrap_or_default(),
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The Jobs of the run `name`.
    pub async fn jobs_of(&self, name: &str) -> Vec<Job> {
        self.jobs()
            .list(&ListParams::default().labels(&format!("backup.vertice.dev/request={name}")))
            .await
            .unwrap()
            .items
    }

    /// The test's own view of the store (credentials from a file of its own).
    pub fn store(&self) -> (BackupStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("s3");
        std::fs::write(
            &credentials,
            format!("{}\n{}\n", self.s3.access_key(), self.s3.secret_key()),
        )
        .unwrap();
        let config = StoreConfig {
            store: StoreKind::S3,
            bucket: Some(BUCKET.into()),
            endpoint: Some(self.s3.endpoint()),
            region: Some(self.s3.region().to_owned()),
            credentials_file: Some(credentials),
            prefix: "team/app".into(),
            ..StoreConfig::default()
        };
        (BackupStore::open(&config).unwrap(), dir)
    }

    pub async fn manifest(&self, name: &str) -> Manifest {
        let (store, _dir) = self.store();
        store.read_manifest(name).await.unwrap()
    }
}

/// Merges `extra` (an object) into `base`.
pub fn merge(base: &mut Value, extra: Value) {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        for (key, value) in extra {
            base.insert(key, value);
        }
    }
}

/// Polls `check` until it gives a value; panics after [`WAIT`] naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    vertice_testkit::wait::eventually(what, WAIT, check)
        .await
        .unwrap()
}

/// The value of the series `name{labels}` in a /metrics text (labels as written, in order).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.trim().parse().ok()
    })
}

/// Shared for `Arc` convenience in tests.
pub fn shared<T>(value: T) -> Arc<T> {
    Arc::new(value)
}
