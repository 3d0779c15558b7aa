//! How long to wait between two looks at a snapshot that is still `creating`: exponential
//! backoff from [`FIRST_DELAY`] doubling up to [`MAX_DELAY`], never past the deadline. RDS
//! snapshots take minutes; looking every 30 s at most keeps far under the API's rate limits,
//! and starting at 2 s keeps small ones quick.

use std::time::Duration;

/// The first wait.
pub const FIRST_DELAY: Duration = Duration::from_secs(2);
/// The longest wait.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// The wait after `previous` (None before the first), cut to `remaining` (the time left until
/// the deadline).
pub fn next_delay(previous: Option<Duration>, remaining: Duration) -> Duration {
    let delay = previous.map_or(FIRST_DELAY, |previous| (previous * 2).min(MAX_DELAY));
    delay.min(remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_never_pass_the_deadline() {
        let hour = Duration::from_secs(3600);
        let mut delay = None;
        let mut seen = Vec::new();
        for _ in 0..7 {
            let next = next_delay(delay, hour);
            seen.push(next.as_secs());
            delay = Some(next);
        }
        assert_eq!(seen, [2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(
            next_delay(Some(Duration::from_secs(16)), Duration::from_millis(700)),
            Duration::from_millis(700)
        );
        assert_eq!(next_delay(None, Duration::ZERO), Duration::ZERO);
    }
}
