//! The lifecycle every service shares: a temporary directory, at most one server process in it
//! logging to `<log name>.log`, waiting until it answers, stop and kill, restarts, and starting
//! on a free port again when another process wins the race for it. Each service builds its
//! command line and its readiness check; everything else is here, and
//! [`lifecycle_methods`] gives every service the same public methods over it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::ports::free_port;
use crate::process::{ServiceProcess, read_log_tail};

/// How long a service may take to answer after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stop waits for a clean shutdown before it kills.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How many fresh ports a start tries: `free_port` releases the port before the service binds
/// it, so another process can take it in between.
const PORT_ATTEMPTS: usize = 3;

/// How long a restart waits before it tries again.
const RESTART_PAUSE: Duration = Duration::from_millis(500);

/// A service's temporary directory and the server process running in it, if any. Dropping it
/// stops the process first, then removes the directory, so nothing is left behind.
pub(super) struct ManagedProcess {
    process: Option<ServiceProcess>,
    /// The name the process runs under: its log is `<dir>/<log_name>.log`, and errors about
    /// it name it so.
    log_name: &'static str,
    /// Sent before the SIGTERM of a stop, for a server whose SIGTERM shutdown is not the one
    /// tests want (PostgreSQL's waits for every client to disconnect).
    stop_signal: Option<&'static str>,
    // Last: dropped (removed) only after the process is gone.
    dir: TempDir,
}

impl ManagedProcess {
    /// A fresh temporary directory named after `service`, with no process yet; the process
    /// will log to `<log_name>.log` in it.
    pub(super) fn new(service: &str, log_name: &'static str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            // Named after the service so a leftover is easy to attribute.
            .prefix(&format!("vertice-{service}-"))
            .tempdir()
            .with_context(|| format!("creating a temporary directory for {service}"))?;
        Ok(Self {
            process: None,
            log_name,
            stop_signal: None,
            dir,
        })
    }

    /// Sends `signal` (e.g. "INT") before the SIGTERM whenever the process is stopped.
    pub(super) fn with_stop_signal(mut self, signal: &'static str) -> Self {
        self.stop_signal = Some(signal);
        self
    }

    /// The temporary directory.
    pub(super) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id while it runs.
    pub(super) fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServiceProcess::pid)
    }

    /// Whether the process is running.
    pub(super) fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(ServiceProcess::is_running)
    }

    /// The last `lines` lines of the log. It is read from the directory rather than from the
    /// process, so it stays readable after a stop or a kill.
    pub(super) fn log_tail(&self, lines: usize) -> String {
        let log = self.dir.path().join(format!("{}.log", self.log_name));
        read_log_tail(&log, lines)
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub(super) fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Stops the process: the stop signal if one is set, SIGTERM, then SIGKILL after
    /// [`STOP_GRACE`].
    pub(super) fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            if let Some(signal) = self.stop_signal
                && process.is_running()
            {
                send_signal(process.pid(), signal);
            }
            process.stop(STOP_GRACE);
        }
    }

    /// Spawns `command`, logging into the directory, and waits until `check` says it answers
    /// (`what` names that check in a timeout error); a process that does not answer is killed.
    /// The log is appended to, so a test reads the whole story across restarts.
    ///
    /// The process is returned rather than kept so that `check` may borrow the service that
    /// holds this; hand it to [`Self::adopt`] afterwards.
    pub(super) async fn spawn_ready<F, Fut>(
        &self,
        command: Command,
        what: &str,
        check: F,
    ) -> anyhow::Result<ServiceProcess>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<bool>>,
    {
        let dir = self.dir.path();
        // The watchdog removes the directory too if the test binary exits without dropping us.
        let mut process = ServiceProcess::spawn(self.log_name, command, dir, Some(dir))?;
        match wait_ready(&mut process, what, check).await {
            Ok(()) => Ok(process),
            Err(error) => {
                process.kill();
                Err(error)
            }
        }
    }

    /// Makes `process`, from [`Self::spawn_ready`], the one this manages.
    pub(super) fn adopt(&mut self, process: ServiceProcess) {
        self.process = Some(process);
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        // Explicitly, so the service's own stop signal is used; `dir` is removed after this.
        self.stop();
    }
}

