//! Log capture: tracing events (from any thread, span fields included) and a child process's
//! output land in one buffer, and the secret check finds a secret logged in any of its forms.
//! Its own test binary: the capture is the process's global subscriber. Every test uses its own
//! random secrets, so the tests do not see each other's leaks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use rand::Rng;
use vertice_testkit::log_capture::{LogCapture, SecretForm};

const WAIT: Duration = Duration::from_secs(10);

fn random_secret() -> String {
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(20)
        .map(char::from)
        .collect()
}

/// Whether `assert_no_secret` panics for `secrets`.
fn secret_check_fails(capture: &LogCapture, secrets: &[&str]) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        capture.assert_no_secret(secrets);
    }))
    .is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_events_are_captured_and_a_logged_secret_fails_the_check() {
    let capture = LogCapture::install().unwrap();
    let (password, token, never_logged) = (random_secret(), random_secret(), random_secret());
    let marker = random_secret();

    let span = tracing::info_span!("reconcile", object = %format!("ns-{marker}/db"));
    span.in_scope(|| {
        tracing::info!(target: "vertice_backup::notify", "sending notification {marker}");
        tracing::debug!(target: "vertice_backup::notify", %password, "connecting to SMTP");
    });
    // From another task, on whichever worker runs it: the capture is global, not per thread.
    let url_token = token.clone();
    tokio::spawn(async move {
        tracing::warn!(url = %format!("https://hooks.example/x?token={url_token}"), "hook failed");
    })
    .await
    .unwrap();

    let line = capture
        .wait_for_line(&format!("sending notification {marker}"), WAIT)
        .await
        .unwrap();
    assert!(line.contains("INFO"), "{line}");
    assert!(
        line.contains(&format!("reconcile{{object=ns-{marker}/db}}")),
        "{line}"
    );
    assert!(line.contains("vertice_backup::notify"), "{line}");
    capture.wait_for_line("hook failed", WAIT).await.unwrap();

    // A dependency that logs through the `log` crate is captured too.
    log::warn!(target: "some_dependency", "log crate record {marker}");
    let line = capture
        .wait_for_line(&format!("log crate record {marker}"), WAIT)
        .await
        .unwrap();
    assert!(line.contains("WARN"), "{line}");

    // Debug lines are captured too: a secret there is a leak as well.
    let leaks = capture.leaks(&[&password, &token, &never_logged]);
    let by_secret: Vec<(usize, SecretForm)> =
        leaks.iter().map(|l| (l.secret_index, l.form)).collect();
    assert_eq!(
        by_secret,
        [(0, SecretForm::Literal), (1, SecretForm::Literal)],
        "{leaks:?}"
    );
    assert!(
        leaks[0].masked_line.contains("password=<SECRET>"),
        "{leaks:?}"
    );
    assert!(leaks.iter().all(|l| !l.masked_line.contains(&password)));
    assert!(secret_check_fails(capture, &[&password]));
    assert!(secret_check_fails(capture, &[&never_logged, &token]));
    assert!(!secret_check_fails(capture, &[&never_logged]));
}

#[tokio::test]
async fn encoded_secrets_in_log_lines_are_found() {
    let capture = LogCapture::install().unwrap();
    let (user, password) = (random_secret(), format!("{}/p@ss w:rd", random_secret()));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let encoded_url = format!(
        "postgres://{user}:{}@db:5432/app",
        percent_encoding::utf8_percent_encode(&password, percent_encoding::NON_ALPHANUMERIC)
    );

    tracing::info!(authorization = %format!("Basic {basic}"), "calling the webhook");
    let leaks = capture.leaks(&[&password]);
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    assert_eq!(leaks[0].form, SecretForm::Base64);

    tracing::info!(url = %encoded_url, "connecting");
    tracing::info!(config = ?format!("password={password}"), "loaded");
    let forms: Vec<SecretForm> = capture.leaks(&[&password]).iter().map(|l| l.form).collect();
    assert_eq!(
        forms,
        [
            SecretForm::Base64,
            SecretForm::PercentEncoded,
            SecretForm::Literal
        ],
        "{:?}",
        capture.leaks(&[&password])
    );
}

#[tokio::test]
async fn a_later_subscriber_does_not_replace_the_capture() {
    let capture = LogCapture::install().unwrap();
    assert!(std::ptr::eq(capture, LogCapture::install().unwrap()));
    // What `vertice_core::telemetry::init` does: `try_init`, and keep the installed one.
    assert!(
        tracing_subscriber::fmt()
            .with_env_filter("info")
            .try_init()
            .is_err()
    );
    let marker = random_secret();
    tracing::info!("after a second init {marker}");
    capture
        .wait_for_line(&format!("after a second init {marker}"), WAIT)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_child_process_output_is_captured_and_checked() {
    let capture = LogCapture::install().unwrap();
    let (token, never_printed) = (random_secret(), random_secret());
    let marker = random_secret();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("api:{token}"));
    // Lines on both streams, one of them without a final newline, and bytes that are not UTF-8.
    let script = r#"
        echo "runner starting $MARKER"
        echo "using token=$TOKEN" >&2
        printf 'not utf-8: \377\376 done\n'
        printf 'Authorization: Basic %s' "$BASIC"
    "#;
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", script])
        .env("MARKER", &marker)
        .env("TOKEN", &token)
        .env("BASIC", &basic)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = capture.capture_child("runner", &mut child).unwrap();
    assert!(child.wait().await.unwrap().success());
    output.finish().await.unwrap();

    let lines = capture.lines_containing(&marker);
    assert_eq!(lines, [format!("[runner stdout] runner starting {marker}")]);
    assert!(
        !capture
            .lines_containing("[runner stdout] not utf-8: ")
            .is_empty()
    );
    // stdout and stderr are read side by side: their lines interleave in any order.
    let mut leaks: Vec<(SecretForm, String)> = capture
        .leaks(&[&token])
        .into_iter()
        .map(|l| (l.form, l.masked_line))
        .collect();
    leaks.sort_by_key(|(_, line)| line.clone());
    assert_eq!(
        leaks,
        [
            (
                SecretForm::Literal,
                "[runner stderr] using token=<SECRET>".to_owned()
            ),
            (
                SecretForm::Base64,
                format!(
                    "[runner stdout] Authorization: Basic {}<SECRET>",
                    &basic[..6]
                )
            ),
        ]
    );
    assert!(secret_check_fails(capture, &[&token]));
    assert!(!secret_check_fails(capture, &[&never_printed]));

    // A child whose output is not piped cannot be captured: an error, not silence.
    let mut deaf = tokio::process::Command::new("true").spawn().unwrap();
    assert!(capture.capture_child("deaf", &mut deaf).is_err());
    deaf.wait().await.unwrap();
}
