//! Servers shared by every test of one test binary (the control plane, moto): started once, on
//! first use, on a thread with a runtime of its own, so nothing in the static belongs to the
//! runtime of the test that happened to start it. A failed start is kept too: every later test
//! fails at once with the same message instead of retrying a broken start.

use std::future::Future;
use std::sync::OnceLock;

use anyhow::anyhow;

/// The value in `cell`, started by `start` (see [`on_own_runtime`]) when no test has yet.
/// Call from any number of `#[tokio::test]`s. Errors: `"{what} did not start: …"`, the same
/// message for every test of the binary.
pub async fn once<T, F, Fut>(
    cell: &'static OnceLock<Result<T, String>>,
    what: &'static str,
    start: F,
) -> anyhow::Result<&'static T>
where
    T: Send + Sync + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let result = match cell.get() {
        Some(result) => result,
        None => {
            tokio::task::spawn_blocking(move || {
                cell.get_or_init(|| on_own_runtime(what, start).map_err(|e| format!("{e:#}")))
            })
            .await?
        }
    };
    result
        .as_ref()
        .map_err(|error| anyhow!("{what} did not start: {error}"))
}

/// Runs `start` to completion on a new thread with a current-thread runtime of its own, and
/// returns its value. Blocks: call it outside a runtime or from `spawn_blocking`. Errors:
/// `start`'s, or the thread could not start or panicked (naming `what`).
pub fn on_own_runtime<T, F, Fut>(what: &str, start: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>>,
{
    std::thread::Builder::new()
        .name(format!("start {what}"))
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(start())
        })?
        .join()
        .map_err(|_| anyhow!("the thread starting {what} panicked"))?
}
