//! The entry point an operator's `main.rs` calls: logging, client, admin server, signals, leader
//! election and the controllers, in the right order.
//!
//! Order of a run:
//! 1. logging, the Kubernetes client and the signal handlers;
//! 2. the admin server, so probes answer while this replica waits as a standby;
//! 3. leader election (unless disabled): block until the Lease is ours;
//! 4. all controllers, until SIGTERM/SIGINT or until the Lease is lost;
//! 5. drain in-flight reconciles, wait for the background tasks (cancelled through
//!    [`Context::stop_token`](crate::Context::stop_token)), release the Lease, stop the admin
//!    server.
//!
//! Losing the Lease makes [`Operator::run`] return [`OperatorError::LeadershipLost`]; `main`
//! returns the error, the process exits non-zero and Kubernetes restarts the pod as a standby.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use kube::Client;
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use tokio_util::task::TaskTracker;

pub use crate::error::OperatorError;
use crate::{
    admin::{self, AdminState, Readiness},
    cli::RunArgs,
    clock::{SharedClock, SystemClock},
    leader::{self, LeaderElector, LeaseConfig},
    metrics::{self, CacheGauges, ReconcileMetrics, ResourceGauges},
    process_metrics::ProcessMetrics,
    runner::{ControllerBuilder, Reconciler, RunController},
    runtime::Runtime,
    shutdown,
    status::ManagedResource,
    telemetry,
};

/// How long a stopping operator waits for background tasks (after cancelling them) before it
/// releases the Lease anyway: within Kubernetes' default 30 s termination grace period.
const TASK_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// One operator process: its controllers, metrics and runtime settings. See the
/// [crate docs](crate) for an example.
pub struct Operator {
    name: String,
    args: RunArgs,
    client: Option<Client>,
    registry: Registry,
    metrics: ReconcileMetrics,
    resources: ResourceGauges,
    cache_gauges: CacheGauges,
    clock: SharedClock,
    controllers: Vec<Box<dyn RunController>>,
    shutdown: CancellationToken,
    handle_signals: bool,
    admin_bound: Option<oneshot::Sender<SocketAddr>>,
}

impl Operator {
    /// An operator called `name` (`backup`, `scaler`, `failover`, `db-provision`) configured by
    /// the shared `run` flags.
    pub fn new(name: &str, args: RunArgs) -> Self {
        crate::tls::install_crypto_provider();
        let mut registry = Registry::default();
        let metrics = ReconcileMetrics::register(&mut registry);
        let resources = ResourceGauges::register(&mut registry);
        ProcessMetrics::register(&mut registry);
        let cache_gauges = CacheGauges::register(
            registry.sub_registry_with_prefix(metrics::operator_prefix(name)),
        );
        Self {
            name: name.to_owned(),
            args,
            client: None,
            registry,
            metrics,
            resources,
            cache_gauges,
            clock: Arc::new(SystemClock),
            controllers: Vec::new(),
            shutdown: CancellationToken::new(),
            handle_signals: true,
            admin_bound: None,
        }
    }

