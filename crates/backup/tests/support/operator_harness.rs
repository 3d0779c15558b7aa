//! The VerticeBackup controller running in-process against the shared REAL control plane,
//! on a `ManualClock` the test drives, with a trigger to reconcile after moving the clock
//! (instead of waiting for a real-time requeue). Plus the objects the tests make: Secrets,
//! VerticeBackups, BackupRequests with a status (as the runs controller would write it), and
//! backups written to a real S3 server by the real engine.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[path = "chart_rbac.rs"]
pub mod chart_rbac;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Timelike, Utc};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vertice_backup::api::{BackupRequest, RestoreRequest, VerticeBackup};
use vertice_backup::backup::{BackupOptions, DumpInput, run_backup};
use vertice_backup::controller::OperatorArgs;
use vertice_backup::controller::scheduling::{
    MANAGED_BY, MANAGED_BY_LABEL, POLICY_LABEL, POLICY_UID_LABEL,
};
use vertice_backup::controller::size_gauge::RunSizes;
use vertice_backup::controller::vertice_backup::controller;
use vertice_backup::progress::Progress;
use vertice_backup::store::{BackupStore, StoreConfig, StoreKind};
use vertice_core::cli::{LogFormat, RunArgs};
use vertice_core::clock::ManualClock;
use vertice_core::trigger::{self, Trigger};
use vertice_core::{Operator, OperatorError};
use vertice_testkit::control_plane::ControlPlane;
use vertice_testkit::crds::install_crds;
use vertice_testkit::namespace::TestNamespace;
use vertice_testkit::services::S3Server;

/// How long any awaited change may take.
pub const WAIT: Duration = Duration::from_secs(40);

/// Polls `check` every 100 ms until it returns `Some`, or fails after [`WAIT`] naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    vertice_testkit::wait::eventually(what, WAIT, check).await
}

/// The next whole hour at least `ahead` after the real time (slots the tests aim at are
/// after every object's real creation time, as a CronJob's would be).
pub fn hour_after(ahead: TimeDelta) -> DateTime<Utc> {
    let at = Utc::now() + ahead + TimeDelta::hours(1);
    at.with_minute(0)
        .and_then(|at| at.with_second(0))
        .and_then(|at| at.with_nanosecond(0))
        .unwrap()
}

pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn run_args(namespace: &str, kubeconfig: &std::path::Path) -> RunArgs {
    RunArgs {
        kubeconfig: Some(kubeconfig.to_owned()),
        namespace: Some(namespace.to_owned()),
        admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        log_format: LogFormat::Text,
        log_filter: "info,vertice_backup=debug".to_owned(),
        leader_election: false,
        leader_election_namespace: Some(namespace.to_owned()),
        identity: Some("schedules-test".to_owned()),
        concurrency: 4,
        lease_name: Some("schedules-test".to_owned()),
        lease_duration_seconds: 4,
        lease_renew_deadline_seconds: 3,
        lease_retry_period_seconds: 1,
    }
}

/// One running operator (the VerticeBackup controller only: the runs are simulated by the
/// tests, which write the BackupRequests' status as the runs controller would).
pub struct Running {
    stop: CancellationToken,
    task: JoinHandle<Result<(), OperatorError>>,
    pub admin: SocketAddr,
    pub trigger: Trigger<VerticeBackup>,
    /// Fails the test, once dropped, if the apiserver refused the operator anything.
    refusal_check: chart_rbac::RefusalCheck,
}

