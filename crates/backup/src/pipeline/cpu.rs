//! Per-stage CPU accounting: how much CPU time each stage of the pipeline spent, measured with
//! the calling thread's CPU clock around each piece of work (a chunk's compression, a read poll,
//! a multipart write), so it stays right while stages share threads. The costs are a pair of
//! `clock_gettime` calls per measured piece — per chunk or per poll, never per byte.
//!
//! On two cores the dump tool, the database server and this pipeline share the CPU: every
//! cycle a stage spends per megabyte is taken from the dump. These figures tell which stage to
//! make cheaper (`cargo xtask bench backup` prints them as shares).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};

use rustix::time::{ClockId, clock_gettime};
use serde::Serialize;

/// A stage of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Reading the dump (or, restoring, the stored objects) and cutting it into chunks.
    Read,
    /// zstd/gzip compression or decompression.
    Compress,
    /// AES-256-GCM sealing or opening.
    Encrypt,
    /// BLAKE3: of the raw dump and of each stored chunk (and, reading a format 1 backup, of
    /// each data object).
    Hash,
    /// Handing stored chunks to the store (multipart parts), or raw bytes to the restore tool.
    Upload,
}

const STAGES: [Stage; 5] = [
    Stage::Read,
    Stage::Compress,
    Stage::Encrypt,
    Stage::Hash,
    Stage::Upload,
];

impl Stage {
    /// The stage's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Compress => "compress",
            Stage::Encrypt => "encrypt",
            Stage::Hash => "hash",
            Stage::Upload => "upload",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// The current thread's CPU time, in nanoseconds.
fn thread_nanos() -> u64 {
    nanos(clock_gettime(ClockId::ThreadCPUTime))
}

/// The whole process's CPU time (every thread, user and system), in nanoseconds.
fn process_nanos() -> u64 {
    nanos(clock_gettime(ClockId::ProcessCPUTime))
}

/// A clock reading in nanoseconds (0 for the parts a clock never gives negative).
pub(super) fn nanos(time: rustix::time::Timespec) -> u64 {
    let seconds = u64::try_from(time.tv_sec).unwrap_or(0);
    let fraction = u64::try_from(time.tv_nsec).unwrap_or(0);
    seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(fraction)
}

/// CPU time per stage of one pipeline run, shared by the threads that run it.
#[derive(Debug)]
pub struct StageCpu {
    /// Nanoseconds per stage; signed because nested work is taken out of its outer stage
    /// before the outer piece's own time is added.
    stages: [AtomicI64; STAGES.len()],
    process_start: u64,
}

impl StageCpu {
    /// Starts accounting; the process CPU clock is read now, so the report's `total` covers
    /// the process from here on.
    pub fn new() -> Arc<Self> {
        Arc::new(StageCpu {
            stages: Default::default(),
            process_start: process_nanos(),
        })
    }

    /// Runs `work` on this thread and charges its CPU time to `stage`.
    pub fn measure<T>(&self, stage: Stage, work: impl FnOnce() -> T) -> T {
        let started = thread_nanos();
        let result = work();
        self.charge(stage, thread_nanos().saturating_sub(started));
        result
    }

    fn charge(&self, stage: Stage, nanos: u64) {
        let nanos = i64::try_from(nanos).unwrap_or(i64::MAX);
        self.stages[stage.slot()].fetch_add(nanos, Ordering::Relaxed);
    }

    /// Takes back time charged to `stage` (work measured inside a larger piece and moved to
    /// another stage).
    fn uncharge(&self, stage: Stage, nanos: u64) {
        let nanos = i64::try_from(nanos).unwrap_or(i64::MAX);
        self.stages[stage.slot()].fetch_sub(nanos, Ordering::Relaxed);
    }

    /// Like [`StageCpu::measure`] for work nested inside a piece charged to `outer` (the raw
    /// hash inside a read poll): the time moves from `outer` to `stage`.
    pub fn measure_nested<T>(&self, outer: Stage, stage: Stage, work: impl FnOnce() -> T) -> T {
        let started = thread_nanos();
        let result = work();
        let spent = thread_nanos().saturating_sub(started);
        self.charge(stage, spent);
        self.uncharge(outer, spent);
        result
    }

    /// Wraps a future so that every poll's CPU time is charged to `stage`.
    pub fn metered<F: Future>(self: &Arc<Self>, stage: Stage, future: F) -> Metered<F> {
        Metered {
            inner: Box::pin(future),
            stage,
            cpu: self.clone(),
        }
    }

