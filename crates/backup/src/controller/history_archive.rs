//! Records finished runs in the history database (issue 8 §4) without ever holding up a run.
//!
//! The BackupRequest and RestoreRequest controllers offer every finished run: right after they
//! write its final status (status writes trigger no reconcile), whenever they reconcile a
//! finished run, and once more in their start-up pass over the finished runs they no longer
//! watch (`finished.rs`). Offering is a map insert: it never waits for the database.
//! One writer task per operator drains the map oldest first with idempotent upserts keyed by
//! the run's UID; on any failure it drops the connection and retries with exponential backoff
//! and jitter, keeping the runs queued. So:
//! - history being down never fails or delays a run; `vertice_backup_history_lag_seconds`
//!   (`history_metrics.rs`) shows how far behind the archive is;
//! - runs that finished while history was down are written once it is back, and those that
//!   finished while the operator itself was down are offered again by the restarted
//!   controllers' start-up pass (the upsert makes offering twice harmless);
//! - the queue is bounded ([`QUEUE_CAPACITY`] runs): past it, new runs are not queued (a
//!   warning says so) and get recorded by the next start-up pass (the next restart).
//!
//! Why calls in the controllers rather than a watch of its own: the controllers already see
//! every run finish and read the finished ones on start, and a second controller on the same
//! kind would compete for its status. Each controller makes one call per place
//! ([`backup_finished`](HistoryArchive::backup_finished),
//! [`restore_finished`](HistoryArchive::restore_finished)).
//!
//! The URL never appears in logs: errors are [`HistoryError`]s, whose messages exclude it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;
use vertice_core::backoff::BackoffPolicy;

use vertice_core::Context;

use crate::api::{BackupRequest, BackupRequestStatus, RestoreRequest, RestoreRequestStatus};
use crate::history::record::{RunRecord, backup_run, restore_run};
use crate::history::{self, HistoryError, HistoryUrl};

/// At most this many finished runs wait to be written.
pub const QUEUE_CAPACITY: usize = 10_000;

/// Remembered written runs (to skip re-offers of unchanged ones); past this the memory is
/// cleared, which only costs rewriting a few rows.
const WRITTEN_MEMORY: usize = 20_000;

/// The retry schedule of the writer: 1 s doubling to 30 s, ±50% so replicas and restarts do
/// not retry in lockstep.
pub const RETRY: BackoffPolicy = BackoffPolicy {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(30),
    factor: 2.0,
    jitter: 0.5,
};

/// A run waiting to be written.
#[derive(Clone, Debug)]
struct Pending {
    record: RunRecord,
    /// Its completion time (the lag is measured from it), else when it was offered.
    finished_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Queue {
    pending: HashMap<String, Pending>,
    written: HashMap<String, RunRecord>,
    warned_full: bool,
}

#[derive(Debug)]
struct Inner {
    url: HistoryUrl,
    queue: Mutex<Queue>,
    wake: Notify,
    writer_started: AtomicBool,
}

/// The history archive of one operator, shared by its controllers; [`disabled`] without
/// `--history-database-url`. Cloning shares it.
///
/// [`disabled`]: HistoryArchive::disabled
#[derive(Clone, Debug, Default)]
pub struct HistoryArchive {
    inner: Option<Arc<Inner>>,
}

impl HistoryArchive {
    /// An archive that records nothing (history not configured).
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Whether runs are recorded (`--history-database-url` was given).
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// An archive writing to `url` (the writer starts with the first offer).
    pub fn new(url: HistoryUrl) -> Self {
        Self {
            inner: Some(Arc::new(Inner {
                url,
                queue: Mutex::new(Queue::default()),
                wake: Notify::new(),
                writer_started: AtomicBool::new(false),
            })),
        }
    }

    /// Queues `record` (a finished run's row; `None` does nothing) unless the same row was
    /// already written, and starts the writer on first use; it stops with `stop` (the
    /// operator's stop token). Never waits for the database.
    pub fn offer(&self, record: Option<RunRecord>, now: DateTime<Utc>, stop: &CancellationToken) {
        let (Some(inner), Some(record)) = (&self.inner, record) else {
            return;
        };
        let uid = record.common().uid.clone();
        {
            let mut queue = inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.written.get(&uid) == Some(&record)
                || queue.pending.get(&uid).is_some_and(|p| p.record == record)
            {
                return;
            }
            if queue.pending.len() >= QUEUE_CAPACITY && !queue.pending.contains_key(&uid) {
                if !queue.warned_full {
                    queue.warned_full = true;
                    tracing::warn!(
                        capacity = QUEUE_CAPACITY,
                        "the history queue is full; further runs are recorded by the start-up pass of the next restart"
                    );
                }
                return;
            }
            let finished_at = record.common().completed_at.unwrap_or(now);
            queue.pending.insert(
                uid,
                Pending {
                    record,
                    finished_at,
                },
            );
        }
        if !inner.writer_started.swap(true, Ordering::SeqCst) {
            tokio::spawn(writer(inner.clone(), stop.clone()));
        }
        inner.wake.notify_one();
    }

