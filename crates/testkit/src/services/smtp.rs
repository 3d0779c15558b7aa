//! A real SMTP server for notification tests: aiosmtpd (Debian `python3-aiosmtpd`, run by
//! `/usr/bin/python3` — the `python3` on PATH may be another interpreter that does not see
//! Debian's packages) driven by our script `crates/testkit/scripts/smtp_receiver.py`.
//!
//! It listens on `127.0.0.1:<free port>`, requires AUTH PLAIN or LOGIN with a user and a
//! random password (over plain TCP too: `auth_require_tls=False`), refuses wrong credentials
//! with `535` and mail without AUTH with `530`, and can offer STARTTLS with a fresh self-signed
//! certificate for `localhost`. Every accepted message is spooled as one JSON file; a test reads
//! them back parsed ([`SmtpReceiver::messages`]) or waits for a number of them with a deadline
//! ([`SmtpReceiver::wait_for_messages`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

use super::lifecycle::{ManagedProcess, lifecycle_methods, start_on_free_port};
use super::self_signed::SelfSigned;
use super::{HOST, random_secret};
use crate::process::wait_until;

/// The interpreter that sees Debian's `python3-aiosmtpd`.
const PYTHON: &str = "/usr/bin/python3";

/// The receiver script, written into the service's directory at start.
const SCRIPT: &str = include_str!("../../scripts/smtp_receiver.py");

/// The environment variable the script reads the password from (kept out of its argv).
const PASSWORD_ENV: &str = "VERTICE_SMTP_PASSWORD";

/// How to start an [`SmtpReceiver`].
#[derive(Clone)]
pub struct SmtpOptions {
    /// The user and password AUTH accepts; AUTH is then required before `MAIL FROM`. `None`
    /// accepts mail from anyone without AUTH (a relay inside a trusted network).
    pub credentials: Option<(String, String)>,
    /// Offers STARTTLS with a fresh self-signed certificate for `localhost` (see
    /// [`SmtpReceiver::ca_pem`]).
    pub starttls: bool,
    /// Refuses every command but EHLO, STARTTLS and QUIT before STARTTLS (needs `starttls`).
    pub require_starttls: bool,
}

impl std::fmt::Debug for SmtpOptions {
    // The password stays out of test output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpOptions")
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("starttls", &self.starttls)
            .field("require_starttls", &self.require_starttls)
            .finish()
    }
}

impl Default for SmtpOptions {
    /// AUTH required as user `vertice` with a random 24-character password; no TLS.
    fn default() -> Self {
        Self {
            credentials: Some(("vertice".to_owned(), random_secret(24))),
            starttls: false,
            require_starttls: false,
        }
    }
}