/// Gives a service type the public lifecycle methods every service has (`dir`, `pid`,
/// `is_running`, `log_tail`, `kill`, `stop`), each delegating to the type's `process` field, a
/// [`ManagedProcess`]. A macro rather than a trait so that the methods stay inherent: the
/// tests that call them need no extra import.
macro_rules! lifecycle_methods {
    ($service:ty) => {
        impl $service {
            /// Its temporary directory (data, log); removed on drop.
            pub fn dir(&self) -> &std::path::Path {
                self.process.dir()
            }

            /// The server's PID while it runs.
            pub fn pid(&self) -> Option<u32> {
                self.process.pid()
            }

            /// Whether the server process is running.
            pub fn is_running(&mut self) -> bool {
                self.process.is_running()
            }

            /// The last `lines` lines of its log (still readable after a stop or kill).
            pub fn log_tail(&self, lines: usize) -> String {
                self.process.log_tail(lines)
            }

            /// Kills the server with SIGKILL, as a crash would (outage tests).
            pub fn kill(&mut self) {
                self.process.kill();
            }

            /// Stops the server with a clean shutdown that does not wait for clients to
            /// disconnect (SIGINT for PostgreSQL, SIGTERM for the others), then SIGKILL if it
            /// still runs after a grace period.
            pub fn stop(&mut self) {
                self.process.stop();
            }
        }
    };
}
pub(super) use lifecycle_methods;

/// Runs `spawn` (a spawn-and-wait on the port it is given) on a fresh free port, up to
/// [`PORT_ATTEMPTS`] times: `free_port` releases the port before the service binds it, so
/// another process can take it in between. Any other error is returned at once.
pub(super) async fn start_on_free_port(
    mut spawn: impl AsyncFnMut(u16) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut attempt = 1;
    loop {
        match spawn(free_port()?).await {
            Err(error) if port_was_taken(&error) && attempt < PORT_ATTEMPTS => attempt += 1,
            result => return result,
        }
    }
}

/// Runs `spawn` (a restart's spawn-and-wait) up to `attempts` times, pausing between tries,
/// for servers that refuse to start for a moment after a kill; returns the last error.
pub(super) async fn retry_restart(
    attempts: usize,
    mut spawn: impl AsyncFnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut attempt = 1;
    loop {
        match spawn().await {
            Err(_) if attempt < attempts => attempt += 1,
            result => return result,
        }
        tokio::time::sleep(RESTART_PAUSE).await;
    }
}

/// Whether a failed start looks like a lost race for the port, worth another port. Node
/// (Azurite) says `EADDRINUSE`, the others the OS's text in either case.
fn port_was_taken(error: &anyhow::Error) -> bool {
    let text = format!("{error:#}");
    text.contains("Address already in use")
        || text.contains("address already in use")
        || text.contains("EADDRINUSE")
}

/// Waits until `check` says the service answers. Fails early, with the log tail, when the
/// process exits; on timeout the error also carries the log tail.
async fn wait_ready<F, Fut>(
    process: &mut ServiceProcess,
    what: &str,
    mut check: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last_error = None;
    while Instant::now() < deadline {
        process.ensure_running()?;
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reason = last_error.map(|e| format!(": {e:#}")).unwrap_or_default();
    bail!(
        "timed out after {READY_TIMEOUT:?} waiting for {} ({what}){reason}; last log lines:\n{}",
        process.name(),
        process.log_tail(30)
    )
}

/// Sends `signal` (e.g. "INT") to `pid` through kill(1): the way to pick a shutdown mode a
/// server offers without a libc dependency.
fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
