//! Adaptive zstd level: compression must not slow the dump down.
//!
//! The chunker reports, for every chunk, how long it spent reading it from the dump tool and how
//! long it then waited for the encoders to take it; the encoders report how long compressing a
//! chunk took; the chunker also reads the machine's idle CPU share. The level steps one down
//! toward [`ADAPTIVE_FLOOR`] when either
//! - a chunk waited and compression is the slow stage (a chunk's compression time divided by
//!   the encoders running at once exceeds its read time): the dump tool is blocked on a full
//!   pipe because of compression. A wait caused by a slow upload does not lower it (smaller
//!   levels make more bytes to upload); or
//! - no core is idle (less than [`CONTENDED_IDLE_SHARE`] of the machine's CPU time,
//!   `cpu_idle.rs`): the encoders keep up, but with cycles taken from the dump tool and the
//!   database server. On two cores this is what slows a dump; no chunk waits.
//!
//! A run of [`CALM_CHUNKS`] chunks that did not wait, while at least [`SPARE_IDLE_SHARE`] of the
//! CPU was idle, steps it one up, never above the configured level.
//! Every chunk is its own zstd frame, so chunks of different levels decode alike.
//!
//! Measured with `cargo xtask bench backup` on two cores, where pg_dump, the server and the
//! encoders share the CPU: level 1 made the backup run at 0.75× pg_dump's own speed; level −3
//! at 0.89×, storing 0.91 of the raw size instead of 0.60; adapting on waits alone at 0.82×
//! (the encoders kept up, so no chunk waited, while the dump lost its CPU). Adapting keeps the
//! configured level wherever the CPU allows it and gives up ratio only while compression is the
//! bottleneck or takes the dump's CPU.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The fastest level adaptation goes down to (zstd's `--fast=5`).
pub const ADAPTIVE_FLOOR: i32 = -5;

/// Chunks in a row that must not wait before the level steps back up.
pub const CALM_CHUNKS: u32 = 4;

/// A chunk "waited" when handing it over took more than this share of the time spent reading it
/// (1/8): below that, the pipe to the dump tool never filled.
const WAIT_SHARE_DIVISOR: u32 = 8;

/// Below this idle share of the machine's CPU (5%), compression takes cycles the dump tool and
/// the database server need: the level steps down even though no chunk waits.
pub const CONTENDED_IDLE_SHARE: f64 = 0.05;

/// The level steps back up only while at least this share (15%) is idle; between the two
/// shares it holds, so it does not swing on every window.
pub const SPARE_IDLE_SHARE: f64 = 0.15;

/// The current level, shared by the chunker (which moves it) and the encoders (which read it).
#[derive(Debug)]
pub struct AdaptiveLevel {
    current: AtomicI32,
    ceiling: i32,
    floor: i32,
    calm: AtomicU32,
    /// Encoders running at once.
    encoders: u32,
    /// The last chunk's compression time, nanoseconds.
    compress_nanos: AtomicU64,
}

impl AdaptiveLevel {
    /// Starts at `ceiling` (the configured level) and never goes above it; goes down to
    /// [`ADAPTIVE_FLOOR`] (or `ceiling`, if that is lower). `encoders`: chunks compressed at once.
    pub fn new(ceiling: i32, encoders: usize) -> Self {
        AdaptiveLevel {
            current: AtomicI32::new(ceiling),
            ceiling,
            floor: ADAPTIVE_FLOOR.min(ceiling),
            calm: AtomicU32::new(0),
            encoders: u32::try_from(encoders.max(1)).unwrap_or(u32::MAX),
            compress_nanos: AtomicU64::new(0),
        }
    }

    /// Records how long compressing one chunk took (called by the encoders).
    pub fn record_compression(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.compress_nanos.store(nanos, Ordering::Relaxed);
    }

    /// The level the next chunk is compressed with.
    pub fn level(&self) -> i32 {
        self.current.load(Ordering::Relaxed)
    }

    /// Records one chunk: `read` spent reading it, `waited` spent handing it to the encoders,
    /// `idle` the machine's idle CPU share meanwhile (`cpu_idle.rs`; `None` when unknown).
    pub fn observe(&self, read: Duration, waited: Duration, idle: Option<f64>) {
        let compress = Duration::from_nanos(self.compress_nanos.load(Ordering::Relaxed));
        let compression_is_slow = compress / self.encoders > read;
        let no_core_idle = idle.is_some_and(|share| share < CONTENDED_IDLE_SHARE);
        let behind = no_core_idle || (waited > read / WAIT_SHARE_DIVISOR && compression_is_slow);
        let room_to_spare = idle.is_none_or(|share| share >= SPARE_IDLE_SHARE);
        let level = self.level();
        if behind {
            self.calm.store(0, Ordering::Relaxed);
            self.current.store(self.step(level, -1), Ordering::Relaxed);
        } else if !room_to_spare {
            // Between the two shares: hold the level, and count no calm.
            self.calm.store(0, Ordering::Relaxed);
        } else if self.calm.fetch_add(1, Ordering::Relaxed) + 1 >= CALM_CHUNKS {
            self.calm.store(0, Ordering::Relaxed);
            self.current.store(self.step(level, 1), Ordering::Relaxed);
        }
    }

