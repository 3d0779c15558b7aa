//! Log capture for "no secret in any log line" tests.
//!
//! [`LogCapture::install`] installs, once per test process, a global tracing subscriber that
//! formats every event (span fields included, no colours) into an in-memory buffer, and turns
//! `log` records into events too. Install it before the code under test sets up logging:
//! `vertice_core::telemetry::init` keeps a subscriber that is already installed, so the
//! operator's own lines land here. The filter defaults to [`DEFAULT_FILTER`] — more than an
//! operator logs by default, because a secret in a debug line is a leak too.
//!
//! A program the test runs as a child process (the operator binary, a Job's runner) logs to
//! its stdout and stderr instead: [`LogCapture::capture_child`] reads both into the same
//! buffer, one line each, prefixed with the source.
//!
//! [`LogCapture::assert_no_secret`] then checks every line for each secret in the forms it
//! takes when it leaks through an encoder rather than verbatim: percent-encoded (a URL),
//! escaped (`{:?}` or JSON) and base64 (an `Authorization: Basic` header, a Kubernetes Secret's
//! `data`) — see [`secret_forms`]. [`find_leaks`] runs the same check on any other text
//! (Events, status messages, files).
//!
//! The subscriber is global, so one test binary has one capture for all its tests: put log
//! tests in their own `tests/*.rs` file, and give each test its own random secrets.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::JoinHandle;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

use crate::process::wait_until;

/// The filter [`LogCapture::install`] uses: debug for every crate, trace for ours
/// (`vertice*` targets).
pub const DEFAULT_FILTER: &str = "debug,vertice=trace";

/// The shortest base64 fragment [`secret_forms`] checks for: shorter fragments of random text
/// turn up by chance.
const MIN_BASE64_FRAGMENT: usize = 8;

/// Everything but RFC 3986's unreserved characters.
const UNRESERVED_ONLY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The capture installed in this process, if any.
static INSTALLED: Mutex<Option<&'static LogCapture>> = Mutex::new(None);

