//! The idle share of the CPU this process may use, read from `/proc/stat` (and its cgroup's
//! quota): the signal that tells an adaptive backup whether its compression takes CPU time the
//! dump needs.
//!
//! On two cores the dump tool, the database server and the encoders share the CPU. While the
//! machine has idle time, compression runs beside the dump; once no core is idle, every
//! compression cycle is taken from the dump, even though no chunk waits for an encoder (that
//! older signal, in `adaptive.rs`, only sees a full pipeline). Shares are measured over windows
//! of at least [`MIN_WINDOW_TICKS`] clock ticks summed over the CPUs counted (100 ms on two
//! cores at Linux's 100 ticks per second), so one chunk's reading never decides alone.
//!
//! The share is that of the CPUs this process may run on (its affinity: a cpuset such as a
//! Kubernetes exclusive-CPU pod's or Docker's `--cpuset-cpus`, or `taskset`), from their own
//! `cpuN` lines: idle cores outside the set are not this process's to use. Under a CPU quota
//! (a Kubernetes CPU limit, `docker --cpus`; `cpu_quota.rs`) the share is the lower of that
//! and the unused part of the quota: a backup whose cgroup has used up its quota has no CPU
//! to spare, however idle the host. Where `/proc/stat` cannot be read (not Linux), the sampler
//! gives no share and the level follows the wait signal alone.

use super::cpu_quota::{self, QuotaSample};

/// The shortest window a share is computed over: clock ticks summed over the CPUs counted.
pub const MIN_WINDOW_TICKS: u64 = 20;

/// Idle and total clock ticks of the CPUs counted, since boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ticks {
    idle: u64,
    total: u64,
}

/// Parses `/proc/stat`'s lines `cpu user nice system idle iowait irq softirq steal …` (ticks):
/// the aggregate `cpu` line, or with `cpus` the sum of those CPUs' `cpuN` lines. Idle counts
/// `idle` and `iowait`; total is the first eight fields (guest time is already inside `user`
/// and `nice`). `None` when a line is malformed or no line is found.
fn parse_stat(text: &str, cpus: Option<&[usize]>) -> Option<Ticks> {
    let mut sum = Ticks { idle: 0, total: 0 };
    let mut found = false;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else {
            continue;
        };
        let counted = match (name, cpus) {
            ("cpu", None) => true,
            (name, Some(cpus)) => name
                .strip_prefix("cpu")
                .and_then(|number| number.parse::<usize>().ok())
                .is_some_and(|number| cpus.contains(&number)),
            _ => false,
        };
        if !counted {
            continue;
        }
        let fields: Vec<u64> = words
            .take(8)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        if fields.len() < 5 {
            return None;
        }
        sum.idle += fields[3] + fields[4];
        sum.total += fields.iter().sum::<u64>();
        found = true;
    }
    found.then_some(sum)
}

/// The CPUs this process may run on (its affinity); `None` when it cannot be read.
fn allowed_cpus() -> Option<Vec<usize>> {
    use rustix::thread::{CpuSet, sched_getaffinity};
    let set = sched_getaffinity(None).ok()?;
    let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect();
    (!cpus.is_empty()).then_some(cpus)
}

fn read_stat() -> Option<Ticks> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let cpus = allowed_cpus();
    parse_stat(&text, cpus.as_deref()).or_else(|| parse_stat(&text, None))
}

/// Samples the idle share window by window.
#[derive(Debug)]
pub struct IdleSampler {
    source: fn() -> Option<Ticks>,
    last: Option<Ticks>,
    quota_source: fn() -> Option<QuotaSample>,
    last_quota: Option<QuotaSample>,
    share: Option<f64>,
}

impl Default for IdleSampler {
    fn default() -> Self {
        Self::with_sources(read_stat, cpu_quota::sample)
    }
}

impl IdleSampler {
    fn with_sources(
        source: fn() -> Option<Ticks>,
        quota_source: fn() -> Option<QuotaSample>,
    ) -> Self {
        IdleSampler {
            source,
            last: source(),
            quota_source,
            last_quota: quota_source(),
            share: None,
        }
    }

