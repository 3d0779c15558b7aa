//! A real Redis 7 server (Debian `redis-server`) in a temporary directory: standalone, or a
//! replica of another one. No persistence unless a test loads an RDB at start.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use super::lifecycle::{ManagedProcess, lifecycle_methods, start_on_free_port};
use super::{HOST, run_output};
use crate::process::wait_until;
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
    process: ManagedProcess,
    port: u16,
    options: RedisOptions,
    server: PathBuf,
    cli: PathBuf,
}

lifecycle_methods!(Redis);

impl Redis {
    /// Starts a standalone server without a password.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(RedisOptions::default()).await
    }

    /// Starts a server as `options` say.
    pub async fn start_with(options: RedisOptions) -> anyhow::Result<Self> {
        let server = system_binary("redis-server", &[], "redis-server")?;
        let cli = system_binary("redis-cli", &[], "redis-tools")?;
        let process = ManagedProcess::new("redis", "redis")?;
        if let Some(rdb) = &options.load_rdb {
            std::fs::copy(rdb, process.dir().join("dump.rdb"))
                .with_context(|| format!("copying {} in", rdb.display()))?;
        }
        let mut redis = Self {
            process,
            port: 0,
            options,
            server,
            cli,
        };
        start_on_free_port(async |port| {
            redis.port = port;
            redis.spawn_and_wait().await
        })
        .await?;
        Ok(redis)
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
        let dir = self.process.dir();
        command
            .current_dir(dir)
            .args(["--port", &self.port.to_string(), "--bind", HOST])
            // No persistence: a stop writes nothing, and a restart loads only a `dump.rdb`
            // a test put in the directory.
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
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
        let process = self
            .process
            .spawn_ready(command, "PING", || async {
                let reply = self.cli(&["PING"]).await;
                Ok(reply.is_ok_and(|out| out.trim() == "PONG"))
            })
            .await?;
        self.process.adopt(process);
        Ok(())
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

    /// Starts it again on the same port and directory (data is not kept: no persistence,
    /// unless a `dump.rdb` was put in [`Self::dir`], which it then loads).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.process.stop();
        self.spawn_and_wait().await.context("restarting redis")
    }
}
