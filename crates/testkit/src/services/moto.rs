//! moto's server, an AWS emulator (PyPI `moto[server]`, installed by `cargo xtask tools` with a
//! `moto-server` launcher in the tools' `bin/`), for the RDS snapshot tests. It runs on plain
//! HTTP on a free loopback port, one per test binary ([`Moto::shared`]).
//!
//! Credentials are checked as AWS checks them: right after the start, moto is told (through
//! its `/moto-api/reset-auth` endpoint) to let exactly the next three requests through
//! unchecked, and those create an IAM user with an allow-all policy and its access key. From
//! then on every request must be signed with that key ([`Moto::access_key_id`],
//! [`Moto::secret_access_key`]); any other key is refused with `InvalidClientTokenId` (HTTP
//! 403), which is what the wrong-credentials tests need.
//!
//! moto makes every RDS snapshot `available` at once and has no state manager for them, so a
//! snapshot that stays `creating` or ends `failed` is made up by a
//! [`FaultProxy`](super::FaultProxy) rewrite in front of it (see
//! [`FaultProxy::rewrite`](super::FaultProxy::rewrite)).

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use super::lifecycle::{ManagedProcess, lifecycle_methods, start_on_free_port};
use super::{HOST, http_answers};
use crate::tools::tool_binary;

/// The IAM requests the setup makes before credentials are enforced (see the module doc).
const SETUP_REQUESTS: usize = 3;

/// The IAM user the setup creates.
const USER: &str = "vertice-tests";

/// An allow-all IAM policy, form-encoded.
const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// A running moto server; stopped and its directory removed on drop (the shared one when the
/// test binary exits).
pub struct Moto {
    process: ManagedProcess,
    port: u16,
    access_key_id: String,
    secret_access_key: String,
}

lifecycle_methods!(Moto);

/// The per-test-binary server, or why it could not start.
static SHARED: OnceLock<Result<Moto, String>> = OnceLock::new();