    /// Uses `client` instead of building one from the flags.
    #[must_use]
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Uses `clock` for the time of day (conditions' `lastTransitionTime`,
    /// [`Context::now`](crate::Context::now)) instead of the system clock. Tests pass a
    /// [`ManualClock`](crate::clock::ManualClock).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The registry for the operator's own metrics; everything registered here gets the prefix
    /// `vertice_<operator>_` (dashes become underscores), next to the shared reconcile metrics.
    pub fn registry(&mut self) -> &mut Registry {
        self.registry
            .sub_registry_with_prefix(metrics::operator_prefix(&self.name))
    }

    /// Adds a controller.
    #[must_use]
    pub fn controller<K: ManagedResource, R: Reconciler<K>>(
        mut self,
        controller: ControllerBuilder<K, R>,
    ) -> Self {
        self.controllers.push(Box::new(controller));
        self
    }

    /// Stops gracefully when `token` is cancelled (as on SIGTERM). For tests and embedding.
    #[must_use]
    pub fn shutdown_on(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// Whether to install SIGTERM/SIGINT handlers (default true). Tests that run several
    /// operators in one process turn this off and use [`shutdown_on`](Self::shutdown_on).
    #[must_use]
    pub fn handle_signals(mut self, handle: bool) -> Self {
        self.handle_signals = handle;
        self
    }

    /// Sends the address the admin server actually bound (useful with port 0).
    #[must_use]
    pub fn on_admin_bound(mut self, sender: oneshot::Sender<SocketAddr>) -> Self {
        self.admin_bound = Some(sender);
        self
    }

    /// The server-side-apply field manager of this operator: `vertice-<name>`.
    pub fn field_manager(&self) -> String {
        format!("vertice-{}", self.name)
    }

    /// Runs until SIGTERM/SIGINT (or the [`shutdown_on`](Self::shutdown_on) token), or until
    /// leadership is lost or a controller cannot start.
    pub async fn run(self) -> Result<(), OperatorError> {
        telemetry::init(self.args.log_format, &self.args.log_filter)?;
        let field_manager = self.field_manager();
        let Self {
            name,
            args,
            client,
            registry,
            metrics,
            resources,
            cache_gauges,
            clock,
            controllers,
            shutdown,
            handle_signals,
            admin_bound,
        } = self;
        let client = match client {
            Some(client) => client,
            None => args.client().await?,
        };
        if handle_signals {
            shutdown::cancel_on_signal(shutdown.clone()).map_err(OperatorError::Signals)?;
        }
        let identity = args
            .identity
            .clone()
            .unwrap_or_else(|| leader::default_identity(&name));

        let readiness = Arc::new(Readiness::default());
        let admin_stop = CancellationToken::new();
        let state = AdminState {
            registry: Arc::new(registry),
            readiness: readiness.clone(),
        };
        let (bound, serve) = admin::bind(args.admin_addr, state, admin_stop.clone())
            .await
            .map_err(OperatorError::Admin)?;
        if let Some(sender) = admin_bound {
            let _receiver_gone = sender.send(bound);
        }
        let admin_task = tokio::spawn(serve);

        let runtime = Runtime {
            namespace: args.namespace.clone(),
            field_manager,
            identity: identity.clone(),
            concurrency: args.concurrency.max(1),
            metrics,
            resources,
            cache_gauges,
            readiness,
            stop: shutdown.child_token(),
            tasks: TaskTracker::new(),
            clock,
            client: client.clone(),
        };
        let result = run_elected(
            &name,
            &args,
            client,
            identity,
            controllers,
            runtime,
            &shutdown,
        )
        .await;

        // The admin server stops last, so probes answer while reconciles drain.
        admin_stop.cancel();
        if let Err(error) = admin_task.await {
            tracing::warn!(%error, "admin server task failed");
        }
        match &result {
            Ok(()) => tracing::info!(operator = %name, "stopped"),
            Err(error) => {
                tracing::error!(operator = %name, error = error as &dyn std::error::Error, "stopped with an error")
            }
        }
        result
    }
}

async fn run_elected(
    name: &str,
    args: &RunArgs,
    client: Client,
    identity: String,
    controllers: Vec<Box<dyn RunController>>,
    runtime: Runtime,
    shutdown: &CancellationToken,
) -> Result<(), OperatorError> {
    let leadership = if args.leader_election {
        let namespace = args
            .leader_election_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let config = LeaseConfig {
            namespace,
            name: args
                .lease_name
                .clone()
                .unwrap_or_else(|| format!("vertice-{name}-leader")),
            identity,
            lease_duration: Duration::from_secs(args.lease_duration_seconds),
            renew_deadline: Duration::from_secs(args.lease_renew_deadline_seconds),
            retry_period: Duration::from_secs(args.lease_retry_period_seconds),
        };
        let elector = LeaderElector::new(client, config)?;
        match elector.acquire(shutdown).await {
            Some(leadership) => Some(leadership),
            // Asked to stop while still a standby: nothing to drain, nothing to release.
            None => return Ok(()),
        }
    } else {
        None
    };

    let stop = runtime.stop.clone();
    if let Some(leadership) = &leadership {
        let lost = leadership.lost_token();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = lost.cancelled() => stop.cancel(),
                () = stop.cancelled() => {}
            }
        });
    }

    let runs = controllers.into_iter().map(|controller| {
        let runtime = runtime.clone();
        let stop = stop.clone();
        async move {
            let result = controller.run(runtime).await;
            // One controller ending (an error at start, or the stop signal) ends them all: a
            // half-running operator is harder to notice than a restarting one.
            stop.cancel();
            result
        }
    });
    let results = futures::future::join_all(runs).await;
    stop.cancel();
    let first_error = results.into_iter().find_map(Result::err);
    drain_tasks(&runtime.tasks).await;

    if let Some(leadership) = leadership {
        if leadership.is_lost() {
            return Err(OperatorError::LeadershipLost);
        }
        leadership.release().await;
    }
    first_error.map_or(Ok(()), Err)
}

/// Waits for the background tasks (cancelled through the stop token) to end, so that another
/// replica taking the Lease never overlaps with them; gives up after [`TASK_DRAIN_TIMEOUT`].
async fn drain_tasks(tasks: &TaskTracker) {
    tasks.close();
    if tasks.is_empty() {
        return;
    }
    tracing::info!(tasks = tasks.len(), "waiting for background tasks to stop");
    if tokio::time::timeout(TASK_DRAIN_TIMEOUT, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            tasks = tasks.len(),
            "background tasks did not stop within {TASK_DRAIN_TIMEOUT:?}; releasing anyway"
        );
    }
}