/// One message the receiver accepted.
#[derive(Clone, Debug)]
pub struct ReceivedMessage {
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`), in order.
    pub rcpt_to: Vec<String>,
    /// The login that authenticated the session; `None` without AUTH.
    pub login: Option<String>,
    /// Whether the session ran under TLS (after STARTTLS) when the message was sent.
    pub tls: bool,
    /// The message exactly as received (headers and body, CRLF line ends).
    pub raw: Vec<u8>,
    /// The header fields in order: names as written, values unfolded and RFC 2047-decoded.
    pub headers: Vec<(String, String)>,
    /// The `Subject`, decoded.
    pub subject: Option<String>,
    /// The first `text/plain` part (or the body of a message without parts), transfer-decoded.
    pub text_body: Option<String>,
    /// The first `text/html` part, transfer-decoded.
    pub html_body: Option<String>,
}

impl ReceivedMessage {
    /// The first value of header `name` (any case), decoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Parses one spooled message (the script's JSON record).
    fn from_spool(json: &[u8]) -> anyhow::Result<Self> {
        let record: SpoolRecord = serde_json::from_slice(json).context("a spooled message")?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(record.data)
            .context("a spooled message's data")?;
        let parsed = mailparse::parse_mail(&raw).context("parsing a received message")?;
        let headers = parsed
            .headers
            .iter()
            .map(|h| (h.get_key(), h.get_value()))
            .collect();
        let mut bodies = Bodies::default();
        bodies.collect(&parsed)?;
        Ok(Self {
            mail_from: record.mail_from,
            rcpt_to: record.rcpt_tos,
            login: record.login,
            tls: record.tls,
            subject: parsed.headers.iter().find_map(|h| {
                h.get_key_ref()
                    .eq_ignore_ascii_case("subject")
                    .then(|| h.get_value())
            }),
            headers,
            text_body: bodies.text,
            html_body: bodies.html,
            raw,
        })
    }
}

/// The script's record of one message.
#[derive(Deserialize)]
struct SpoolRecord {
    mail_from: String,
    rcpt_tos: Vec<String>,
    login: Option<String>,
    tls: bool,
    /// The raw message, base64.
    data: String,
}

/// The first text and HTML bodies found walking a message's MIME tree in order.
#[derive(Default)]
struct Bodies {
    text: Option<String>,
    html: Option<String>,
}

impl Bodies {
    fn collect(&mut self, part: &mailparse::ParsedMail<'_>) -> anyhow::Result<()> {
        if part.subparts.is_empty() {
            let slot = match part.ctype.mimetype.as_str() {
                "text/plain" => &mut self.text,
                "text/html" => &mut self.html,
                _ => return Ok(()),
            };
            if slot.is_none() {
                *slot = Some(part.get_body().context("decoding a message body")?);
            }
        }
        for sub in &part.subparts {
            self.collect(sub)?;
        }
        Ok(())
    }
}

/// A running SMTP receiver; stopped and its directory removed on drop.
pub struct SmtpReceiver {
    process: ManagedProcess,
    port: u16,
    options: SmtpOptions,
    tls: Option<SelfSigned>,
}

lifecycle_methods!(SmtpReceiver);

impl SmtpReceiver {
    /// Starts a receiver that requires AUTH as `vertice` with a random password, without TLS.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(SmtpOptions::default()).await
    }

    /// Starts a receiver as `options` say. Fails, saying how to install it, when
    /// `python3-aiosmtpd` is missing.
    pub async fn start_with(options: SmtpOptions) -> anyhow::Result<Self> {
        if options.require_starttls && !options.starttls {
            bail!("SmtpOptions::require_starttls needs starttls");
        }
        ensure_aiosmtpd(Path::new(PYTHON)).await?;
        let process = ManagedProcess::new("smtp", "aiosmtpd")?;
        std::fs::write(process.dir().join("smtp_receiver.py"), SCRIPT)
            .context("writing the SMTP receiver script")?;
        let tls = if options.starttls {
            let cert = SelfSigned::localhost()?;
            std::fs::write(process.dir().join("tls.crt"), &cert.cert_pem)?;
            std::fs::write(process.dir().join("tls.key"), &cert.key_pem)?;
            Some(cert)
        } else {
            None
        };
        let mut receiver = Self {
            process,
            port: 0,
            options,
            tls,
        };
        start_on_free_port(async |port| {
            receiver.port = port;
            receiver.spawn_and_wait().await
        })
        .await?;
        Ok(receiver)
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let dir = self.process.dir();
        let mut command = Command::new(PYTHON);
        command
            .current_dir(dir)
            // Python buffers stdout into a file otherwise: the log would lag behind.
            .env("PYTHONUNBUFFERED", "1")
            .arg(dir.join("smtp_receiver.py"))
            .args(["--host", HOST, "--port", &self.port.to_string()])
            .arg("--spool")
            .arg(self.spool());
        if let Some((user, password)) = &self.options.credentials {
            command.args(["--user", user]).env(PASSWORD_ENV, password);
        }
        if self.tls.is_some() {
            command
                .arg("--tls-cert")
                .arg(dir.join("tls.crt"))
                .arg("--tls-key")
                .arg(dir.join("tls.key"));
            if self.options.require_starttls {
                command.arg("--require-starttls");
            }
        }
        let port = self.port;
        let process = self
            .process
            .spawn_ready(command, "an SMTP 220 greeting", || greets(port))
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

    /// The user AUTH accepts, if AUTH is required.
    pub fn username(&self) -> Option<&str> {
        self.options
            .credentials
            .as_ref()
            .map(|(user, _)| user.as_str())
    }

    /// The password AUTH accepts, if AUTH is required.
    pub fn password(&self) -> Option<&str> {
        self.options
            .credentials
            .as_ref()
            .map(|(_, password)| password.as_str())
    }

    /// The STARTTLS certificate, PEM (the root a client must trust; it names `localhost`).
    /// `None` without STARTTLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|cert| cert.cert_pem.as_str())
    }

    /// Where the script spools messages (`new/` holds the finished ones).
    fn spool(&self) -> PathBuf {
        self.process.dir().join("spool")
    }

    /// Every message accepted so far, in arrival order.
    pub fn messages(&self) -> anyhow::Result<Vec<ReceivedMessage>> {
        read_spool(&self.spool().join("new"))
    }

    /// Waits until at least `count` messages were accepted and returns all of them; fails
    /// after `timeout`, naming how many did arrive.
    pub async fn wait_for_messages(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedMessage>> {
        let what = format!("{count} message(s) at the SMTP receiver");
        wait_until(&what, timeout, || async {
            Ok(self.messages()?.len() >= count)
        })
        .await
        .with_context(|| {
            let arrived = self.messages().map(|m| m.len()).unwrap_or(0);
            format!("{arrived} arrived; last log lines:\n{}", self.log_tail(20))
        })?;
        self.messages()
    }
}

/// Fails, with the install command, when `python` (`/usr/bin/python3`) is missing or cannot
/// import aiosmtpd.
async fn ensure_aiosmtpd(python: &Path) -> anyhow::Result<()> {
    let install = "install the Debian package `python3-aiosmtpd` \
                   (`apt-get install -y python3-aiosmtpd`; `cargo xtask tools` does it when run \
                   as root)";
    if !python.is_file() {
        bail!("{} not found; {install}", python.display());
    }
    let output = tokio::process::Command::new(python)
        .args(["-c", "import aiosmtpd.controller"])
        .output()
        .await
        .with_context(|| format!("running {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "{} cannot import aiosmtpd ({}); {install}",
            python.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Whether an SMTP server on `port` greets with `220`.
async fn greets(port: u16) -> anyhow::Result<bool> {
    let Ok(stream) = TcpStream::connect((HOST, port)).await else {
        return Ok(false);
    };
    let mut greeting = String::new();
    let mut reader = BufReader::new(stream);
    let read = reader.read_line(&mut greeting);
    match tokio::time::timeout(Duration::from_secs(2), read).await {
        Ok(Ok(_)) => Ok(greeting.starts_with("220")),
        _ => Ok(false),
    }
}

/// The spooled messages in `dir`, by file name (the script numbers them in arrival order).
fn read_spool(dir: &Path) -> anyhow::Result<Vec<ReceivedMessage>> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("listing {}", dir.display()))?,
        // The script creates it at start; before that there is nothing to read.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(error).with_context(|| format!("listing {}", dir.display())),
    };
    files.sort();
    files
        .iter()
        .map(|file| {
            let json =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            ReceivedMessage::from_spool(&json).with_context(|| format!("in {}", file.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_interpreter_or_package_says_how_to_install_it() {
        // The real interpreter passes (the tests need the package installed).
        ensure_aiosmtpd(Path::new(PYTHON)).await.unwrap();
        // No interpreter at all; an interpreter without the package (`false` fails the import
        // like a Python without aiosmtpd would).
        for python in ["/nonexistent/python3", "/bin/false"] {
            let error = ensure_aiosmtpd(Path::new(python)).await.unwrap_err();
            let message = format!("{error:#}");
            assert!(message.contains(python), "{message}");
            assert!(
                message.contains("apt-get install -y python3-aiosmtpd"),
                "{message}"
            );
        }
    }
}