    /// The idle share of the cgroup's CPU quota since the last window, if it has one; the
    /// quota is read once per window.
    fn quota_share(&mut self) -> Option<f64> {
        let now = (self.quota_source)();
        let share = match (&self.last_quota, &now) {
            (Some(earlier), Some(later)) => cpu_quota::idle_share(earlier, later),
            _ => None,
        };
        self.last_quota = now;
        share
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
                // Idle cores are no use to a cgroup that has used up its quota.
                let share = self.quota_share().map_or(share, |quota| share.min(quota));
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
            parse_stat(text, None),
            Some(Ticks {
                idle: 820,
                total: 980
            })
        );
        assert_eq!(parse_stat("intr 1 2\n", None), None);
        assert_eq!(parse_stat("cpu  1 x 3 4 5\n", None), None);
    }

    #[test]
    fn with_an_affinity_only_those_cpus_count() {
        // cpu0 is all busy, cpu1 and cpu2 all idle: pinned to cpu0, nothing is idle.
        let text = "cpu  300 0 0 200 0 0 0 0\n\
                    cpu0 100 0 0 0 0 0 0 0\n\
                    cpu1 0 0 0 100 0 0 0 0\n\
                    cpu2 0 0 0 100 0 0 0 0\n\
                    cpu10 200 0 0 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(text, Some(&[0])),
            Some(Ticks {
                idle: 0,
                total: 100
            })
        );
        assert_eq!(
            parse_stat(text, Some(&[1])),
            Some(Ticks {
                idle: 100,
                total: 100
            }),
            "cpu10 is not cpu1"
        );
        assert_eq!(
            parse_stat(text, Some(&[1, 10])),
            Some(Ticks {
                idle: 100,
                total: 300
            })
        );
        assert_eq!(parse_stat(text, Some(&[7])), None);
    }

    #[test]
    fn this_process_affinity_is_read() {
        let cpus = allowed_cpus().unwrap_or_default();
        let parallelism = std::thread::available_parallelism().map_or(0, usize::from);
        // available_parallelism also honours a cgroup quota, which can only lower it.
        assert!(
            !cpus.is_empty() && cpus.len() >= parallelism,
            "{cpus:?}, {parallelism}"
        );
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

    #[test]
    fn a_thread_pinned_beside_a_busy_loop_sees_no_idle_share() {
        use rustix::thread::{CpuSet, sched_setaffinity};
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let cpu = allowed_cpus()
            .and_then(|cpus| cpus.first().copied())
            .expect("this thread's affinity");
        let mut set = CpuSet::new();
        set.set(cpu);
        let stop = Arc::new(AtomicBool::new(false));
        let spinning = stop.clone();
        let spinner = std::thread::spawn(move || {
            sched_setaffinity(None, &set).expect("pinning the busy loop");
            while !spinning.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        // Sampled from a thread of its own, so the test harness's thread keeps its affinity.
        let sampled = std::thread::spawn(move || {
            sched_setaffinity(None, &set).expect("pinning the sampler");
            let mut sampler = IdleSampler::default();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            let mut last = None;
            while std::time::Instant::now() < deadline {
                last = sampler.share();
                if last.is_some_and(|share| share < crate::pipeline::adaptive::CONTENDED_IDLE_SHARE)
                {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(last)
        })
        .join();
        stop.store(true, Ordering::Relaxed);
        spinner.join().expect("the busy loop");
        // Counting every CPU of the machine, the others' idle time would show here.
        assert_eq!(
            sampled.expect("the sampler thread"),
            Ok(()),
            "cpu{cpu} is busy, yet its idle share stayed at or above 5%"
        );
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
        let mut sampler = IdleSampler::with_sources(fake, || None);
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

    static QUOTA_TOTAL: AtomicU64 = AtomicU64::new(0);
    static QUOTA_USED: AtomicU64 = AtomicU64::new(0);

    /// A host that is always half idle.
    fn half_idle_host() -> Option<Ticks> {
        let total = QUOTA_TOTAL.load(Ordering::SeqCst);
        Some(Ticks {
            idle: total / 2,
            total,
        })
    }

    /// One CPU of quota; the clock runs one µs per host tick, for the test's arithmetic.
    fn one_cpu_quota() -> Option<QuotaSample> {
        Some(QuotaSample {
            cpus: 1.0,
            used_micros: QUOTA_USED.load(Ordering::SeqCst),
            at_micros: QUOTA_TOTAL.load(Ordering::SeqCst),
        })
    }

    #[test]
    fn a_used_up_quota_leaves_nothing_idle_however_idle_the_host() {
        let mut sampler = IdleSampler::with_sources(half_idle_host, one_cpu_quota);
        // The cgroup used its whole quota over the window: nothing to spare.
        QUOTA_TOTAL.store(MIN_WINDOW_TICKS * 10, Ordering::SeqCst);
        QUOTA_USED.store(MIN_WINDOW_TICKS * 10, Ordering::SeqCst);
        assert_eq!(sampler.share(), Some(0.0));
        // The next window it used a tenth of it: the host's half is the lower share.
        QUOTA_TOTAL.store(MIN_WINDOW_TICKS * 20, Ordering::SeqCst);
        QUOTA_USED.store(MIN_WINDOW_TICKS * 11, Ordering::SeqCst);
        assert_eq!(sampler.share(), Some(0.5));
        // Without a quota the host's share stands.
        let mut unlimited = IdleSampler::with_sources(half_idle_host, || None);
        QUOTA_TOTAL.store(MIN_WINDOW_TICKS * 40, Ordering::SeqCst);
        assert_eq!(unlimited.share(), Some(0.5));
    }
}
