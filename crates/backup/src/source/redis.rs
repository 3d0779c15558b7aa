//! Redis: an RDB snapshot streamed by `redis-cli --rdb -` (Redis 7's redis-cli writes the
//! replication payload to stdout when the file name is `-`), restored by writing the RDB into
//! a data directory that a fresh server loads at start.
//!
//! Why `redis-cli` rather than speaking SYNC ourselves: it already handles the replication
//! handshake (`REPLCONF capa eof`, `rdb-only`), both payload framings (length-prefixed and
//! diskless EOF-marker) and ACL logins, and it is in the same package as the server. The
//! password reaches it through `REDISCLI_AUTH`, never argv.
//!
//! Restore: a running server cannot be made to load a file over the network, so the RDB is
//! written to `<dataDir>/<dbFilename>` (through a temporary name, renamed by the commit step
//! once the whole stream was verified) and a server started there loads it. [`RedisScratchServer`] does that for drills and tests:
//! a private server on a Unix socket, no TCP port, no persistence of its own.
//!
//! Key counts: the sums of `keys=` and `expires=` over all databases in `INFO keyspace`, taken
//! just before the snapshot. A Redis under writes can differ by what changed in that instant;
//! keys with an expiry may also have been removed in it (see `drill::compare_counts`). The
//! source's `databases` setting is recorded too: a snapshot loads only where it is as large.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use super::credentials::PasswordSource;
use super::process::{Tool, find_tool, tool_version};
use super::staged_file::{ExpectedStart, stage_file};
use super::{
    Engine, ObjectCounts, RedisKeyCounts, RestoreStream, SourceError, SourceInfo, StartedDump,
};

mod engine;

/// How to reach a Redis server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisConfig {
    /// Host name or IP address (TCP), or a Unix socket path (starts with `/`).
    pub host: String,
    /// TCP port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// ACL user name; `None` for the default user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Where the password comes from.
    #[serde(default)]
    pub password: PasswordSource,
    /// Where `redis-cli` and `redis-server` live; default PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<PathBuf>,
}

fn default_port() -> u16 {
    6379
}

/// Where a Redis restore writes the RDB.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisRestoreOptions {
    /// The data directory of the server that will load the snapshot (created if missing).
    pub data_dir: PathBuf,
    /// The RDB file name the server loads (its `dbfilename`).
    #[serde(default = "default_dbfilename")]
    pub dbfilename: String,
    /// Replace an existing RDB file.
    #[serde(default)]
    pub overwrite: bool,
    /// Where `redis-server` lives for counting keys of the restored snapshot; default PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<PathBuf>,
    /// The source's `databases` setting (from the manifest): a server loading the snapshot
    /// needs at least as many. `None`: the server's default (16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databases: Option<u32>,
}

fn default_dbfilename() -> String {
    "dump.rdb".to_owned()
}

/// A Redis server as a backup source.
#[derive(Clone, Debug)]
pub struct RedisSource {
    config: RedisConfig,
}

