//! Waiting for a condition with a deadline: what tests do instead of sleeping for a fixed time.

use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

/// How often [`eventually`] looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `check` every 100 ms until it returns `Some(value)` and returns that value, or fails
/// once `timeout` has passed, naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_and_times_out_naming_what() {
        let mut calls = 0;
        let value = eventually("the third call", Duration::from_secs(5), || {
            calls += 1;
            let done = calls == 3;
            async move { done.then_some(calls) }
        })
        .await
        .unwrap();
        assert_eq!(value, 3);
        let error = eventually("never", Duration::from_millis(250), || async { None::<()> })
            .await
            .unwrap_err();
        assert!(error.to_string().contains("waiting for never"), "{error}");
    }
}