impl Running {
    async fn start(
        namespace: &str,
        clock: &ManualClock,
        args: &OperatorArgs,
    ) -> anyhow::Result<Self> {
        let control_plane = ControlPlane::shared().await?;
        // The chart's ServiceAccount with only the chart's RBAC (issue 9).
        let rbac = chart_rbac::namespaced_operator(namespace).await;
        let refusal_check = chart_rbac::RefusalCheck::new(rbac.user());
        let kubeconfig = control_plane.kubeconfig_as(namespace, &rbac.service_account)?;
        let mut args = args.clone();
        args.run = run_args(namespace, &kubeconfig);
        let (trigger, wake) = trigger::channel::<VerticeBackup>();
        let stop = CancellationToken::new();
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let operator = Operator::new("backup", args.run.clone())
            .clock(Arc::new(clock.clone()))
            .handle_signals(false)
            .shutdown_on(stop.clone())
            .on_admin_bound(bound_tx)
            .controller(controller(&args, RunSizes::default()).reconcile_on(wake));
        let task = tokio::spawn(operator.run());
        let admin = bound_rx
            .await
            .context("the operator stopped before its admin server bound")?;
        Ok(Self {
            stop,
            task,
            admin,
            trigger,
            refusal_check,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .context("the operator did not stop within 30 s")???;
        Ok(())
    }
}

/// A namespace, a client and an operator on a manual clock.
pub struct Harness {
    pub client: Client,
    pub ns: TestNamespace,
    pub clock: ManualClock,
    pub args: OperatorArgs,
    pub operator: Option<Running>,
    pub backups: Api<VerticeBackup>,
    pub runs: Api<BackupRequest>,
    pub drills: Api<RestoreRequest>,
}

impl Harness {
    pub async fn start(prefix: &str, start: DateTime<Utc>) -> anyhow::Result<Self> {
        let control_plane = ControlPlane::shared().await?;
        let client = control_plane.admin_client().await?;
        install_crds(&client, &vertice_backup::crds()).await?;
        let ns = TestNamespace::create(&client, prefix).await?;
        let clock = ManualClock::new(start);
        let args = OperatorArgs::new(run_args(ns.name(), control_plane.admin_kubeconfig()));
        let operator = Some(Running::start(ns.name(), &clock, &args).await?);
        Ok(Self {
            backups: Api::namespaced(client.clone(), ns.name()),
            runs: Api::namespaced(client.clone(), ns.name()),
            drills: Api::namespaced(client.clone(), ns.name()),
            client,
            ns,
            clock,
            args,
            operator,
        })
    }

    pub fn namespace(&self) -> &str {
        self.ns.name()
    }

    /// Stops the operator and starts a new one (a restart: all in-memory state is gone).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop_operator().await?;
        self.start_operator().await
    }

    pub async fn stop_operator(&mut self) -> anyhow::Result<()> {
        if let Some(operator) = self.operator.take() {
            operator.stop().await?;
        }
        Ok(())
    }

    pub async fn start_operator(&mut self) -> anyhow::Result<()> {
        self.operator = Some(Running::start(self.ns.name(), &self.clock, &self.args).await?);
        Ok(())
    }

    /// Sets the clock and reconciles every VerticeBackup.
    pub fn set_clock(&self, at: DateTime<Utc>) {
        self.clock.set(at);
        self.poke();
    }

    pub fn poke(&self) {
        if let Some(operator) = &self.operator {
            operator.trigger.reconcile_all();
        }
    }

    pub async fn metrics(&self) -> anyhow::Result<String> {
        let admin = self.operator.as_ref().context("no operator")?.admin;
        Ok(reqwest::get(format!("http://{admin}/metrics"))
            .await?
            .text()
            .await?)
    }

    pub async fn create_secret(&self, name: &str, data: &[(&str, &str)]) -> anyhow::Result<()> {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            string_data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(self.client.clone(), self.namespace())
            .create(&PostParams::default(), &secret)
            .await?;
        Ok(())
    }

    /// Creates a VerticeBackup from a spec in JSON; returns it as stored (with its UID).
    pub async fn create_backup(&self, name: &str, spec: Value) -> anyhow::Result<VerticeBackup> {
        let backup: VerticeBackup = serde_json::from_value(json!({
            "apiVersion": "backup.vertice.dev/v1alpha1",
            "kind": "VerticeBackup",
            "metadata": {"name": name},
            "spec": spec,
        }))?;
        Ok(self.backups.create(&PostParams::default(), &backup).await?)
    }

    pub async fn patch_backup(&self, name: &str, patch: Value) -> anyhow::Result<()> {
        self.backups
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// The BackupRequests of `backup` (by the policy label), sorted by name.
    pub async fn runs_of(&self, backup: &str) -> anyhow::Result<Vec<BackupRequest>> {
        let mut runs = self
            .runs
            .list(&ListParams::default().labels(&format!("{POLICY_LABEL}={backup}")))
            .await?
            .items;
        runs.sort_by_key(ResourceExt::name_any);
        Ok(runs)
    }

    /// Names of the runs of `backup` not being deleted.
    pub async fn live_run_names(&self, backup: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .runs_of(backup)
            .await?
            .into_iter()
            .filter(|run| run.metadata.deletion_timestamp.is_none())
            .map(|run| run.name_any())
            .collect())
    }

    /// Waits until `backup`'s status satisfies `check`.
    pub async fn wait_status(
        &self,
        backup: &str,
        what: &str,
        check: impl Fn(&VerticeBackup) -> bool,
    ) -> anyhow::Result<VerticeBackup> {
        eventually(&format!("{backup}: {what}"), || async {
            let current = self.backups.get(backup).await.ok()?;
            check(&current).then_some(current)
        })
        .await
    }

    /// Writes a run's status as the runs controller would.
    pub async fn set_run_status(&self, run: &str, status: Value) -> anyhow::Result<()> {
        self.runs
            .patch_status(
                run,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await?;
        Ok(())
    }

    /// Creates a run of `backup` by hand with the labels and owner a schedule gives, and a
    /// finished status.
    pub async fn finished_run(
        &self,
        backup: &VerticeBackup,
        name: &str,
        phase: &str,
        completed: DateTime<Utc>,
        backup_name: Option<&str>,
    ) -> anyhow::Result<()> {
        let result = backup_name.map_or(Value::Null, |backup_name| {
            json!({"backupName": backup_name, "location": format!("s3://b/{backup_name}")})
        });
        self.finished_run_with(backup, name, phase, completed, result)
            .await
    }

    /// [`Harness::finished_run`] with the whole `result` given (`Null` for none).
    pub async fn finished_run_with(
        &self,
        backup: &VerticeBackup,
        name: &str,
        phase: &str,
        completed: DateTime<Utc>,
        result: Value,
    ) -> anyhow::Result<()> {
        let run: BackupRequest = serde_json::from_value(json!({
            "apiVersion": "backup.vertice.dev/v1alpha1",
            "kind": "BackupRequest",
            "metadata": {
                "name": name,
                "labels": {POLICY_LABEL: backup.name_any(), MANAGED_BY_LABEL: MANAGED_BY},
                "ownerReferences": [backup.controller_owner_ref(&()).unwrap()],
            },
            "spec": {"backupRef": {"name": backup.name_any()}},
        }))?;
        self.runs.create(&PostParams::default(), &run).await?;
        let mut status = json!({"phase": phase, "completionTime": rfc3339(completed)});
        if !result.is_null() {
            status["result"] = result;
        }
        self.set_run_status(name, status).await
    }

    /// The Events about `backup`, as `reason: note` lines.
    pub async fn events_of(&self, backup: &str) -> anyhow::Result<Vec<String>> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), self.namespace());
        Ok(events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|event| {
                event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(backup)
            })
            .map(|event| {
                format!(
                    "{}: {}",
                    event.reason.unwrap_or_default(),
                    event.note.unwrap_or_default()
                )
            })
            .collect())
    }

    pub async fn wait_event(&self, backup: &str, reason: &str) -> anyhow::Result<String> {
        eventually(&format!("an Event {reason} about {backup}"), || async {
            self.events_of(backup)
                .await
                .ok()?
                .into_iter()
                .find(|line| line.starts_with(&format!("{reason}:")))
        })
        .await
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_operator().await
    }
}

