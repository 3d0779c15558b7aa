//! Progress of a long transfer: counters the pipeline bumps, and a reporter that prints bytes,
//! rate and ETA (when the total is known) to stderr — only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Bytes done so far, the total when known, and the phase of the run they belong to: the
/// progress sink every engine action reports into (see [`crate::engine`]). A caller samples it
/// when it likes (the CLI's terminal reporter every half second, the operator when it writes a
/// status); the pipeline only bumps atomics, so reporting costs it nothing.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
    phase: std::sync::Mutex<&'static str>,
}

impl Progress {
    /// A fresh counter, shared between the pipeline and a reporter.
    pub fn new() -> Arc<Self> {
        Arc::new(Progress::default())
    }

    /// Adds finished bytes.
    pub fn add(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Resets the counter for a new phase, with its total (0 = unknown).
    pub fn start_phase(&self, total: u64) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    /// Names the phase the following bytes belong to (`backup`, `verify`, `restore`, `drill`).
    pub fn set_phase(&self, phase: &'static str) {
        if let Ok(mut current) = self.phase.lock() {
            *current = phase;
        }
    }

    /// The current phase; empty before any was set.
    pub fn phase(&self) -> &'static str {
        self.phase.lock().map_or("", |phase| *phase)
    }

    /// The total of the current phase in bytes, when known.
    pub fn total_bytes(&self) -> Option<u64> {
        self.total()
    }

    /// Bytes done.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    fn total(&self) -> Option<u64> {
        Some(self.total.load(Ordering::Relaxed)).filter(|total| *total > 0)
    }
}

/// Formats a byte count for people.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn line(label: &str, progress: &Progress, elapsed: Duration) -> String {
    // The engine names its phases (a two-pass restore verifies, then restores).
    let label = match progress.phase() {
        "" => label,
        phase => phase,
    };
    let done = progress.done();
    let seconds = elapsed.as_secs_f64().max(0.001);
    let rate = done as f64 / seconds;
    let mut text = format!(
        "{label}: {}  {:.1} MB/s",
        human_bytes(done),
        rate / 1_000_000.0
    );
    if let Some(total) = progress.total() {
        let percent = (done as f64 / total as f64 * 100.0).min(100.0);
        text.push_str(&format!("  {percent:.0}% of {}", human_bytes(total)));
        if rate > 0.0 && total > done {
            let eta = ((total - done) as f64 / rate) as u64;
            text.push_str(&format!("  ETA {}:{:02}", eta / 60, eta % 60));
        }
    }
    text
}

/// Prints progress to stderr every half second until `stop` is cancelled, if stderr is a
/// terminal; does nothing otherwise (logs and JSON output stay clean). The line is labelled
/// with the progress' phase, or `label` while none is set.
pub fn spawn_reporter(
    label: &'static str,
    progress: Arc<Progress>,
    stop: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    Some(tokio::spawn(async move {
        let started = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = ticker.tick() => {
                    let mut stderr = std::io::stderr().lock();
                    let _ = write!(stderr, "\r\x1b[2K{}", line(label, &progress, started.elapsed()));
                    let _ = stderr.flush();
                }
            }
        }
        let _ = writeln!(
            std::io::stderr(),
            "\r\x1b[2K{}",
            line(label, &progress, started.elapsed())
        );
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_show_rate_and_eta_when_the_total_is_known() {
        let progress = Progress::new();
        progress.start_phase(100_000_000);
        progress.add(50_000_000);
        let text = line("restore", &progress, Duration::from_secs(1));
        assert!(text.contains("47.7 MiB"), "{text}");
        assert!(text.contains("50.0 MB/s"), "{text}");
        assert!(text.contains("50% of"), "{text}");
        assert!(text.contains("ETA 0:01"), "{text}");
        progress.start_phase(0);
        assert!(!line("backup", &progress, Duration::from_secs(1)).contains("ETA"));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