impl RedisSource {
    /// A source for `config`. Nothing is contacted until a method is called.
    pub fn new(config: RedisConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The server version and the client tool's version.
    pub async fn info(&self) -> Result<SourceInfo, SourceError> {
        let text = self.cli(&["INFO", "server"]).await?;
        let server_version = info_field(&text, "redis_version").unwrap_or_default();
        let cli = self.cli_path();
        let mut tool_versions = std::collections::BTreeMap::new();
        tool_versions.insert(
            "redis-cli".to_owned(),
            tool_version(Engine::Redis, "redis-cli", &cli).await?,
        );
        let mut settings = std::collections::BTreeMap::new();
        // CONFIG may be renamed or denied to this user: then nothing is recorded and a
        // scratch server uses its default.
        if let Ok(reply) = self.cli(&["CONFIG", "GET", "databases"]).await
            && let Some(databases) = config_value(&reply, "databases")
        {
            settings.insert("databases".to_owned(), databases);
        }
        Ok(SourceInfo {
            engine: Engine::Redis,
            server_version,
            tool_versions,
            settings,
        })
    }

    /// The number of keys in all logical databases.
    pub async fn count_keys(&self) -> Result<u64, SourceError> {
        Ok(keyspace_keys(&self.cli(&["INFO", "keyspace"]).await?).keys)
    }

    /// Keys in all logical databases, and how many carry an expiry.
    pub async fn count_key_kinds(&self) -> Result<RedisKeyCounts, SourceError> {
        Ok(keyspace_keys(&self.cli(&["INFO", "keyspace"]).await?))
    }

    /// Starts `redis-cli --rdb -`: the server forks and streams an RDB snapshot.
    pub async fn dump(&self) -> Result<StartedDump, SourceError> {
        let info = self.info().await?;
        let keys = self.count_key_kinds().await?;
        let mut tool = self.tool()?;
        tool.args(["--rdb", "-"]);
        let stream = tool.spawn_dump()?;
        Ok(StartedDump {
            info,
            databases: Vec::new(),
            stream,
            counts: Box::pin(async move { Ok(ObjectCounts::RedisKeys(keys)) }),
            properties: None,
        })
    }

    /// Writes an RDB into `options.data_dir` (see the module doc); refuses an existing file
    /// without `overwrite`.
    pub async fn restore(
        &self,
        options: &RedisRestoreOptions,
    ) -> Result<RestoreStream, SourceError> {
        restore_to_data_dir(options).await
    }

    fn cli_path(&self) -> PathBuf {
        find_tool("redis-cli", self.config.bin_dir.as_deref(), &[])
    }

    /// `redis-cli` connected to the server, the password in `REDISCLI_AUTH`.
    fn tool(&self) -> Result<Tool, SourceError> {
        let password = self.config.password.resolve()?;
        let mut tool = Tool::new(Engine::Redis, "redis-cli", &self.cli_path());
        if self.config.host.starts_with('/') {
            tool.arg("-s").arg(&self.config.host);
        } else {
            tool.arg("-h")
                .arg(&self.config.host)
                .arg("-p")
                .arg(self.config.port.to_string());
        }
        if let Some(user) = &self.config.username {
            tool.arg("--user").arg(user);
        }
        tool.arg("--no-auth-warning").env_remove("REDISCLI_AUTH");
        if let Some(password) = &password {
            tool.env("REDISCLI_AUTH", password.expose());
        }
        tool.secret(password);
        Ok(tool)
    }

    /// Runs one command; redis-cli exits 0 even on a server error reply, so those are checked
    /// here.
    async fn cli(&self, args: &[&str]) -> Result<String, SourceError> {
        let mut tool = self.tool()?;
        tool.args(args.iter().copied());
        let text = String::from_utf8_lossy(&tool.output(None).await?).into_owned();
        reply_error(&text)?;
        Ok(text)
    }
}

/// Writes the RDB to a temporary name in the data dir; the commit step renames it into place
/// after checking that it starts like an RDB (see [`super::staged_file`]).
pub async fn restore_to_data_dir(
    options: &RedisRestoreOptions,
) -> Result<RestoreStream, SourceError> {
    let target = options.data_dir.join(&options.dbfilename);
    let (file, staged) = stage_file(
        &target,
        options.overwrite,
        Some(ExpectedStart {
            magic: b"REDIS",
            min_len: 9,
            what: "an RDB snapshot",
        }),
    )
    .await?;
    Ok(RestoreStream {
        writer: Box::pin(file),
        completion: Box::pin(async { Ok(()) }),
        staged,
    })
}

/// Loads the restored RDB into a scratch server and counts its keys (what a drill compares).
/// The server loads it as a replica does — keeping keys whose expiry has passed since the
/// snapshot, which a primary would drop while loading — so the count is the snapshot's own,
/// however long after the dump the drill runs.
pub async fn count_keys_in_data_dir(
    options: &RedisRestoreOptions,
) -> Result<ObjectCounts, SourceError> {
    let mut server = RedisScratchServer::start_with(
        &options.data_dir,
        &options.dbfilename,
        options.bin_dir.as_deref(),
        ScratchOptions {
            databases: options.databases,
            keep_expired_keys: true,
        },
    )
    .await?;
    let keys = server.count_key_kinds().await;
    server.stop().await;
    Ok(ObjectCounts::RedisKeys(keys?))
}

/// How a scratch server is set up beyond its data directory.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScratchOptions {
    /// The `databases` setting (at least the source's); `None` for the default 16.
    pub databases: Option<u32>,
    /// Load as a replica: keys whose expiry has passed are loaded (a primary skips them), and
    /// nothing expires while the server runs. Its replication source is an address nothing
    /// listens on, so it never syncs (which would empty it).
    pub keep_expired_keys: bool,
}

