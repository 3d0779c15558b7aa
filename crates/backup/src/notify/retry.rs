//! How often and how long a notification is retried: exponential backoff, and the server's
//! `Retry-After` (RFC 9110 §10.2.3: seconds or an HTTP date) when it sends one.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Retries of one channel's delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (the first one included); at least 1. Default 4.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one. Default 500 ms.
    pub initial_backoff: Duration,
    /// Longest wait between attempts from backoff. Default 8 s.
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured; a longer one ends the delivery as
    /// [`super::DeliveryError::RetryAfterTooLong`]. Default 60 s.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based), from backoff alone:
    /// `initial_backoff · 2^(attempt-1)`, at most `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// The wait before the next attempt: the server's `Retry-After` if it sent one (but never
    /// less than backoff would wait), else backoff. `Err(retry_after)` when the server asks for
    /// more than `max_retry_after`.
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Result<Duration, Duration> {
        let backoff = self.backoff(attempt);
        match retry_after {
            Some(asked) if asked > self.max_retry_after => Err(asked),
            Some(asked) => Ok(asked.max(backoff)),
            None => Ok(backoff),
        }
    }

    /// [`Self::wait`] as the senders use it: a wait from backoff alone is drawn at random from
    /// its upper half, so channels that failed together (a receiver down for everyone) do not
    /// retry in lockstep; a server's `Retry-After` is kept as asked.
    pub fn jittered_wait(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
    ) -> Result<Duration, Duration> {
        let wait = self.wait(attempt, retry_after)?;
        Ok(match retry_after {
            Some(_) => wait,
            None => jitter(wait),
        })
    }
}

/// A random duration in `[wait / 2, wait]`.
pub fn jitter(wait: Duration) -> Duration {
    let half = wait / 2;
    let spread = (wait - half).as_nanos().min(u64::MAX as u128) as u64;
    half + Duration::from_nanos(rand::random_range(0..=spread))
}

/// A `Retry-After` value as a wait from `now`: delay-seconds (`120`) or an IMF-fixdate
/// (`Wed, 21 Oct 2015 07:28:00 GMT`; a date in the past is no wait). `None` when it is neither.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let policy = RetryPolicy::default();
        let waits: Vec<u64> = (1..=7)
            .map(|a| policy.backoff(a).as_millis() as u64)
            .collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_secs(8));
    }

    #[test]
    fn retry_after_wins_over_backoff_within_the_limit() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.wait(1, Some(Duration::from_secs(3))),
            Ok(Duration::from_secs(3))
        );
        // Never shorter than backoff: `Retry-After: 0` does not turn into a hot loop.
        assert_eq!(
            policy.wait(3, Some(Duration::ZERO)),
            Ok(Duration::from_secs(2))
        );
        assert_eq!(
            policy.wait(1, Some(Duration::from_secs(61))),
            Err(Duration::from_secs(61))
        );
        assert_eq!(policy.wait(2, None), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn jitter_stays_in_the_upper_half_and_varies() {
        let wait = Duration::from_millis(800);
        let draws: Vec<Duration> = (0..200).map(|_| jitter(wait)).collect();
        assert!(
            draws.iter().all(|d| *d >= wait / 2 && *d <= wait),
            "{draws:?}"
        );
        assert!(draws.iter().any(|d| *d != draws[0]), "no jitter at all");
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
        let policy = RetryPolicy::default();
        // Retry-After is honoured as asked, never shortened by jitter.
        assert_eq!(
            policy.jittered_wait(1, Some(Duration::from_secs(3))),
            Ok(Duration::from_secs(3))
        );
        assert!(
            policy
                .jittered_wait(1, Some(Duration::from_secs(600)))
                .is_err()
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .with_timezone(&Utc);
        let cases = [
            ("120", Some(120)),
            (" 0 ", Some(0)),
            ("Wed, 21 Oct 2015 07:28:30 GMT", Some(30)),
            ("Wed, 21 Oct 2015 07:27:00 GMT", Some(0)),
            ("-5", None),
            ("soon", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                parse_retry_after(value, now),
                expected.map(Duration::from_secs),
                "{value:?}"
            );
        }
    }
}
