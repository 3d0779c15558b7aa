//! Real service processes for integration tests: PostgreSQL, MariaDB, Redis, an S3 server,
//! Prometheus, Azurite, fake-gcs-server and moto (AWS). Each one starts on a free port in its own temporary
//! directory, waits until it really answers, and is stopped and removed when dropped. A missing
//! binary is an error that names the install command: tests never skip themselves.
//! `FaultProxy` is the one made-up part: it sits in front of a real server and fails only the
//! requests a test names, for the transient errors clouds give and emulators do not.

pub mod aws_credentials;
pub mod azurite;
pub mod fault_proxy;
pub mod gcs;
pub mod http_sink;
mod lifecycle;
pub mod mariadb;
pub mod moto;
pub mod postgres;
pub mod prometheus;
pub mod redis;
pub mod s3;
mod self_signed;
pub mod smtp;

pub use azurite::Azurite;
pub use fault_proxy::{Fault, FaultProxy, HostHeader, Rewrite};
pub use gcs::FakeGcs;
pub use http_sink::{HttpSink, RecordedRequest, Reply};
pub use mariadb::{MariaDb, MariaDbOptions};
pub use moto::Moto;
pub use postgres::{Postgres, PostgresOptions};
pub use prometheus::{Prometheus, PrometheusOptions};
pub use redis::{Redis, RedisOptions, ReplicaOf};
pub use s3::S3Server;
pub use self_signed::SelfSigned;
pub use smtp::{ReceivedMessage, SmtpOptions, SmtpReceiver};

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use rand::Rng;

/// The address every service listens on.
pub const HOST: &str = "127.0.0.1";

/// A random alphanumeric secret: safe in URLs, option files and shell-free argv alike.
fn random_secret(len: usize) -> String {
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Everything but RFC 3986's unreserved characters, `/` included: the result is one URL path
/// segment or one userinfo part.
const UNRESERVED_ONLY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `text` for one URL path segment (or a user name or password in a URL).
fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, UNRESERVED_ONLY).to_string()
}

/// Whether this process runs as root (database servers refuse to run as root, so they need
/// another OS user then).
fn running_as_root() -> bool {
    // `/proc/self` is owned by the effective user; avoids a libc dependency for `geteuid`.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of an OS user, from /etc/passwd.
fn os_user_ids(user: &str) -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() > 3 && fields[0] == user {
            let uid = fields[2].parse().context("parsing a uid in /etc/passwd")?;
            let gid = fields[3].parse().context("parsing a gid in /etc/passwd")?;
            return Ok((uid, gid));
        }
    }
    bail!("OS user `{user}` does not exist (its Debian package creates it)")
}

/// Gives `path` to `ids` (a no-op when not running as root).
fn chown(path: &Path, ids: Option<(u32, u32)>) -> anyhow::Result<()> {
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

/// Runs a client command to completion and returns its stdout; a non-zero exit is an error
/// with its stderr.
async fn run_output(command: Command, what: &str) -> anyhow::Result<String> {
    let mut command = tokio::process::Command::from(command);
    command.stdin(Stdio::null()).kill_on_drop(true);
    let output = command
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// An HTTP GET that counts any response as "up" (auth errors included: the server answered).
async fn http_answers(url: &str) -> anyhow::Result<bool> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    Ok(client.get(url).send().await.is_ok())
}

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn only_unreserved_characters_stay_as_they_are() {
        assert_eq!(percent_encode("Az09-._~"), "Az09-._~");
        assert_eq!(percent_encode("p@ss:w/rd é"), "p%40ss%3Aw%2Frd%20%C3%A9");
    }
}
