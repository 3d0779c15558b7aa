//! A real Redis 7 server (Debian `redis-server`) in a temporary directory: standalone, or a
//! replica of another one. No persistence unless a test loads an RDB at start.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use tempfile::TempDir;

use super::{HOST, PORT_ATTEMPTS, STOP_GRACE, port_was_taken, run_output, temp_dir, wait_ready};
use crate::ports::free_port;
use crate::process::{ServiceProcess, wait_until};
use crate::tools::system_binary;

/// The primary a replica follows.
#[derive(Clone, Debug)]
pub struct ReplicaOf {
    /// The primary's host.
    pub host: String,
    /// The primary's port.
    pub port: u16,
    /// The primary's password (`masterauth`), if it has one.
    pub password: Option<String>,
}

/// How to start a [`Redis`].
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    /// `requirepass`; no password when `None`.
    pub password: Option<String>,
    /// Starts it as a replica (`--replicaof`).
    pub replica_of: Option<ReplicaOf>,
    /// An RDB file copied in as `dump.rdb` before the start, so the server loads it (how a
    /// restore from an RDB snapshot is tested).
    pub load_rdb: Option<PathBuf>,
    /// Extra `redis-server` arguments, e.g. `["--maxmemory", "64mb"]`.
    pub extra_args: Vec<String>,
}

/// A running Redis server; stopped and its directory removed on drop.
pub struct Redis {
    process: Option<ServiceProcess>,
    port: u16,
    options: RedisOptions,
    server: PathBuf,
    cli: PathBuf,
    // Last: removed after the process is gone.
    dir: TempDir,
}

impl Redis {
    /// Starts a standalone server without a password.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(RedisOptions::default()).await
    }

    /// Starts a server as `options` say.
    pub async fn start_with(options: RedisOptions) -> anyhow::Result<Self> {
        let server = system_binary("redis-server", &[], "redis-server")?;
        let cli = system_binary("redis-cli", &[], "redis-tools")?;
        let dir = temp_dir("redis")?;
        if let Some(rdb) = &options.load_rdb {
            std::fs::copy(rdb, dir.path().join("dump.rdb"))
                .with_context(|| format!("copying {} in", rdb.display()))?;
        }
        let mut redis = Self {
            process: None,
            port: 0,
            options,
            server,
            cli,
            dir,
        };
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            redis.port = free_port()?;
            match redis.spawn_and_wait().await {
                Ok(()) => return Ok(redis),
                Err(error) if port_was_taken(&error) => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    /// Starts a replica of `primary`, with the primary's password as both its own
    /// `requirepass` and its `masterauth`.
    pub async fn start_replica_of(primary: &Redis) -> anyhow::Result<Self> {
        Self::start_with(RedisOptions {
            password: primary.password().map(str::to_owned),
            replica_of: Some(ReplicaOf {
                host: HOST.to_owned(),
                port: primary.port(),
                password: primary.password().map(str::to_owned),
            }),
            ..RedisOptions::default()
        })
        .await
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(&self.server);
        command
            .current_dir(self.dir.path())
            .args(["--port", &self.port.to_string(), "--bind", HOST])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--dbfilename", "dump.rdb", "--logfile", ""]);
        if let Some(password) = &self.options.password {
            // redis-server has no password file option; its argv is only visible locally and
            // this is a throwaway test server.
            command.args(["--requirepass", password]);
        }
        if let Some(primary) = &self.options.replica_of {
            command.args(["--replicaof", &primary.host, &primary.port.to_string()]);
            if let Some(password) = &primary.password {
                command.args(["--masterauth", password]);
            }
        }
        command.args(&self.options.extra_args);
        let mut process =
            ServiceProcess::spawn("redis", command, self.dir.path(), Some(self.dir.path()))?;
        let result = wait_ready(&mut process, "PING", || async {
            Ok(self
                .cli(&["PING"])
                .await
                .is_ok_and(|out| out.trim() == "PONG"))
        })
        .await;
        match result {
            Ok(()) => {
                self.process = Some(process);
                Ok(())
            }
            Err(error) => {
                process.kill();
                Err(error)
            }
        }
    }

    /// The address it listens on (`127.0.0.1`).
    pub fn host(&self) -> &str {
        HOST
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its password, if it has one.
    pub fn password(&self) -> Option<&str> {
        self.options.password.as_deref()
    }

    /// A `redis://` URL (with `:password@` when it has one).
    pub fn url(&self) -> String {
        match self.password() {
            Some(password) => format!("redis://:{password}@{HOST}:{}", self.port),
            None => format!("redis://{HOST}:{}", self.port),
        }
    }

    /// Its working directory (where `dump.rdb` lives).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `redis-cli -h 127.0.0.1 -p <port>`, the password in `REDISCLI_AUTH` (never on argv).
    pub fn redis_cli_command(&self) -> Command {
        let mut command = Command::new(&self.cli);
        command.args(["-h", HOST, "-p", &self.port.to_string()]);
        match self.password() {
            Some(password) => command.env("REDISCLI_AUTH", password),
            None => command.env_remove("REDISCLI_AUTH"),
        };
        command
    }

    /// Runs one command through the real `redis-cli` and returns its raw reply, without the
    /// trailing newline (`-e` makes an error reply a non-zero exit, hence an error here).
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = self.redis_cli_command();
        command.args(["-e", "--raw"]).args(args);
        let output = run_output(command, "redis-cli")
            .await
            .with_context(|| format!("redis-cli {}", args.first().unwrap_or(&"")))?;
        Ok(output.trim_end_matches('\n').to_owned())
    }

    /// Waits until this replica's link to its primary is up and the initial sync is done.
    pub async fn wait_for_primary_link(&self, timeout: Duration) -> anyhow::Result<()> {
        wait_until("the replica's link to its primary", timeout, || async {
            let info = self.cli(&["INFO", "replication"]).await?;
            Ok(
                info.contains("master_link_status:up")
                    && info.contains("master_sync_in_progress:0"),
            )
        })
        .await
    }

    /// The server's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServiceProcess::pid)
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(ServiceProcess::is_running)
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log"))
            .map(|text| {
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            })
            .unwrap_or_default()
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Stops the server (SIGTERM; with `--save ""` it writes nothing on the way out).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop(STOP_GRACE);
        }
    }

    /// Starts it again on the same port and directory (data is not kept: no persistence,
    /// unless a `dump.rdb` was put in [`Self::dir`], which it then loads).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn_and_wait().await.context("restarting redis")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
