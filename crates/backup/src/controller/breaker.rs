//! One circuit breaker per storage location (issue 7 §3 "storage down"): after a run failed
//! with an object-store error, new runs on the same location fail fast (`Failed`, reason
//! `StorageUnavailable`) without a Job, so a dead bucket does not pile up doomed Jobs. While
//! open, a run that arrives at least [`Breakers::probe_interval`] after the last probe may probe
//! the store (a cheap list); an answer closes the breaker and the run proceeds.
//!
//! Times come from the controller's clock (`Context::now`), so tests move them.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The state of one open breaker.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Open {
    /// Why it opened (the failed run's message).
    reason: String,
    /// When the store was last probed (or the breaker opened).
    last_probe: DateTime<Utc>,
}

/// What a run should do about its storage location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The breaker is closed: go on.
    Closed,
    /// Open and a probe is due: probe the store, then [`Breakers::close`] or
    /// [`Breakers::probe_failed`].
    Probe,
    /// Open, no probe due: fail fast with this reason.
    FailFast(String),
}

/// The breakers of one operator process, keyed by storage location
/// ([`storage_key`](super::resolve::storage_key)).
#[derive(Debug)]
pub struct Breakers {
    probe_interval: Duration,
    open: Mutex<HashMap<String, Open>>,
}

impl Breakers {
    /// Breakers that probe at most once per `probe_interval` (issue 7: 30 s).
    pub fn new(probe_interval: Duration) -> Self {
        Self {
            probe_interval,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The probe interval.
    pub fn probe_interval(&self) -> Duration {
        self.probe_interval
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Open>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What a run on `key` should do at `now`. A `Probe` verdict reserves the probe: others
    /// asking before the next interval fail fast.
    pub fn check(&self, key: &str, now: DateTime<Utc>) -> Verdict {
        let mut open = self.lock();
        let Some(state) = open.get_mut(key) else {
            return Verdict::Closed;
        };
        let due = chrono::Duration::from_std(self.probe_interval)
            .map(|interval| now >= state.last_probe + interval)
            .unwrap_or(true);
        if due {
            state.last_probe = now;
            Verdict::Probe
        } else {
            Verdict::FailFast(state.reason.clone())
        }
    }

    /// A run on `key` failed with a store error at `now`: open (or keep open) the breaker.
    pub fn trip(&self, key: &str, reason: &str, now: DateTime<Utc>) {
        self.lock().insert(
            key.to_owned(),
            Open {
                reason: reason.to_owned(),
                last_probe: now,
            },
        );
    }

    /// The store on `key` answered: close the breaker.
    pub fn close(&self, key: &str) {
        self.lock().remove(key);
    }

    /// The reason the breaker on `key` is open, if it is.
    pub fn reason(&self, key: &str) -> Option<String> {
        self.lock().get(key).map(|open| open.reason.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_breaker_fails_fast_and_probes_once_per_interval() {
        let breakers = Breakers::new(Duration::from_secs(30));
        let t0 = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(20000);
        assert_eq!(breakers.check("s3:a", t0), Verdict::Closed);
        breakers.trip("s3:a", "connection refused", t0);
        assert_eq!(
            breakers.check("s3:a", t0 + chrono::Duration::seconds(29)),
            Verdict::FailFast("connection refused".into())
        );
        // Another location is not affected.
        assert_eq!(breakers.check("s3:b", t0), Verdict::Closed);
        let t30 = t0 + chrono::Duration::seconds(30);
        assert_eq!(breakers.check("s3:a", t30), Verdict::Probe);
        // The probe is reserved: the next run fails fast until the next interval.
        assert!(matches!(breakers.check("s3:a", t30), Verdict::FailFast(_)));
        assert_eq!(
            breakers.check("s3:a", t30 + chrono::Duration::seconds(30)),
            Verdict::Probe
        );
        breakers.close("s3:a");
        assert_eq!(breakers.check("s3:a", t30), Verdict::Closed);
    }
}
