//! Per-object exponential backoff with jitter for failed reconciles.
//!
//! kube-runtime requeues a failed object after whatever `error_policy` returns and keeps no
//! per-object state (kube-rs/kube#1916), so a flat delay either hammers a broken dependency or
//! makes recovery slow. Here every object (keyed by UID, falling back to namespace/name) has its
//! own attempt counter: the delay doubles with each consecutive failure up to a cap, gets random
//! jitter so many objects failing together do not retry in lockstep, and is forgotten on the
//! first success.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use rand::Rng;

/// The shape of the retry schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffPolicy {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Upper bound of the delay (before jitter is applied).
    pub max: Duration,
    /// Growth per consecutive failure.
    pub factor: f64,
    /// Fraction of the delay that is randomised: 0.1 means the delay lands in ±10% of the
    /// nominal value. Zero makes the schedule deterministic.
    pub jitter: f64,
}

impl Default for BackoffPolicy {
    /// 5 s, 10 s, 20 s … capped at 5 min, ±10%: quick enough for blips, gentle on outages.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(300),
            factor: 2.0,
            jitter: 0.1,
        }
    }
}

impl BackoffPolicy {
    /// The nominal (jitter-free) delay before retry number `attempt` (1 = first failure).
    pub fn nominal_delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let seconds = self.initial.as_secs_f64() * self.factor.max(1.0).powi(exponent);
        // `min` before converting: a huge exponent gives inf, which `from_secs_f64` rejects.
        Duration::from_secs_f64(seconds.min(self.max.as_secs_f64()).max(0.0))
    }

    /// The delay before retry number `attempt`, with jitter drawn from `unit_random` (a value in
    /// `[0, 1)`; passed in so the schedule is testable without randomness).
    pub fn delay(&self, attempt: u32, unit_random: f64) -> Duration {
        let nominal = self.nominal_delay(attempt).as_secs_f64();
        let jitter = self.jitter.clamp(0.0, 1.0);
        let spread = (unit_random.clamp(0.0, 1.0) * 2.0 - 1.0) * jitter;
        Duration::from_secs_f64((nominal * (1.0 + spread)).max(0.0))
    }
}

struct Entry {
    attempts: u32,
    last_failure: Instant,
}

/// Attempt counters of all objects of one controller.
///
/// Entries are removed on success and on deletion; entries of objects that vanished while
/// failing are pruned once they are older than a few maximum delays, so the map cannot grow
/// without bound.
pub struct ObjectBackoff {
    policy: BackoffPolicy,
    entries: Mutex<HashMap<String, Entry>>,
}

impl ObjectBackoff {
    /// An empty set of counters following `policy`.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The policy in use.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }

    /// Records one more failure of `key` and returns how long to wait before the next attempt.
    pub fn next_delay(&self, key: &str) -> Duration {
        let now = Instant::now();
        let attempts = {
            let mut entries = self.lock();
            let stale_after = self.policy.max.saturating_mul(4);
            entries.retain(|_, entry| now.duration_since(entry.last_failure) < stale_after);
            let entry = entries.entry(key.to_owned()).or_insert(Entry {
                attempts: 0,
                last_failure: now,
            });
            entry.attempts = entry.attempts.saturating_add(1);
            entry.last_failure = now;
            entry.attempts
        };
        self.policy.delay(attempts, rand::rng().random::<f64>())
    }

    /// How many consecutive failures `key` has had.
    pub fn attempts(&self, key: &str) -> u32 {
        self.lock().get(key).map_or(0, |entry| entry.attempts)
    }

    /// Forgets `key`: the next failure starts again at the initial delay.
    pub fn reset(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent (every update is a
        // single insert/remove), so a poisoned lock is safe to keep using.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BackoffPolicy {
        BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
            factor: 2.0,
            jitter: 0.0,
        }
    }

    #[test]
    fn nominal_schedule_doubles_and_caps() {
        let delays: Vec<u64> = (1..=6)
            .map(|n| policy().nominal_delay(n).as_secs())
            .collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        assert_eq!(policy().nominal_delay(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let policy = BackoffPolicy {
            jitter: 0.2,
            ..policy()
        };
        let close = |a: Duration, b: f64| (a.as_secs_f64() - b).abs() < 1e-6;
        assert!(close(policy.delay(3, 0.0), 3.2));
        assert!(close(policy.delay(3, 0.5), 4.0));
        assert!(policy.delay(3, 0.999_999).as_secs_f64() <= 4.8);
    }

    #[test]
    fn counters_are_per_object_and_reset_on_success() {
        let backoff = ObjectBackoff::new(policy());
        assert_eq!(backoff.next_delay("a"), Duration::from_secs(1));
        assert_eq!(backoff.next_delay("a"), Duration::from_secs(2));
        assert_eq!(backoff.next_delay("b"), Duration::from_secs(1));
        assert_eq!(backoff.attempts("a"), 2);
        backoff.reset("a");
        assert_eq!(backoff.attempts("a"), 0);
        assert_eq!(backoff.next_delay("a"), Duration::from_secs(1));
    }
}
