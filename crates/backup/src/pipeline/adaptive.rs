//! Adaptive zstd level: compression must not slow the dump down.
//!
//! The chunker reports, for every chunk, how long it spent reading it from the dump tool and how
//! long it then waited for the encoders to take it; the encoders report how long compressing a
//! chunk took; the chunker also reads the idle share of the CPU it may use. The level steps
//! one rung down the ladder (the configured level, …, 1, −1, …, [`LAST_FAST_LEVEL`], then
//! [`STORE_LEVEL`]) when either
//! - a chunk waited and compression is the slow stage (a chunk's compression time divided by
//!   the encoders running at once exceeds its read time): the dump tool is blocked on a full
//!   pipe because of compression. A wait caused by a slow upload does not lower it (smaller
//!   levels make more bytes to upload); or
//! - no core is idle (less than [`CONTENDED_IDLE_SHARE`] of the machine's CPU time,
//!   `cpu_idle.rs`): the encoders keep up, but with cycles taken from the dump tool and the
//!   database server. On two cores this is what slows a dump; no chunk waits.
//!
//! A run of [`CALM_CHUNKS`] chunks that did not wait, while at least [`SPARE_IDLE_SHARE`] of the
//! CPU was idle, steps it one rung up, never above the configured level.
//! Every chunk is its own zstd frame, so chunks of different levels decode alike, and a
//! [`STORE_LEVEL`] chunk is an ordinary zstd frame that older readers decode too.
//!
//! Measured with `cargo xtask bench backup` on two cores, where pg_dump, the server and the
//! encoders share the CPU: level 1 made the backup run at 0.75× pg_dump's own speed; level −3
//! at 0.89×, storing 0.91 of the raw size instead of 0.60; adapting on waits alone at 0.82×
//! (the encoders kept up, so no chunk waited, while the dump lost its CPU). Adapting keeps the
//! configured level wherever the CPU allows it and gives up ratio only while compression is the
//! bottleneck or takes the dump's CPU.
//!
//! Why the last rung stores: on the benchmark's 1 GB dump (base64 and hex text) one core
//! compressed at 3.2–3.7 ms per MB at level 1 (stored 0.60 of the raw size), 2.3 at −1 (0.90),
//! 1.3–1.8 at −5 (0.91) and 0.2 at zstd's minimum level (1.00). The fast levels do not entropy-code
//! literals, so on such data they save a tenth of the bytes for half of level 1's CPU; the
//! tenth saves about 0.1 ms per raw MB of hashing, encryption and writing. When no core is idle,
//! storing the chunk gives that CPU back to the dump.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The last fast level on the ladder (zstd's `--fast=5`); one rung below it is
/// [`STORE_LEVEL`].
pub const LAST_FAST_LEVEL: i32 = -5;

/// The ladder's lowest rung: zstd's minimum level (−131072 in zstd 1.5), whose frames hold
/// their data almost as it is, at a sixth or less of level −5's CPU (see the module docs).
pub const STORE_LEVEL: i32 = -131_072;

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
    calm: AtomicU32,
    /// Encoders running at once.
    encoders: u32,
    /// The last chunk's compression time, nanoseconds.
    compress_nanos: AtomicU64,
}

impl AdaptiveLevel {
    /// Starts at `ceiling` (the configured level) and never goes above it; goes down to
    /// [`STORE_LEVEL`]. `encoders`: chunks compressed at once.
    pub fn new(ceiling: i32, encoders: usize) -> Self {
        AdaptiveLevel {
            current: AtomicI32::new(ceiling),
            ceiling,
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
    /// `idle` the idle share of the CPU it may use meanwhile (`cpu_idle.rs`; `None` when
    /// unknown).
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

    /// `level` moved one rung by `direction` (±1): levels step by one, skipping 0 (not a zstd
    /// level); below [`LAST_FAST_LEVEL`] (or a configured level under it) comes
    /// [`STORE_LEVEL`]; never above the configured level.
    fn step(&self, level: i32, direction: i32) -> i32 {
        let next = if direction < 0 && level <= LAST_FAST_LEVEL {
            STORE_LEVEL
        } else if direction > 0 && level == STORE_LEVEL {
            LAST_FAST_LEVEL
        } else {
            let next = level + direction;
            if next == 0 { next + direction } else { next }
        };
        next.clamp(STORE_LEVEL, self.ceiling)
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
    fn waiting_steps_down_to_storing_skipping_zero() {
        let adaptive = slow(2);
        let mut seen = vec![adaptive.level()];
        for _ in 0..10 {
            adaptive.observe(READ, BUSY, None);
            seen.push(adaptive.level());
        }
        const S: i32 = STORE_LEVEL;
        assert_eq!(&seen[..10], &[2, 1, -1, -2, -3, -4, -5, S, S, S]);
        assert!(!seen.contains(&0));
    }

    #[test]
    fn storing_steps_back_up_through_the_fast_levels() {
        let adaptive = slow(1);
        for _ in 0..7 {
            adaptive.observe(READ, BUSY, None);
        }
        assert_eq!(adaptive.level(), STORE_LEVEL);
        let mut rungs = vec![adaptive.level()];
        for _ in 0..(CALM_CHUNKS * 7) {
            adaptive.observe(READ, IDLE, Some(0.5));
            if rungs.last() != Some(&adaptive.level()) {
                rungs.push(adaptive.level());
            }
        }
        assert_eq!(rungs, [STORE_LEVEL, -5, -4, -3, -2, -1, 1]);
    }

    #[test]
    fn the_store_level_frames_decode_as_zstd() {
        let raw: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let compression = crate::pipeline::compress::Compression::Zstd { level: STORE_LEVEL };
        let stored = compression.compress(&raw).unwrap();
        let any_level = crate::pipeline::compress::Compression::Zstd { level: 1 };
        assert_eq!(any_level.decompress(stored, raw.len()).unwrap(), raw);
        assert_eq!(STORE_LEVEL, zstd::zstd_safe::min_c_level());
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
    fn a_configured_level_below_the_last_fast_level_steps_to_storing_and_back() {
        let adaptive = slow(-7);
        adaptive.observe(READ, BUSY, None);
        assert_eq!(adaptive.level(), STORE_LEVEL);
        for _ in 0..(CALM_CHUNKS * 3) {
            adaptive.observe(READ, IDLE, None);
        }
        assert_eq!(adaptive.level(), -7, "never above the configured level");
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