/// A private `redis-server` that loads an RDB from a data directory: Unix socket only (in a
/// temporary directory, since socket paths are limited to ~100 bytes), no saving, debug
/// commands allowed locally (for `DEBUG DIGEST` comparisons). Killed when dropped.
pub struct RedisScratchServer {
    child: Child,
    socket: PathBuf,
    cli: PathBuf,
    _socket_dir: tempfile::TempDir,
}

impl RedisScratchServer {
    /// Starts the server and waits until the snapshot is loaded.
    pub async fn start(
        data_dir: &Path,
        dbfilename: &str,
        bin_dir: Option<&Path>,
    ) -> Result<Self, SourceError> {
        Self::start_with(data_dir, dbfilename, bin_dir, ScratchOptions::default()).await
    }

    /// [`Self::start`] with [`ScratchOptions`].
    pub async fn start_with(
        data_dir: &Path,
        dbfilename: &str,
        bin_dir: Option<&Path>,
        options: ScratchOptions,
    ) -> Result<Self, SourceError> {
        let socket_dir = tempfile::Builder::new()
            .prefix("vertice-redis-")
            .tempdir()?;
        let socket = socket_dir.path().join("redis.sock");
        let server = find_tool("redis-server", bin_dir, &[]);
        let cli = find_tool("redis-cli", bin_dir, &[]);
        let mut command = Command::new(&server);
        command
            .arg("--port")
            .arg("0")
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--unixsocketperm")
            .arg("700")
            .arg("--dir")
            .arg(data_dir)
            .arg("--dbfilename")
            .arg(dbfilename)
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "local",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(databases) = options.databases {
            command
                .arg("--databases")
                .arg(databases.max(16).to_string());
        }
        if options.keep_expired_keys {
            // Port 1 (tcpmux) on the loopback: nothing a test or a pod listens on; the
            // replica retries in the background and keeps serving its loaded data.
            command.args([
                "--replicaof",
                "127.0.0.1",
                "1",
                "--replica-read-only",
                "yes",
            ]);
        }
        let child = command.spawn().map_err(|error| SourceError::Tool {
            tool: "redis-server".to_owned(),
            message: format!(
                "cannot start {}: {error}; install redis-server (Debian: redis-server) or set binDir",
                server.display()
            ),
        })?;
        let mut scratch = Self {
            child,
            socket,
            cli,
            _socket_dir: socket_dir,
        };
        scratch.wait_loaded().await?;
        Ok(scratch)
    }

    /// The Unix socket it listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Runs a command through `redis-cli` and returns the reply text.
    pub async fn cli(&self, args: &[&str]) -> Result<String, SourceError> {
        let mut tool = Tool::new(Engine::Redis, "redis-cli", &self.cli);
        tool.arg("-s").arg(&self.socket).args(args.iter().copied());
        let text = String::from_utf8_lossy(&tool.output(None).await?).into_owned();
        reply_error(&text)?;
        Ok(text)
    }

    /// Keys in all databases.
    pub async fn count_keys(&self) -> Result<u64, SourceError> {
        Ok(self.count_key_kinds().await?.keys)
    }

    /// Keys in all databases, and how many carry an expiry.
    pub async fn count_key_kinds(&self) -> Result<RedisKeyCounts, SourceError> {
        Ok(keyspace_keys(&self.cli(&["INFO", "keyspace"]).await?))
    }

    /// `DEBUG DIGEST`: one hash of the whole dataset, equal on two servers with equal data.
    pub async fn digest(&self) -> Result<String, SourceError> {
        Ok(self.cli(&["DEBUG", "DIGEST"]).await?.trim().to_owned())
    }