impl Moto {
    /// One moto server per test binary, started on first use on a thread of its own (so
    /// nothing in the static belongs to one test's runtime). A failed start is kept: every
    /// later test fails at once with the same message.
    pub async fn shared() -> anyhow::Result<&'static Moto> {
        crate::shared::once(&SHARED, "moto", Self::start).await
    }

    /// Starts a server of the caller's own on a free port, with credentials enforced (see the
    /// module doc). Fails, naming the install command, when moto is not installed.
    pub async fn start() -> anyhow::Result<Self> {
        let launcher = tool_binary("moto-server")?;
        let process = ManagedProcess::new("moto", "moto")?;
        let mut moto = Self {
            process,
            port: 0,
            access_key_id: String::new(),
            secret_access_key: String::new(),
        };
        start_on_free_port(async |port| {
            moto.port = port;
            let mut command = Command::new(&launcher);
            command
                .current_dir(moto.process.dir())
                .args(["-H", HOST, "-p", &port.to_string()]);
            let url = format!("{}/moto-api/", moto.endpoint());
            let process = moto
                .process
                .spawn_ready(command, "the moto API", || http_answers(&url))
                .await?;
            moto.process.adopt(process);
            Ok(())
        })
        .await?;
        moto.enforce_credentials().await?;
        Ok(moto)
    }

    /// Creates the IAM user and key, then leaves moto checking every request's signature.
    async fn enforce_credentials(&mut self) -> anyhow::Result<()> {
        let client = http_client()?;
        self.let_unchecked_through(&client, SETUP_REQUESTS).await?;
        let policy =
            percent_encoding::utf8_percent_encode(ALLOW_ALL, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        self.iam(&client, &format!("Action=CreateUser&UserName={USER}"))
            .await?;
        self.iam(
            &client,
            &format!("Action=PutUserPolicy&UserName={USER}&PolicyName=all&PolicyDocument={policy}"),
        )
        .await?;
        let answer = self
            .iam(&client, &format!("Action=CreateAccessKey&UserName={USER}"))
            .await?;
        self.access_key_id = xml_text(&answer, "AccessKeyId")?;
        self.secret_access_key = xml_text(&answer, "SecretAccessKey")?;
        Ok(())
    }

    /// Tells moto (`/moto-api/reset-auth`) to let exactly the next `requests` requests through
    /// without checking their signatures, and to check every one after them.
    async fn let_unchecked_through(
        &self,
        client: &reqwest::Client,
        requests: usize,
    ) -> anyhow::Result<()> {
        let reset = client
            .post(format!("{}/moto-api/reset-auth", self.endpoint()))
            .header("content-type", "text/plain")
            .body(requests.to_string())
            .send()
            .await
            .context("setting moto's credential checks")?;
        if !reset.status().is_success() {
            bail!("moto refused /moto-api/reset-auth: {}", reset.status());
        }
        Ok(())
    }

    /// One IAM query request made before credentials are enforced: moto picks the service
    /// from the credential scope of the `Authorization` header, whose signature it does not
    /// check yet.
    async fn iam(&self, client: &reqwest::Client, form: &str) -> anyhow::Result<String> {
        let response = client
            .post(format!("{}/", self.endpoint()))
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDSETUP/20260101/us-east-1/iam/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("{form}&Version=2010-05-08"))
            .send()
            .await
            .context("calling moto's IAM API")?;
        let status = response.status();
        let body = response.text().await?;
        if !status.is_success() {
            bail!("moto's IAM API answered {status}: {body}");
        }
        Ok(body)
    }

    /// The base URL, `http://127.0.0.1:<port>`: every AWS service's endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{HOST}:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The access key id every request must be signed with.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Its secret access key.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// An AWS credentials file's text holding its keys (see [`super::aws_credentials`]).
    pub fn credentials_file(&self) -> String {
        super::aws_credentials::aws_credentials_file(&self.access_key_id, &self.secret_access_key)
    }

    /// Creates S3 bucket `bucket` and writes `objects` (key, bytes) into it without signing,
    /// for keys object_store cannot name — S3 "folder" markers ending in `/`, as the AWS
    /// console creates them. moto's unchecked window is opened for exactly these requests, so
    /// call it on a server of the test's own ([`Moto::start`]): on the shared one another test
    /// could take the window.
    pub async fn put_s3_objects_unsigned(
        &self,
        bucket: &str,
        objects: &[(&str, &[u8])],
    ) -> anyhow::Result<()> {
        let client = http_client()?;
        self.let_unchecked_through(&client, objects.len() + 1)
            .await?;
        let encode = |key: &str| {
            key.split('/')
                .map(|segment| {
                    percent_encoding::utf8_percent_encode(
                        segment,
                        percent_encoding::NON_ALPHANUMERIC,
                    )
                    .to_string()
                })
                .collect::<Vec<_>>()
                .join("/")
        };
        let urls = std::iter::once((format!("{}/{bucket}", self.endpoint()), Vec::new())).chain(
            objects.iter().map(|(key, bytes)| {
                (
                    format!("{}/{bucket}/{}", self.endpoint(), encode(key)),
                    bytes.to_vec(),
                )
            }),
        );
        for (url, body) in urls {
            let answer = client
                .put(&url)
                // moto picks the service from the credential scope; the signature is not
                // checked inside the window.
                .header(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIDSETUP/20260101/us-east-1/s3/aws4_request, \
                     SignedHeaders=host, Signature=0",
                )
                .body(body)
                .send()
                .await
                .with_context(|| format!("PUT {url} on moto"))?;
            if !answer.status().is_success() {
                let status = answer.status();
                let text = answer.text().await.unwrap_or_default();
                bail!("moto refused PUT {url}: {status}: {text}");
            }
        }
        Ok(())
    }
}

/// The text of the first `<tag>…</tag>` in an XML answer.
fn xml_text(xml: &str, tag: &str) -> anyhow::Result<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml
        .find(&open)
        .map(|at| at + open.len())
        .ok_or_else(|| anyhow!("no <{tag}> in moto's answer"))?;
    let end = xml[start..]
        .find(&close)
        .ok_or_else(|| anyhow!("no </{tag}> in moto's answer"))?;
    Ok(xml[start..start + end].to_string())
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?)
}
