//! The time of day the operators decide by, injectable so that tests can move it.
//!
//! Schedules (the next cron slot), condition `lastTransitionTime` and every "how long ago"
//! decision read the time through a [`Clock`]: [`SystemClock`] in production, a [`ManualClock`]
//! in tests. A test hands the operator a `ManualClock`
//! ([`Operator::clock`](crate::Operator::clock)), moves it forward and wakes the reconciles with
//! a [`Trigger`](crate::trigger::Trigger); a schedule crossing midnight or a DST change is then
//! tested in milliseconds, without waiting.
//!
//! Timers that only pace work (per-object backoff, requeue delays, Lease renewals) stay on
//! tokio's monotonic clock: they measure waiting, not the time of day.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

/// A source of the current time (UTC).
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// A clock as the runtime and operators share it.
pub type SharedClock = Arc<dyn Clock>;

/// The machine's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until the test moves it. Clones share one time, so the test keeps
/// one clone and gives another to the operator.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock to `at` (backwards too: a test may replay a DST fall-back).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.lock() = at;
    }

    /// Moves the clock by `by` (negative moves it back) and returns the new time.
    pub fn advance(&self, by: TimeDelta) -> DateTime<Utc> {
        let mut now = self.lock();
        *now = now.checked_add_signed(by).unwrap_or(*now);
        *now
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // A single value is replaced under the lock; a poisoned lock still holds a valid time.
        self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let clock = ManualClock::new(start);
        let shared: SharedClock = Arc::new(clock.clone());
        assert_eq!(shared.now(), start);
        assert_eq!(
            clock.advance(TimeDelta::minutes(90)),
            start + TimeDelta::minutes(90)
        );
        assert_eq!(shared.now(), start + TimeDelta::minutes(90));
        clock.advance(TimeDelta::hours(-2));
        assert_eq!(shared.now(), start - TimeDelta::minutes(30));
        clock.set(start);
        assert_eq!(shared.now(), start);
    }

    #[test]
    fn system_clock_is_close_to_now() {
        let before = Utc::now();
        let read = SystemClock.now();
        assert!(read >= before && read <= Utc::now());
    }
}