    /// Stops the server without saving.
    pub async fn stop(&mut self) {
        let _ = self.cli(&["SHUTDOWN", "NOSAVE"]).await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    async fn wait_loaded(&mut self) -> Result<(), SourceError> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut log = String::new();
                if let Some(mut stdout) = self.child.stdout.take() {
                    use tokio::io::AsyncReadExt;
                    let mut bytes = Vec::new();
                    let _ = stdout.read_to_end(&mut bytes).await;
                    log = String::from_utf8_lossy(&bytes).into_owned();
                }
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(SourceError::Tool {
                    tool: "redis-server".to_owned(),
                    message: format!(
                        "exited with {status} while loading the snapshot: {}",
                        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                    ),
                });
            }
            if self.socket.exists()
                && let Ok(text) = self.cli(&["INFO", "persistence"]).await
                && info_field(&text, "loading").as_deref() == Some("0")
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill().await;
                return Err(SourceError::Tool {
                    tool: "redis-server".to_owned(),
                    message: "did not finish loading the snapshot within 120 s".to_owned(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A server error reply printed by redis-cli (it still exits 0 for those).
fn reply_error(text: &str) -> Result<(), SourceError> {
    let first = text.lines().next().unwrap_or_default();
    for prefix in ["NOAUTH", "WRONGPASS", "ERR", "LOADING", "NOPERM", "MISCONF"] {
        if first.starts_with(prefix) || first.starts_with(&format!("(error) {prefix}")) {
            let connect = ["NOAUTH", "WRONGPASS"].contains(&prefix);
            return Err(if connect {
                SourceError::Connect {
                    engine: Engine::Redis,
                    message: first.to_owned(),
                }
            } else {
                SourceError::Tool {
                    tool: "redis-cli".to_owned(),
                    message: first.to_owned(),
                }
            });
        }
    }
    Ok(())
}

/// A `name:value` field of an INFO reply.
fn info_field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (key, value) = line.trim_end_matches('\r').split_once(':')?;
        (key == name).then(|| value.to_owned())
    })
}

/// Sums of `keys=` and `expires=` over the `dbN:keys=…,expires=…` lines of `INFO keyspace`.
fn keyspace_keys(text: &str) -> RedisKeyCounts {
    let field_sum = |name: &str| -> u64 {
        text.lines()
            .filter(|line| line.starts_with("db"))
            .filter_map(|line| {
                let (_, fields) = line.trim_end_matches('\r').split_once(':')?;
                fields
                    .split(',')
                    .find_map(|field| field.strip_prefix(name))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .sum()
    };
    RedisKeyCounts {
        keys: field_sum("keys="),
        expiring: field_sum("expires="),
    }
}

/// The value of `name` in a `CONFIG GET` reply (`name` and value on alternate lines).
fn config_value(reply: &str, name: &str) -> Option<String> {
    let mut lines = reply.lines().map(|line| line.trim_end_matches('\r'));
    while let Some(key) = lines.next() {
        let value = lines.next()?;
        if key == name {
            return Some(value.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_sums_all_databases() {
        let text =
            "# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\ndb5:keys=10,expires=0,avg_ttl=0\r\n";
        assert_eq!(
            keyspace_keys(text),
            RedisKeyCounts {
                keys: 13,
                expiring: 1
            }
        );
        assert_eq!(keyspace_keys("# Keyspace\r\n").keys, 0);
        assert_eq!(
            config_value("databases\n32\n", "databases").as_deref(),
            Some("32")
        );
    }

    #[test]
    fn info_fields() {
        assert_eq!(
            info_field("# Server\r\nredis_version:7.0.15\r\n", "redis_version").as_deref(),
            Some("7.0.15")
        );
    }

    #[test]
    fn error_replies_are_errors() {
        assert!(matches!(
            reply_error("NOAUTH Authentication required."),
            Err(SourceError::Connect { .. })
        ));
        assert!(reply_error("# Server\nredis_version:7").is_ok());
    }
}