/// The in-memory log of this test process: every tracing event, `log` record and captured
/// child-process line since [`LogCapture::install`].
#[derive(Debug)]
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl LogCapture {
    /// Installs the capture with [`DEFAULT_FILTER`] as the process's global subscriber, or
    /// returns the one installed before. Fails when another global subscriber was installed
    /// first: nothing would be captured, and a secret check would pass for nothing.
    pub fn install() -> anyhow::Result<&'static LogCapture> {
        Self::install_with_filter(DEFAULT_FILTER)
    }

    /// [`Self::install`] with a `RUST_LOG`-syntax `filter`. When the capture is installed
    /// already, the filter it was installed with stays.
    pub fn install_with_filter(filter: &str) -> anyhow::Result<&'static LogCapture> {
        let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(capture) = *installed {
            return Ok(capture);
        }
        let filter =
            EnvFilter::try_new(filter).with_context(|| format!("invalid log filter {filter:?}"))?;
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer_buffer = Arc::clone(&buffer);
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || BufferWriter(Arc::clone(&writer_buffer)))
            .finish()
            .try_init()
            .context(
                "another global tracing subscriber is installed already; call \
                 LogCapture::install before anything sets one up (telemetry::init included)",
            )?;
        // Lives as long as the global subscriber that writes into it: the whole process.
        let capture: &'static LogCapture = Box::leak(Box::new(LogCapture { buffer }));
        *installed = Some(capture);
        Ok(capture)
    }

    /// Every line captured so far, in order.
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.lock())
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The captured lines that contain `needle`.
    pub fn lines_containing(&self, needle: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|line| line.contains(needle))
            .collect()
    }

    /// Waits until a line contains `needle` and returns the first such line; fails after
    /// `timeout` (for lines logged by another task or a child process).
    pub async fn wait_for_line(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let what = format!("a log line containing {needle:?}");
        wait_until(&what, timeout, || async {
            Ok(!self.lines_containing(needle).is_empty())
        })
        .await?;
        match self.lines_containing(needle).into_iter().next() {
            Some(line) => Ok(line),
            None => bail!("{what} vanished"),
        }
    }

    /// Every line that holds one of `secrets`, in any of its [`secret_forms`].
    ///
    /// # Panics
    /// When a secret is empty: every line would hold it, and a test that passes an empty
    /// secret by mistake must not pass for nothing.
    pub fn leaks(&self, secrets: &[&str]) -> Vec<Leak> {
        let lines = self.lines();
        find_leaks(lines.iter().map(String::as_str), secrets)
    }

    /// Panics, listing the lines (with the secret masked), when any captured line holds one
    /// of `secrets` in any of its [`secret_forms`].
    ///
    /// # Panics
    /// On a leak, or when a secret is empty.
    pub fn assert_no_secret(&self, secrets: &[&str]) {
        let leaks = self.leaks(secrets);
        assert!(leaks.is_empty(), "{}", describe_leaks(&leaks));
    }

    /// Reads a child's stdout and stderr, if piped, into the capture, each line prefixed
    /// `[<name> stdout] ` or `[<name> stderr] `. Fails when neither is piped (nothing could be
    /// captured). Await [`CapturedOutput::finish`] after the child exits to have every line.
    /// Needs a Tokio runtime.
    pub fn capture_child(
        &'static self,
        name: &str,
        child: &mut tokio::process::Child,
    ) -> anyhow::Result<CapturedOutput> {
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(self.capture_reader(&format!("{name} stdout"), stdout));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(self.capture_reader(&format!("{name} stderr"), stderr));
        }
        if readers.is_empty() {
            bail!(
                "{name}: neither stdout nor stderr is piped (Stdio::piped()), or both were taken"
            );
        }
        Ok(CapturedOutput { readers })
    }

    /// Reads `reader` line by line into the capture, each line prefixed `[<source>] `, until
    /// it ends; the task ends with it. Needs a Tokio runtime (the reader is a task on it).
    pub fn capture_reader<R>(&'static self, source: &str, reader: R) -> JoinHandle<()>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let prefix = format!("[{source}] ");
        tokio::spawn(async move {
            let mut reader = BufReader::new(reader);
            let mut line = Vec::new();
            // Bytes, not `String` lines: output that is not UTF-8 is still checked (lossily).
            while let Ok(read) = reader.read_until(b'\n', &mut line).await {
                if read == 0 {
                    break;
                }
                if line.last() != Some(&b'\n') {
                    line.push(b'\n');
                }
                let mut buffer = self.lock();
                buffer.extend_from_slice(prefix.as_bytes());
                buffer.extend_from_slice(&line);
                drop(buffer);
                line.clear();
            }
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic in another test must not hide what was logged.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The readers [`LogCapture::capture_child`] started.
#[derive(Debug)]
pub struct CapturedOutput {
    readers: Vec<JoinHandle<()>>,
}

impl CapturedOutput {
    /// Waits until the child's output has ended (it exited and closed its pipes) and every
    /// line is in the capture.
    pub async fn finish(self) -> anyhow::Result<()> {
        for reader in self.readers {
            reader.await.context("a log reader task failed")?;
        }
        Ok(())
    }
}

/// The fmt layer's writer: each event is formatted whole and then written with one call, so
/// events from different threads do not interleave inside a line.
struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl Write for BufferWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How a secret appeared in a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretForm {
    /// Verbatim.
    Literal,
    /// Percent-encoded, as in a URL's userinfo, path or query.
    PercentEncoded,
    /// Escaped as Rust's `{:?}` or JSON escape it (quotes, backslashes, control characters).
    Escaped,
    /// Inside base64 (standard or URL-safe alphabet, at any byte alignment).
    Base64,
}

/// One line that holds a secret.
#[derive(Clone, Debug)]
pub struct Leak {
    /// The line's number in the text checked, from 1.
    pub line_number: usize,
    /// Which secret of the list given, from 0.
    pub secret_index: usize,
    /// The form it took.
    pub form: SecretForm,
    /// The line with the secret's form replaced by `<SECRET>`: safe to print.
    pub masked_line: String,
}

/// Every line of `lines` that holds one of `secrets` in any of its [`secret_forms`]; one
/// [`Leak`] per line and secret (the first form found).
///
/// # Panics
/// When a secret is empty (it would be found everywhere; an empty secret is a test's mistake).
pub fn find_leaks<'a>(lines: impl IntoIterator<Item = &'a str>, secrets: &[&str]) -> Vec<Leak> {
    assert!(
        secrets.iter().all(|secret| !secret.is_empty()),
        "an empty secret was given to the leak check"
    );
    let forms: Vec<Vec<(SecretForm, String)>> =
        secrets.iter().map(|secret| secret_forms(secret)).collect();
    let mut leaks = Vec::new();
    for (index, line) in lines.into_iter().enumerate() {
        for (secret_index, forms) in forms.iter().enumerate() {
            if let Some((form, text)) = forms.iter().find(|(_, text)| line.contains(text.as_str()))
            {
                leaks.push(Leak {
                    line_number: index + 1,
                    secret_index,
                    form: *form,
                    masked_line: line.replace(text.as_str(), "<SECRET>"),
                });
            }
        }
    }
    leaks
}

/// The texts a secret becomes in a log line: itself; percent-encoded; escaped as `{:?}` and as
/// JSON; and the base64 fragments that depend on the secret's bytes alone, for each of the
/// three byte alignments it can have inside a longer encoded value (`user:secret`) and both
/// alphabets — a fragment shorter than 8 characters is left out, it would match by chance.
/// Each text appears once, with the first form that produces it.
pub fn secret_forms(secret: &str) -> Vec<(SecretForm, String)> {
    let mut forms: Vec<(SecretForm, String)> = Vec::new();
    let mut add = |form: SecretForm, text: String| {
        if !text.is_empty() && !forms.iter().any(|(_, known)| *known == text) {
            forms.push((form, text));
        }
    };
    add(SecretForm::Literal, secret.to_owned());
    // Encoders differ in what they leave alone: RFC 3986's unreserved characters, or only
    // letters and digits; a form-encoded body also writes spaces as `+`.
    for set in [UNRESERVED_ONLY, percent_encoding::NON_ALPHANUMERIC] {
        let encoded = percent_encoding::utf8_percent_encode(secret, set).to_string();
        add(SecretForm::PercentEncoded, encoded.replace("%20", "+"));
        add(SecretForm::PercentEncoded, encoded);
    }
    add(SecretForm::Escaped, strip_quotes(&format!("{secret:?}")));
    if let Ok(json) = serde_json::to_string(secret) {
        add(SecretForm::Escaped, strip_quotes(&json));
    }
    for fragment in base64_fragments(secret.as_bytes()) {
        add(SecretForm::Base64, fragment);
    }
    forms
}

fn strip_quotes(quoted: &str) -> String {
    quoted
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(quoted)
        .to_owned()
}

/// The base64 characters determined by `secret` alone when it sits at byte offset 0, 1 or 2
/// (mod 3) of a longer value, in the standard and URL-safe alphabets.
fn base64_fragments(secret: &[u8]) -> Vec<String> {
    let engines = [
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let mut fragments = Vec::new();
    for lead in 0..3usize {
        let mut value = vec![0u8; lead];
        value.extend_from_slice(secret);
        let start_bit = lead * 8;
        let end_bit = value.len() * 8;
        // Character i covers bits [6i, 6i + 6): keep those entirely inside the secret.
        let first = start_bit.div_ceil(6);
        let last = end_bit / 6; // exclusive
        if last <= first || last - first < MIN_BASE64_FRAGMENT {
            continue;
        }
        for engine in &engines {
            let encoded = engine.encode(&value);
            if let Some(fragment) = encoded.get(first..last) {
                fragments.push(fragment.to_owned());
            }
        }
    }
    fragments
}

/// A report of `leaks` for a failed assertion; it holds only masked lines.
fn describe_leaks(leaks: &[Leak]) -> String {
    let mut report = format!("{} log line(s) hold a secret:", leaks.len());
    for leak in leaks {
        report.push_str(&format!(
            "\n  line {} (secret #{}, {:?}): {}",
            leak.line_number, leak.secret_index, leak.form, leak.masked_line
        ));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_encoded_form_of_a_secret_is_found() {
        let secret = "s3cr3t/p@ss w0rd\"x";
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{secret}"));
        let lines = [
            "connecting with no secret at all".to_owned(),
            format!("password={secret}"),
            format!(
                "url=https://user:{}@host/",
                percent_encoding::utf8_percent_encode(secret, UNRESERVED_ONLY)
            ),
            format!("config={:?}", format!("pw={secret}")),
            format!("authorization: Basic {basic}"),
            format!(
                "{{\"password\":{}}}",
                serde_json::to_string(secret).unwrap()
            ),
        ];
        let leaks = find_leaks(lines.iter().map(String::as_str), &[secret]);
        let found: Vec<(usize, SecretForm)> =
            leaks.iter().map(|l| (l.line_number, l.form)).collect();
        assert_eq!(
            found,
            vec![
                (2, SecretForm::Literal),
                (3, SecretForm::PercentEncoded),
                (4, SecretForm::Escaped),
                (5, SecretForm::Base64),
                (6, SecretForm::Escaped),
            ]
        );
        assert!(leaks.iter().all(|l| !l.masked_line.contains(secret)));
    }

    #[test]
    fn base64_is_found_at_every_alignment_and_in_both_alphabets() {
        let secret = "a-random-token-??>>-0123456789";
        for prefix in ["", "u:", "us:", "use:", "longer-user-name:"] {
            for engine in [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::URL_SAFE,
            ] {
                let encoded = engine.encode(format!("{prefix}{secret}"));
                let leaks = find_leaks([encoded.as_str()], &[secret]);
                assert_eq!(leaks.len(), 1, "{prefix:?} as {encoded}");
                assert_eq!(leaks[0].form, SecretForm::Base64);
            }
        }
    }

    #[test]
    fn lines_without_the_secret_pass() {
        let lines = ["password=<redacted>", "token=s3cr3", "dXNlcjpzM2NyM3Q="];
        assert!(find_leaks(lines, &["s3cr3t-longer", "another-one"]).is_empty());
    }

    #[test]
    #[should_panic(expected = "empty secret")]
    fn an_empty_secret_is_a_mistake() {
        let _ = find_leaks(["anything"], &[""]);
    }
}
