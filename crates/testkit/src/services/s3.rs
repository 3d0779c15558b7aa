//! A real S3-compatible server: `s3s-fs` (crates.io, built by `cargo xtask tools`), which
//! stores objects as files under a root directory and enforces SigV4 with one access key.
//! Path-style addressing only (no `--domain`), any region name is accepted.
//!
//! s3s-fs 0.14.1 keeps a bucket as a directory under its root, so [`S3Server::create_bucket`]
//! makes that directory (the same thing its CreateBucket does) instead of signing a request.
//! In-progress multipart uploads are `.upload-<id>.json` files in the root, which lets a test
//! check that an interrupted upload was aborted.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use tempfile::TempDir;

use super::{
    HOST, PORT_ATTEMPTS, STOP_GRACE, http_answers, port_was_taken, random_secret, temp_dir,
    wait_ready,
};
use crate::ports::free_port;
use crate::process::ServiceProcess;
use crate::tools::tool_binary;

/// The region clients should sign for (s3s-fs accepts any).
pub const REGION: &str = "us-east-1";

/// A running s3s-fs server; stopped and its directory removed on drop.
pub struct S3Server {
    process: Option<ServiceProcess>,
    port: u16,
    access_key: String,
    secret_key: String,
    binary: PathBuf,
    root: PathBuf,
    // Last: removed after the process is gone.
    dir: TempDir,
}

impl S3Server {
    /// Starts a server with a random access key and secret key and no buckets.
    pub async fn start() -> anyhow::Result<Self> {
        let binary = tool_binary("s3s-fs")?;
        let dir = temp_dir("s3")?;
        let root = dir.path().join("root");
        std::fs::create_dir(&root).context("creating the s3s-fs root")?;
        let mut server = Self {
            process: None,
            port: 0,
            access_key: format!("AK{}", random_secret(18).to_uppercase()),
            secret_key: random_secret(40),
            binary,
            root,
            dir,
        };
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port()?;
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                Err(error) if port_was_taken(&error) => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("s3s-fs did not start")))
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(&self.binary);
        command
            .args(["--host", HOST, "--port", &self.port.to_string()])
            // s3s-fs takes keys only on argv; they are throwaway per-run test keys.
            .args(["--access-key", &self.access_key])
            .args(["--secret-key", &self.secret_key])
            .arg(&self.root)
            .env("RUST_LOG", "s3s_fs=info,s3s=info");
        let mut process =
            ServiceProcess::spawn("s3s-fs", command, self.dir.path(), Some(self.dir.path()))?;
        let url = self.endpoint();
        let result = wait_ready(&mut process, "an HTTP answer", || http_answers(&url)).await;
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

    /// The endpoint URL, `http://127.0.0.1:<port>` (path-style, plain HTTP).
    pub fn endpoint(&self) -> String {
        format!("http://{HOST}:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The access key id.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret access key.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The region to sign for.
    pub fn region(&self) -> &str {
        REGION
    }

    /// The directory the server stores buckets in (one subdirectory per bucket).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates an empty bucket. Fails if it exists or the name is not a valid bucket name.
    pub fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        let valid = (3..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            bail!("`{name}` is not a valid S3 bucket name");
        }
        std::fs::create_dir(self.root.join(name)).with_context(|| format!("creating bucket {name}"))
    }

    /// Where the server keeps the bytes of `key` in `bucket` (for corruption tests).
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    /// Ids of multipart uploads that were started and neither completed nor aborted.
    pub fn pending_multipart_uploads(&self) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&self.root).context("listing the s3s-fs root")? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name
                .strip_prefix(".upload-")
                .and_then(|rest| rest.strip_suffix(".json"))
            {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Its temporary directory (data, log); removed on drop.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
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
        std::fs::read_to_string(self.dir.path().join("s3s-fs.log"))
            .map(|text| {
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            })
            .unwrap_or_default()
    }

    /// Kills the server with SIGKILL (an S3 outage in the middle of an upload).
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Stops the server (SIGTERM).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop(STOP_GRACE);
        }
    }

    /// Starts it again on the same port, keys and data (after `stop` or `kill`).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn_and_wait().await.context("restarting s3s-fs")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
