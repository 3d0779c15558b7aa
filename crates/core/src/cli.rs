//! The command-line shape shared by every operator binary: `crd` prints the CRDs, `run` starts
//! the operator. Every flag has an environment fallback so a Helm chart can set it.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Flags of the `run` subcommand, the same for every operator.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// Path of a kubeconfig file; without it the in-cluster configuration (or $KUBECONFIG) is used.
    #[arg(long, env = "KUBECONFIG_PATH")]
    pub kubeconfig: Option<std::path::PathBuf>,

    /// Watch only this namespace; all namespaces when unset.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,

    /// Address of the admin server (/metrics, /healthz, /readyz).
    #[arg(long, env = "ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter in `RUST_LOG` syntax.
    #[arg(long, env = "LOG_FILTER", default_value = "info")]
    pub log_filter: String,

    /// Elect a leader through a coordination.k8s.io/v1 Lease so that only one replica acts.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Namespace of the leader-election Lease (defaults to the pod's namespace, then `default`).
    #[arg(long, env = "LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// Identity of this replica in the Lease (defaults to the pod name, then the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// How many objects are reconciled at once, per controller.
    #[arg(long, env = "CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,

    /// Name of the leader-election Lease (defaults to `vertice-<operator>-leader`).
    #[arg(long, env = "LEADER_ELECTION_LEASE_NAME")]
    pub lease_name: Option<String>,

    /// Seconds a standby waits, after the leader's last renewal it saw, before taking over.
    #[arg(long, env = "LEADER_ELECTION_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration_seconds: u64,

    /// Seconds the leader keeps trying to renew before it gives up and stops acting; must be
    /// shorter than the lease duration so it stops before a standby may take over.
    #[arg(long, env = "LEADER_ELECTION_RENEW_DEADLINE", default_value_t = 10)]
    pub lease_renew_deadline_seconds: u64,

    /// Seconds between two attempts to acquire or renew the Lease.
    #[arg(long, env = "LEADER_ELECTION_RETRY_PERIOD", default_value_t = 2)]
    pub lease_retry_period_seconds: u64,
}

impl RunArgs {
    /// A Kubernetes client from `--kubeconfig`, else from `$KUBECONFIG`/`~/.kube/config`, else
    /// from the in-cluster service account.
    pub async fn client(&self) -> Result<kube::Client, ClientError> {
        let config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
            }
            None => kube::Config::infer().await?,
        };
        Ok(kube::Client::try_from(config)?)
    }
}

/// Why no Kubernetes client could be built from the flags.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The `--kubeconfig` file could not be read or used.
    #[error("reading the kubeconfig failed: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// Neither a kubeconfig nor an in-cluster configuration was found.
    #[error("no Kubernetes configuration found: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    /// The configuration was found but the client could not be built from it.
    #[error("building the Kubernetes client failed: {0}")]
    Client(#[from] kube::Error),
}
