//! What one operator process hands to each of its controllers when they start.
//!
//! Built by [`Operator::run`](crate::Operator::run) once the client and the admin server are up,
//! cloned into every controller. It lives apart from `operator.rs` so the controller code
//! (`runner/`) depends on it without depending on the process around it.

use std::sync::Arc;

use kube::Client;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    admin::Readiness,
    clock::SharedClock,
    metrics::{CacheGauges, ReconcileMetrics, ResourceGauges},
};

/// Everything the controllers of one process share.
#[derive(Clone)]
pub(crate) struct Runtime {
    pub(crate) client: Client,
    /// Watch only this namespace (`None`: all namespaces).
    pub(crate) namespace: Option<String>,
    pub(crate) field_manager: String,
    /// This replica's name (its pod name), as in the Lease and in Events.
    pub(crate) identity: String,
    pub(crate) concurrency: u16,
    pub(crate) metrics: ReconcileMetrics,
    pub(crate) resources: ResourceGauges,
    pub(crate) cache_gauges: CacheGauges,
    pub(crate) readiness: Arc<Readiness>,
    /// Cancelled on SIGTERM, on lost leadership and when any controller ends.
    pub(crate) stop: CancellationToken,
    /// Background tasks started for objects ([`ObjectTasks`](crate::tasks::ObjectTasks)); the
    /// operator waits for them after `stop` before it releases the Lease.
    pub(crate) tasks: TaskTracker,
    pub(crate) clock: SharedClock,
}