/// A condition of a VerticeBackup as (status, reason, message).
pub fn condition(backup: &VerticeBackup, type_: &str) -> Option<(String, String, String)> {
    backup
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|condition| condition.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// A VerticeBackup spec (JSON) for the S3 store `endpoint`/`bucket`/`prefix` with the
/// credentials Secret `store-credentials`, unencrypted, against a PostgreSQL target that the
/// tests never connect to (no run executes).
pub fn spec(schedule: &str, endpoint: &str, bucket: &str, prefix: &str) -> Value {
    json!({
        "target": {
            "engine": "postgres",
            "host": "127.0.0.1",
            "user": "backup",
            "passwordSecretRef": {"name": "db", "key": "password"},
            "database": "shop",
        },
        "schedule": schedule,
        "storage": {
            "store": "s3",
            "endpoint": endpoint,
            "bucket": bucket,
            "prefix": prefix,
            "credentialsSecretRef": {"name": "store-credentials"},
        },
        "encryption": {"disabled": true},
    })
}

/// A real S3 server with one bucket, and the Secret with its keys in the harness namespace.
pub async fn s3_with_secret(harness: &Harness, bucket: &str) -> anyhow::Result<S3Server> {
    let server = S3Server::start().await?;
    server.create_bucket(bucket)?;
    harness
        .create_secret(
            "store-credentials",
            &[
                ("AWS_ACCESS_KEY_ID", server.access_key()),
                ("AWS_SECRET_ACCESS_KEY", server.secret_key()),
            ],
        )
        .await?;
    Ok(server)
}

/// The store as the engine's CLI would open it (credentials from a file).
pub fn engine_store(
    server: &S3Server,
    bucket: &str,
    prefix: &str,
    dir: &std::path::Path,
) -> BackupStore {
    let credentials = dir.join("s3-credentials");
    std::fs::write(
        &credentials,
        format!("{}\n{}\n", server.access_key(), server.secret_key()),
    )
    .unwrap();
    BackupStore::open(&StoreConfig {
        store: StoreKind::S3,
        bucket: Some(bucket.to_owned()),
        endpoint: Some(server.endpoint()),
        region: Some(server.region().to_owned()),
        credentials_file: Some(credentials),
        prefix: prefix.to_owned(),
        ..StoreConfig::default()
    })
    .unwrap()
}

/// Makes a real backup named `name` of a small stream, labelled as made for `policy`.
pub async fn make_backup(
    store: &BackupStore,
    name: &str,
    policy: &VerticeBackup,
) -> anyhow::Result<()> {
    let mut options = BackupOptions::new(name, None);
    options.labels = BTreeMap::from([
        (POLICY_LABEL.to_owned(), policy.name_any()),
        (
            POLICY_UID_LABEL.to_owned(),
            policy.uid().unwrap_or_default(),
        ),
    ]);
    let data: Vec<u8> = (0..64 * 1024)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    run_backup(
        store,
        &options,
        DumpInput::plain(std::io::Cursor::new(data)),
        Progress::new(),
        CancellationToken::new(),
    )
    .await?;
    Ok(())
}