    /// The figures so far.
    pub fn report(&self) -> StageCpuReport {
        let seconds = |nanos: i64| nanos.max(0) as f64 / 1e9;
        let stages: Vec<StageSeconds> = STAGES
            .iter()
            .map(|stage| StageSeconds {
                stage: stage.name(),
                seconds: seconds(self.stages[stage.slot()].load(Ordering::Relaxed)),
            })
            .collect();
        let total = process_nanos().saturating_sub(self.process_start) as f64 / 1e9;
        let measured: f64 = stages.iter().map(|stage| stage.seconds).sum();
        StageCpuReport {
            stages,
            other_seconds: (total - measured).max(0.0),
            total_seconds: total,
        }
    }
}

/// A future whose polls are charged to one stage.
pub struct Metered<F> {
    inner: Pin<Box<F>>,
    stage: Stage,
    cpu: Arc<StageCpu>,
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let started = thread_nanos();
        let result = self.inner.as_mut().poll(cx);
        self.cpu
            .charge(self.stage, thread_nanos().saturating_sub(started));
        result
    }
}

/// One stage's CPU time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageSeconds {
    /// The stage ([`Stage::name`]).
    pub stage: &'static str,
    /// CPU seconds (user and system) spent in it.
    pub seconds: f64,
}

/// CPU time of one run, per stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageCpuReport {
    /// The measured stages, in pipeline order.
    pub stages: Vec<StageSeconds>,
    /// Process CPU seconds outside the measured stages: the async runtime and its wake-ups,
    /// the allocator, the store client's own threads (multipart part writes, HTTP), connecting
    /// to the database and the dump-time counts.
    pub other_seconds: f64,
    /// The process's CPU seconds since accounting started (every thread).
    pub total_seconds: f64,
}

impl StageCpuReport {
    /// `stage share%, …` of the total, for a one-line summary.
    pub fn shares(&self) -> String {
        let total = self.total_seconds.max(1e-9);
        let mut parts: Vec<String> = self
            .stages
            .iter()
            .map(|stage| format!("{} {:.0}%", stage.stage, 100.0 * stage.seconds / total))
            .collect();
        parts.push(format!("other {:.0}%", 100.0 * self.other_seconds / total));
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burns `millis` of this thread's CPU time (not wall time: the machine may be busy).
    fn spin(millis: u64) -> u64 {
        let started = thread_nanos();
        let mut x = 0u64;
        while thread_nanos() - started < millis * 1_000_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        x
    }

    fn seconds_of(report: &StageCpuReport, stage: Stage) -> f64 {
        report
            .stages
            .iter()
            .find(|s| s.stage == stage.name())
            .map(|s| s.seconds)
            .unwrap()
    }

    #[test]
    fn measured_work_lands_in_its_stage_and_nested_work_moves() {
        let cpu = StageCpu::new();
        cpu.measure(Stage::Compress, || spin(30));
        cpu.measure(Stage::Read, || {
            spin(20);
            cpu.measure_nested(Stage::Read, Stage::Hash, || spin(20))
        });
        let report = cpu.report();
        let compress = seconds_of(&report, Stage::Compress);
        let read = seconds_of(&report, Stage::Read);
        let hash = seconds_of(&report, Stage::Hash);
        assert!((0.030..0.035).contains(&compress), "compress {compress}");
        assert!((0.020..0.025).contains(&read), "read {read}");
        assert!((0.020..0.025).contains(&hash), "hash {hash}");
        assert_eq!(seconds_of(&report, Stage::Encrypt), 0.0);
        assert!(report.total_seconds >= compress + read + hash - 0.005);
        assert!(report.shares().contains("compress"));
    }

    #[tokio::test]
    async fn a_metered_future_is_charged_per_poll_not_while_it_waits() {
        // One thread runs both tasks: the spin below is this thread's CPU time, but it happens
        // while the metered future waits, so it must not be charged to it.
        let cpu = StageCpu::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let waiting = tokio::spawn(cpu.metered(Stage::Upload, async move {
            spin(20);
            let _ = started_tx.send(());
            let _ = rx.await;
        }));
        started_rx.await.unwrap();
        spin(80);
        tx.send(()).unwrap();
        waiting.await.unwrap();
        let upload = seconds_of(&cpu.report(), Stage::Upload);
        assert!((0.020..0.025).contains(&upload), "upload {upload}");
    }
}