    /// Offers `request` as it is with `status` (its final status, written or about to be).
    pub fn backup_finished(
        &self,
        request: &BackupRequest,
        status: &BackupRequestStatus,
        ctx: &Context,
    ) {
        if self.inner.is_none() {
            return;
        }
        let mut finished = request.clone();
        finished.status = Some(status.clone());
        let record = backup_run(&finished).map(RunRecord::Backup);
        self.offer(record, ctx.now(), &ctx.stop_token());
    }

    /// Offers `restore` as it is with `status` (its final status, written or about to be).
    pub fn restore_finished(
        &self,
        restore: &RestoreRequest,
        status: &RestoreRequestStatus,
        ctx: &Context,
    ) {
        if self.inner.is_none() {
            return;
        }
        let mut finished = restore.clone();
        finished.status = Some(status.clone());
        let record = restore_run(&finished).map(RunRecord::Restore);
        self.offer(record, ctx.now(), &ctx.stop_token());
    }

    /// Seconds between `now` and the completion of the oldest run not yet written; 0 when
    /// every offered run is written (or history is off).
    pub fn lag_seconds(&self, now: DateTime<Utc>) -> f64 {
        let Some(inner) = &self.inner else {
            return 0.0;
        };
        let queue = inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue
            .pending
            .values()
            .map(|pending| pending.finished_at)
            .min()
            .map_or(0.0, |oldest| {
                #[allow(clippy::cast_precision_loss)] // milliseconds of lag
                let millis = (now - oldest).num_milliseconds().max(0) as f64;
                millis / 1000.0
            })
    }

    /// Runs waiting to be written.
    pub fn pending(&self) -> usize {
        self.inner.as_ref().map_or(0, |inner| {
            inner
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pending
                .len()
        })
    }
}

/// The writer: drains the queue until `stop`, retrying failures with backoff.
async fn writer(inner: Arc<Inner>, stop: CancellationToken) {
    let mut connection: Option<Client> = None;
    let mut migrated = false;
    let mut failures: u32 = 0;
    loop {
        let wake = inner.wake.notified();
        let batch = oldest_first(&inner);
        if batch.is_empty() {
            tokio::select! {
                () = wake => continue,
                () = stop.cancelled() => return,
            }
        }
        match write_batch(&inner, &mut connection, &mut migrated, batch).await {
            Ok(()) => failures = 0,
            Err(error) => {
                connection = None;
                failures = failures.saturating_add(1);
                let delay = RETRY.delay(failures, rand::random::<f64>());
                tracing::warn!(
                    attempt = failures,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "recording finished runs in the history database failed: {error}"
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.cancelled() => return,
                }
            }
        }
    }
}

/// The queued runs, oldest completion first.
fn oldest_first(inner: &Inner) -> Vec<RunRecord> {
    let queue = inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
    let mut pending: Vec<&Pending> = queue.pending.values().collect();
    pending.sort_by_key(|p| (p.finished_at, p.record.common().uid.clone()));
    pending.into_iter().map(|p| p.record.clone()).collect()
}

/// Connects and migrates if needed, then writes `batch` in order; each written run leaves the
/// queue (unless it was re-offered with other content meanwhile).
async fn write_batch(
    inner: &Inner,
    connection: &mut Option<Client>,
    migrated: &mut bool,
    batch: Vec<RunRecord>,
) -> Result<(), HistoryError> {
    if connection.as_ref().is_none_or(Client::is_closed) {
        *connection = Some(history::connect(&inner.url).await?);
    }
    let Some(client) = connection.as_mut() else {
        return Ok(());
    };
    if !*migrated {
        history::migrate::migrate(client, &inner.url).await?;
        *migrated = true;
    }
    for record in batch {
        history::write::upsert(client, &inner.url, &record).await?;
        let uid = record.common().uid.clone();
        let mut queue = inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.pending.get(&uid).is_some_and(|p| p.record == record) {
            queue.pending.remove(&uid);
            queue.warned_full = false;
        }
        if queue.written.len() >= WRITTEN_MEMORY {
            queue.written.clear();
        }
        queue.written.insert(uid, record);
    }
    Ok(())
}
