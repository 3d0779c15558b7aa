//! Graceful shutdown on SIGTERM (what the kubelet sends) and SIGINT (Ctrl+C).
//!
//! One [`CancellationToken`] is the process-wide "stop" signal: controllers stop taking new work
//! and finish the reconciles in flight, the leader releases its Lease, the admin server stops.
//! A second signal exits at once, for when a reconcile hangs.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGTERM or SIGINT and exits the process on the second.
/// Returns an error if the signal handlers cannot be installed.
pub fn cancel_on_signal(token: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down gracefully"),
            _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down gracefully"),
        }
        token.cancel();
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::warn!("second signal received, exiting without waiting for reconciles");
        std::process::exit(130);
    });
    Ok(())
}
