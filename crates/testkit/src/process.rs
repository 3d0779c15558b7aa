//! A real service process started for tests: its output goes to a log file, it is stopped when
//! dropped, and a watchdog stops it even when the test binary exits without running destructors
//! (a control plane shared through a `static` is never dropped).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running service process.
pub struct ServiceProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
    watchdog: Option<Child>,
}

impl ServiceProcess {
    /// Starts `command` with stdout and stderr appended to `<log_dir>/<name>.log`. When this test
    /// process exits, a watchdog sends the service SIGTERM, then SIGKILL, and removes
    /// `remove_on_exit` (the service's temp dir) if given.
    pub fn spawn(
        name: &str,
        mut command: Command,
        log_dir: &Path,
        remove_on_exit: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let log_path = log_dir.join(format!("{name}.log"));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        let watchdog = spawn_watchdog(child.id(), remove_on_exit).ok();
        Ok(Self {
            name: name.to_owned(),
            child,
            log_path,
            watchdog,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The service's name, as given to `spawn`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where its output goes.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of its log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        read_log_tail(&self.log_path, lines)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Fails with the log tail when the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "{} exited ({status}); last log lines:\n{}",
                self.name,
                self.log_tail(30)
            );
        }
        Ok(())
    }

    /// Kills the process at once with SIGKILL, as a crash would (failure-injection tests).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process: SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if !self.is_running() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// The last `lines` lines of the log at `path`; empty when it cannot be read (a log tail only
/// decorates an error or a test's output, so it must never fail itself).
pub(crate) fn read_log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A small shell loop, in its own session so a Ctrl-C to the test does not kill it first,
/// that waits for this test process to end and then stops `pid` and removes `dir`.
fn spawn_watchdog(pid: u32, dir: Option<&Path>) -> anyhow::Result<Child> {
    let script = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 1; done
        kill -TERM "$2" 2>/dev/null
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$2" 2>/dev/null || break; sleep 1; done
        kill -KILL "$2" 2>/dev/null
        if [ -n "$3" ]; then rm -rf "$3"; fi
    "#;
    let dir = dir.map(|d| d.display().to_string()).unwrap_or_default();
    Ok(Command::new("setsid")
        .args(["sh", "-c", script, "watchdog"])
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

/// Polls `check` until it returns `Ok(true)` or `timeout` passes; the error names `what`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    while Instant::now() < deadline {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match last_error {
        Some(error) => {
            Err(error.context(format!("timed out after {timeout:?} waiting for {what}")))
        }
        None => bail!("timed out after {timeout:?} waiting for {what}"),
    }
}
