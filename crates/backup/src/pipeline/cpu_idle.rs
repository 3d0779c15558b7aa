//! The machine's idle CPU share, read from `/proc/stat`: the signal that tells an adaptive
//! backup whether its compression takes CPU time the dump needs.
//!
//! On two cores the dump tool, the database server and the encoders share the CPU. While the
//! machine has idle time, compression runs beside the dump; once no core is idle, every
//! compression cycle is taken from the dump, even though no chunk waits for an encoder (that
//! older signal, in `adaptive.rs`, only sees a full pipeline). Shares are measured over windows
//! of at least [`MIN_WINDOW_TICKS`] clock ticks summed over all cores (100 ms on two cores at
//! Linux's 100 ticks per second), so one chunk's reading never decides alone.
//!
//! The share is the host's: in a container with a CPU limit, idle host cores are not this
//! process's to use, and only the wait signal applies there. Where `/proc/stat` cannot be read
//! (not Linux), the sampler gives no share and the level follows the wait signal alone.

/// The shortest window a share is computed over: clock ticks summed over all cores.
pub const MIN_WINDOW_TICKS: u64 = 20;

/// Idle and total clock ticks of all cores since boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ticks {
    idle: u64,
    total: u64,
}

/// Parses the aggregate `cpu` line of `/proc/stat`: `cpu user nice system idle iowait irq
/// softirq steal …` (ticks). Idle counts `idle` and `iowait`; total is the first eight fields
/// (guest time is already inside `user` and `nice`).
fn parse_stat(text: &str) -> Option<Ticks> {
    let line = text.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if fields.len() < 5 {
        return None;
    }
    Some(Ticks {
        idle: fields[3] + fields[4],
        total: fields.iter().sum(),
    })
}

fn read_stat() -> Option<Ticks> {
    parse_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Samples the idle share window by window.
#[derive(Debug)]
pub struct IdleSampler {
    source: fn() -> Option<Ticks>,
    last: Option<Ticks>,
    share: Option<f64>,
}

impl Default for IdleSampler {
    fn default() -> Self {
        Self::with_source(read_stat)
    }
}

impl IdleSampler {
    fn with_source(source: fn() -> Option<Ticks>) -> Self {
        IdleSampler {
            source,
            last: source(),
            share: None,
        }
    }

    /// The idle share (0.0–1.0) of the last complete window, starting a new window when the
    /// current one is long enough; `None` before the first window completes or without
    /// `/proc/stat`.
    pub fn share(&mut self) -> Option<f64> {
        let Some(now) = (self.source)() else {
            return self.share;
        };
        match self.last {
            Some(last) if now.total >= last.total + MIN_WINDOW_TICKS => {
                let total = now.total - last.total;
                let idle = now.idle.saturating_sub(last.idle).min(total);
                #[allow(clippy::cast_precision_loss)] // tick counts of one window
                let share = idle as f64 / total as f64;
                self.share = Some(share);
                self.last = Some(now);
            }
            Some(_) => {}
            None => self.last = Some(now),
        }
        self.share
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn the_aggregate_line_gives_idle_and_iowait_over_the_first_eight_fields() {
        let text = "cpu  100 5 50 800 20 3 2 0 7 0\ncpu0 50 2 25 400 10 1 1 0 0 0\nintr 1 2\n";
        assert_eq!(
            parse_stat(text),
            Some(Ticks {
                idle: 820,
                total: 980
            })
        );
        assert_eq!(parse_stat("intr 1 2\n"), None);
        assert_eq!(parse_stat("cpu  1 x 3 4 5\n"), None);
    }

    #[test]
    fn this_machine_has_a_readable_share() {
        let mut sampler = IdleSampler::default();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while sampler.share().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "no share from /proc/stat"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let share = sampler.share().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&share), "{share}");
    }

    static IDLE: AtomicU64 = AtomicU64::new(0);
    static TOTAL: AtomicU64 = AtomicU64::new(0);

    fn fake() -> Option<Ticks> {
        Some(Ticks {
            idle: IDLE.load(Ordering::SeqCst),
            total: TOTAL.load(Ordering::SeqCst),
        })
    }

    #[test]
    fn a_share_needs_a_whole_window_and_then_holds_until_the_next() {
        let mut sampler = IdleSampler::with_source(fake);
        // Half a window: no share yet.
        TOTAL.store(MIN_WINDOW_TICKS / 2, Ordering::SeqCst);
        IDLE.store(MIN_WINDOW_TICKS / 2, Ordering::SeqCst);
        assert_eq!(sampler.share(), None);
        // One window, a quarter of it idle.
        TOTAL.store(MIN_WINDOW_TICKS * 4, Ordering::SeqCst);
        IDLE.store(MIN_WINDOW_TICKS, Ordering::SeqCst);
        assert_eq!(sampler.share(), Some(0.25));
        // Part of the next window, all busy: the last complete share holds.
        TOTAL.store(MIN_WINDOW_TICKS * 4 + 5, Ordering::SeqCst);
        assert_eq!(sampler.share(), Some(0.25));
        // The next window complete: nothing idle.
        TOTAL.store(MIN_WINDOW_TICKS * 8, Ordering::SeqCst);
        assert_eq!(sampler.share(), Some(0.0));
    }
}