    /// `level` moved one step by `direction` (±1), skipping 0 (not a zstd level), within bounds.
    fn step(&self, level: i32, direction: i32) -> i32 {
        let mut next = level + direction;
        if next == 0 {
            next += direction;
        }
        next.clamp(self.floor, self.ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: Duration = Duration::from_millis(80);
    /// Two encoders taking 200 ms a chunk keep up with one chunk per 100 ms, not per 80 ms.
    const SLOW_COMPRESSION: Duration = Duration::from_millis(200);

    fn slow(ceiling: i32) -> AdaptiveLevel {
        let adaptive = AdaptiveLevel::new(ceiling, 2);
        adaptive.record_compression(SLOW_COMPRESSION);
        adaptive
    }
    const BUSY: Duration = Duration::from_millis(40);
    const IDLE: Duration = Duration::ZERO;

    #[test]
    fn waiting_steps_down_to_the_floor_skipping_zero() {
        let adaptive = slow(2);
        let mut seen = vec![adaptive.level()];
        for _ in 0..10 {
            adaptive.observe(READ, BUSY, None);
            seen.push(adaptive.level());
        }
        assert_eq!(&seen[..9], &[2, 1, -1, -2, -3, -4, -5, -5, -5]);
        assert!(!seen.contains(&0));
    }

    #[test]
    fn calm_chunks_step_back_up_to_the_ceiling_and_no_further() {
        let adaptive = slow(1);
        for _ in 0..3 {
            adaptive.observe(READ, BUSY, None);
        }
        assert_eq!(adaptive.level(), -3);
        let mut levels = Vec::new();
        for _ in 0..(CALM_CHUNKS * 6) {
            adaptive.observe(READ, IDLE, None);
            levels.push(adaptive.level());
        }
        // One step per CALM_CHUNKS calm chunks: -3 → -2 → -1 → 1, then it stays at 1.
        let calm = usize::try_from(CALM_CHUNKS).unwrap();
        assert_eq!(levels[calm - 2], -3);
        assert_eq!(levels[calm - 1], -2);
        assert_eq!(levels[3 * calm - 1], 1);
        assert_eq!(*levels.last().unwrap(), 1);
    }

    #[test]
    fn one_busy_chunk_resets_the_calm_run() {
        let adaptive = slow(1);
        adaptive.observe(READ, BUSY, None);
        assert_eq!(adaptive.level(), -1);
        for _ in 0..(CALM_CHUNKS - 1) {
            adaptive.observe(READ, IDLE, None);
        }
        adaptive.observe(READ, BUSY, None);
        assert_eq!(adaptive.level(), -2);
        for _ in 0..(CALM_CHUNKS - 1) {
            adaptive.observe(READ, IDLE, None);
        }
        assert_eq!(
            adaptive.level(),
            -2,
            "the calm run restarted after the busy chunk"
        );
    }

    #[test]
    fn a_short_wait_is_not_a_backlog() {
        let adaptive = slow(1);
        adaptive.observe(READ, READ / (WAIT_SHARE_DIVISOR * 2), None);
        assert_eq!(adaptive.level(), 1);
    }

    #[test]
    fn a_ceiling_below_the_floor_is_kept() {
        let adaptive = slow(-7);
        adaptive.observe(READ, BUSY, None);
        adaptive.observe(READ, IDLE, None);
        assert_eq!(adaptive.level(), -7);
    }

    #[test]
    fn a_wait_caused_by_the_upload_keeps_the_level() {
        // Two encoders at 100 ms a chunk keep up with one chunk per 80 ms: the wait is the
        // upload's, and a lower level would only make more bytes to upload.
        let adaptive = AdaptiveLevel::new(1, 2);
        adaptive.record_compression(Duration::from_millis(100));
        for _ in 0..5 {
            adaptive.observe(Duration::from_millis(80), Duration::from_millis(60), None);
        }
        assert_eq!(adaptive.level(), 1);
        adaptive.record_compression(Duration::from_millis(200));
        adaptive.observe(Duration::from_millis(80), Duration::from_millis(60), None);
        assert_eq!(adaptive.level(), -1);
    }

    #[test]
    fn a_machine_without_idle_cpu_steps_down_though_nothing_waits() {
        // Fast encoders, no waits: the wait signal alone would keep the level.
        let adaptive = AdaptiveLevel::new(1, 2);
        adaptive.record_compression(Duration::from_millis(10));
        for _ in 0..3 {
            adaptive.observe(READ, IDLE, Some(0.01));
        }
        assert_eq!(adaptive.level(), -3);
        // Some idle, but under the spare share: the level holds, however long.
        for _ in 0..(CALM_CHUNKS * 3) {
            adaptive.observe(READ, IDLE, Some(0.10));
        }
        assert_eq!(adaptive.level(), -3);
        // Spare CPU again: back up, one step per calm run.
        for _ in 0..CALM_CHUNKS {
            adaptive.observe(READ, IDLE, Some(0.30));
        }
        assert_eq!(adaptive.level(), -2);
    }
}
