//! The backup operator's controllers: `VerticeBackup` (schedules, retention, verification),
//! `BackupRequest` (one run, executed as a Job or in process) and `RestoreRequest`.
//!
//! [`run`] is what `vertice-backup run` calls; tests call [`operator`] to get the same
//! [`Operator`] with their own client, clock and shutdown token.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::runtime::watcher;
use vertice_core::tasks::ObjectTasks;
use vertice_core::{ControllerBuilder, Operator, OperatorError, PrimaryStoreExt, trigger};

pub mod backup_request;
pub mod breaker;
pub mod engine_config;
pub mod finished;
pub mod history;
pub mod history_archive;
pub mod history_metrics;
pub mod in_process;
pub mod job;
pub mod job_result;
pub mod labels;
pub mod metrics;
pub mod mounts;
pub mod object_metrics;
mod options;
mod outcome;
pub mod policy_error;
pub mod policy_metrics;
pub mod policy_status;
pub mod project;
pub mod queue;
pub mod resolve;
pub mod restore_request;
pub mod restore_resolve;
pub mod retention;
pub mod retention_step;
pub mod run_status;
pub mod scheduling;
pub mod secret_files;
pub mod side_effects;
pub mod size_gauge;
pub mod snapshot_config;
pub mod snapshot_metrics;
pub mod store_access;
pub mod verification;
pub mod vertice_backup;

pub use options::{DEFAULT_MAX_DELETE_PERCENT, DEFAULT_RETENTION_INTERVAL, OperatorArgs};

use crate::api::{BackupRequest, RestoreRequest};
use crate::notify::{Notifier, NotifierConfig};

/// The safety-net requeue of finished runs: none in practice. A finished BackupRequest is
/// reconciled again only when it changes (deletion), never on a timer; running and waiting
/// ones ask for their own wake-ups.
const NO_PERIODIC_REQUEUE: Duration = Duration::from_secs(365 * 24 * 3600);

/// Builds the backup operator with every controller registered. Does not start it.
pub fn operator(args: &OperatorArgs) -> Operator {
    let mut operator = Operator::new("backup", args.run.clone());
    let metrics = metrics::RunMetrics::register(operator.registry());
    operator = operator.controller(vertice_backup::controller(args, metrics.sizes.clone()));
    let archive = args.history_database_url.clone().map_or_else(
        history_archive::HistoryArchive::disabled,
        history_archive::HistoryArchive::new,
    );
    history_metrics::HistoryLag::register(operator.registry(), archive.clone());
    // The notify library's only failure is a bad extra certificate, and none is configured.
    let notifier = Notifier::new(NotifierConfig::default()).ok();
    let (wake, woken) = trigger::channel::<BackupRequest>();
    let config = backup_request::RunConfig {
        runner_image: args.runner_image.clone(),
        backoff_limit: args.run_backoff_limit,
    };
    let restore_config = config.clone();
    let restore_metrics = metrics.clone();
    let limit = usize::from(args.max_concurrent_runs_per_project);
    let probe_interval = Duration::from_secs(args.storage_probe_interval_seconds);
    let Some(notifier) = notifier else {
        // Not reachable with the default config (no extra certificates); said on stderr
        // because logging starts only in `Operator::run`.
        eprintln!(
            "error: the notification client cannot be built; BackupRequests are not reconciled"
        );
        return operator;
    };
    let sizes = metrics.sizes.clone();
    let runs_archive = archive.clone();
    let runs = ControllerBuilder::new_with_store(|store| {
        backup_request::BackupRequests::new(
            config,
            queue::RunQueue::new(limit, store.clone(), wake.clone()),
            breaker::Breakers::new(probe_interval),
            in_process::InProcess::new(ObjectTasks::new(wake, store)),
            metrics,
            notifier,
        )
        .with_history(archive.clone())
    })
    .reconcile_on(woken)
    .latest_only()
    .requeue_after(NO_PERIODIC_REQUEUE)
    .owns_with::<Job>(watcher::Config::default().labels(&labels::managed_selector()))
    .watch_labels(&finished::unfinished())
    .on_start(|ctx, namespace| async move {
        let visited =
            finished::for_each_finished::<BackupRequest>(&ctx, namespace.as_deref(), |run| {
                sizes.observe(run);
                if let Some(status) = &run.status {
                    runs_archive.backup_finished(run, status, &ctx);
                }
            })
            .await;
        tracing::info!(runs = visited, "finished BackupRequests read at start");
    });
    let restores_archive = archive.clone();
    let restores = ControllerBuilder::new(
        restore_request::RestoreRequests::new(restore_config, restore_metrics)
            .with_history(archive),
    )
    .latest_only()
    .requeue_after(NO_PERIODIC_REQUEUE)
    .owns_with::<Job>(watcher::Config::default().labels(&labels::managed_selector()))
    .watches_selected_with_store::<BackupRequest, _>(
        watcher::Config::default().labels(&finished::unfinished()),
        |run, store| store.refs_where(|restore| restore_request::restores_from(restore, &run)),
    )
    .watch_labels(&finished::unfinished())
    .on_start(|ctx, namespace| async move {
        if !restores_archive.is_enabled() {
            return;
        }
        let visited =
            finished::for_each_finished::<RestoreRequest>(&ctx, namespace.as_deref(), |restore| {
                if let Some(status) = &restore.status {
                    restores_archive.restore_finished(restore, status, &ctx);
                }
            })
            .await;
        tracing::info!(runs = visited, "finished RestoreRequests read at start");
    });
    operator.controller(runs).controller(restores)
}

/// Runs the backup operator until SIGTERM/SIGINT or lost leadership.
pub async fn run(args: OperatorArgs) -> Result<(), OperatorError> {
    operator(&args).run().await
}
