//! Adaptive zstd level: compression must not slow the dump down.
//!
//! The chunker reports, for every chunk, how long it spent reading it from the dump tool and how
//! long it then waited for the encoders to take it; the encoders report how long compressing a
//! chunk took. A chunk waited and compression is the slow stage (a chunk's compression time
//! divided by the encoders running at once exceeds its read time): the dump tool is blocked on a
//! full pipe because of compression, so the level steps one down toward [`ADAPTIVE_FLOOR`]. A
//! wait caused by a slow upload does not lower it (smaller levels make more bytes to upload). A
//! run of [`CALM_CHUNKS`] chunks that did not wait steps it one up, never above the configured
//! level.
//! Every chunk is its own zstd frame, so chunks of different levels decode alike.
//!
//! Measured with `cargo xtask bench backup` on two cores, where pg_dump, the server and the
//! encoders share the CPU: level 1 made the backup run at 0.75× pg_dump's own speed; level −3
//! at 0.89×, storing 0.91 of the raw size instead of 0.60. Adapting keeps the configured level
//! wherever the CPU allows it and gives up ratio only while compression is the bottleneck.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The fastest level adaptation goes down to (zstd's `--fast=5`).
pub const ADAPTIVE_FLOOR: i32 = -5;

/// Chunks in a row that must not wait before the level steps back up.
pub const CALM_CHUNKS: u32 = 4;

/// A chunk "waited" when handing it over took more than this share of the time spent reading it
/// (1/8): below that, the pipe to the dump tool never filled.
const WAIT_SHARE_DIVISOR: u32 = 8;

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

    /// Records one chunk: `read` spent reading it, `waited` spent handing it to the encoders.
    pub fn observe(&self, read: Duration, waited: Duration) {
        let compress = Duration::from_nanos(self.compress_nanos.load(Ordering::Relaxed));
        let compression_is_slow = compress / self.encoders > read;
        let behind = waited > read / WAIT_SHARE_DIVISOR && compression_is_slow;
        let level = self.level();
        if behind {
            self.calm.store(0, Ordering::Relaxed);
            self.current.store(self.step(level, -1), Ordering::Relaxed);
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
            adaptive.observe(READ, BUSY);
            seen.push(adaptive.level());
        }
        assert_eq!(&seen[..9], &[2, 1, -1, -2, -3, -4, -5, -5, -5]);
        assert!(!seen.contains(&0));
    }

    #[test]
    fn calm_chunks_step_back_up_to_the_ceiling_and_no_further() {
        let adaptive = slow(1);
        for _ in 0..3 {
            adaptive.observe(READ, BUSY);
        }
        assert_eq!(adaptive.level(), -3);
        let mut levels = Vec::new();
        for _ in 0..(CALM_CHUNKS * 6) {
            adaptive.observe(READ, IDLE);
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
        adaptive.observe(READ, BUSY);
        assert_eq!(adaptive.level(), -1);
        for _ in 0..(CALM_CHUNKS - 1) {
            adaptive.observe(READ, IDLE);
        }
        adaptive.observe(READ, BUSY);
        assert_eq!(adaptive.level(), -2);
        for _ in 0..(CALM_CHUNKS - 1) {
            adaptive.observe(READ, IDLE);
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
        adaptive.observe(READ, READ / (WAIT_SHARE_DIVISOR * 2));
        assert_eq!(adaptive.level(), 1);
    }

    #[test]
    fn a_ceiling_below_the_floor_is_kept() {
        let adaptive = slow(-7);
        adaptive.observe(READ, BUSY);
        adaptive.observe(READ, IDLE);
        assert_eq!(adaptive.level(), -7);
    }

    #[test]
    fn a_wait_caused_by_the_upload_keeps_the_level() {
        // Two encoders at 100 ms a chunk keep up with one chunk per 80 ms: the wait is the
        // upload's, and a lower level would only make more bytes to upload.
        let adaptive = AdaptiveLevel::new(1, 2);
        adaptive.record_compression(Duration::from_millis(100));
        for _ in 0..5 {
            adaptive.observe(Duration::from_millis(80), Duration::from_millis(60));
        }
        assert_eq!(adaptive.level(), 1);
        adaptive.record_compression(Duration::from_millis(200));
        adaptive.observe(Duration::from_millis(80), Duration::from_millis(60));
        assert_eq!(adaptive.level(), -1);
    }
}
