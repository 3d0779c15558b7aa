//! Azurite, Microsoft's Azure Storage emulator (npm `azurite`, installed by `cargo xtask tools`),
//! blob service only, in a temporary directory.
//!
//! Azurite accepts the well-known development account `devstoreaccount1` and its published key,
//! with path-style URLs: `http://127.0.0.1:<port>/devstoreaccount1/<container>/<blob>`. Creating
//! a container needs a SharedKey-signed request (object_store cannot create containers), so
//! [`Azurite::create_container`] signs that one request itself.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::lifecycle::{ManagedProcess, lifecycle_methods, start_on_free_port};
use super::{HOST, http_answers};
use crate::tools::tool_binary;

/// The emulator's well-known account name.
pub const ACCOUNT: &str = "devstoreaccount1";
/// The emulator's well-known account key (published by Microsoft; not a secret).
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The REST API version our signed requests declare.
const API_VERSION: &str = "2021-08-06";

/// A running Azurite blob service; stopped and its directory removed on drop.
pub struct Azurite {
    process: ManagedProcess,
    port: u16,
    binary: PathBuf,
}

lifecycle_methods!(Azurite);

impl Azurite {
    /// Starts the blob service on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let binary = tool_binary("azurite-blob")?;
        let mut azurite = Self {
            process: ManagedProcess::new("azurite", "azurite")?,
            port: 0,
            binary,
        };
        start_on_free_port(async |port| {
            azurite.port = port;
            azurite.spawn_and_wait().await
        })
        .await?;
        Ok(azurite)
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let dir = self.process.dir();
        // Node's Azure Monitor telemetry in Azurite writes a folder under the temp dir; keep it
        // in the server's own directory so nothing outlives the test.
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).context("creating Azurite's temp dir")?;
        let mut command = Command::new(&self.binary);
        command
            .current_dir(dir)
            .env("TMPDIR", &tmp)
            .args(["--blobHost", HOST, "--blobPort", &self.port.to_string()])
            .arg("--location")
            .arg(dir.join("data"))
            // Clients newer than this Azurite send API versions it does not know yet.
            .arg("--skipApiVersionCheck")
            // Tolerate headers it does not implement instead of failing the request.
            .arg("--loose");
        let url = self.endpoint();
        let process = self
            .process
            .spawn_ready(command, "an HTTP answer", || http_answers(&url))
            .await?;
        self.process.adopt(process);
        Ok(())
    }

    /// The account's blob endpoint, `http://127.0.0.1:<port>/devstoreaccount1` (plain HTTP;
    /// clients must allow it). With object_store:
    /// `MicrosoftAzureBuilder::new().with_endpoint(endpoint).with_account(ACCOUNT)
    /// .with_access_key(ACCOUNT_KEY).with_container_name(c).with_allow_http(true)`.
    pub fn endpoint(&self) -> String {
        format!("http://{HOST}:{}/{ACCOUNT}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The account name (`devstoreaccount1`).
    pub fn account(&self) -> &str {
        ACCOUNT
    }

    /// The account key (base64).
    pub fn account_key(&self) -> &str {
        ACCOUNT_KEY
    }

    /// An Azure Storage connection string for this emulator.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};\
             BlobEndpoint={};",
            self.endpoint()
        )
    }

    /// Creates a container through the real Create Container API, SharedKey-signed.
    pub async fn create_container(&self, name: &str) -> anyhow::Result<()> {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        // Verb, then eleven standard headers (all empty; Content-Length is empty when 0),
        // then the canonical x-ms-* headers and the canonical resource. The resource path of a
        // path-style URL already starts with the account, and the account is prefixed again.
        let string_to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{API_VERSION}\n\
             /{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
        );
        let key = STANDARD
            .decode(ACCOUNT_KEY)
            .context("decoding the account key")?;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        let signature = STANDARD.encode(ring::hmac::sign(&key, string_to_sign.as_bytes()));
        let response = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?
            .put(format!("{}/{name}?restype=container", self.endpoint()))
            .header("x-ms-date", &date)
            .header("x-ms-version", API_VERSION)
            .header("content-length", "0")
            .header("authorization", format!("SharedKey {ACCOUNT}:{signature}"))
            .send()
            .await
            .context("creating an Azurite container")?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            bail!("creating container {name} on Azurite failed: {status}: {body}");
        }
        Ok(())
    }

    /// Starts it again on the same port and data (after `stop` or `kill`).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.process.stop();
        self.spawn_and_wait().await.context("restarting azurite")
    }
}
