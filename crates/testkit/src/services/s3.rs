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

use super::lifecycle::{ManagedProcess, lifecycle_methods, start_on_free_port};
use super::{HOST, http_answers, random_secret};
use crate::tools::tool_binary;

/// The region clients should sign for (s3s-fs accepts any).
pub const REGION: &str = "us-east-1";

/// A running s3s-fs server; stopped and its directory removed on drop.
pub struct S3Server {
    process: ManagedProcess,
    port: u16,
    access_key: String,
    secret_key: String,
    binary: PathBuf,
    root: PathBuf,
}

lifecycle_methods!(S3Server);

impl S3Server {
    /// Starts a server with a random access key and secret key and no buckets.
    pub async fn start() -> anyhow::Result<Self> {
        let binary = tool_binary("s3s-fs")?;
        let process = ManagedProcess::new("s3", "s3s-fs")?;
        let root = process.dir().join("root");
        std::fs::create_dir(&root).context("creating the s3s-fs root")?;
        let mut server = Self {
            process,
            port: 0,
            access_key: format!("AK{}", random_secret(18).to_uppercase()),
            secret_key: random_secret(40),
            binary,
            root,
        };
        start_on_free_port(async |port| {
            server.port = port;
            server.spawn_and_wait().await
        })
        .await?;
        Ok(server)
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
        let url = self.endpoint();
        let process = self
            .process
            .spawn_ready(command, "an HTTP answer", || http_answers(&url))
            .await?;
        self.process.adopt(process);
        Ok(())
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

    /// An AWS credentials file's text holding its keys (see [`super::aws_credentials`]).
    pub fn credentials_file(&self) -> String {
        super::aws_credentials::aws_credentials_file(&self.access_key, &self.secret_key)
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

    /// Starts it again on the same port, keys and data (after `stop` or `kill`).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.process.stop();
        self.spawn_and_wait().await.context("restarting s3s-fs")
    }
}
