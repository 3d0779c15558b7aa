//! The notification receivers, driven by real clients: the HTTP sink by reqwest (plain and
//! HTTPS), the SMTP receiver by lettre (AUTH PLAIN and LOGIN, refusals, STARTTLS).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use vertice_testkit::services::{HttpSink, Reply, SmtpOptions, SmtpReceiver};

const WAIT: Duration = Duration::from_secs(10);

/// reqwest and kube each compile a rustls provider in; pick one for the process.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

/// Whether a process with this PID exists (a zombie counts as gone).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

// ---- HTTP sink ----

#[tokio::test]
async fn the_http_sink_records_method_path_query_headers_and_body() {
    let sink = HttpSink::start().await.unwrap();
    let client = client();
    let json = serde_json::json!({"text": "backup nightly failed", "n": 3});
    let binary: Vec<u8> = (0u8..=255).collect();

    let answer = client
        .post(sink.url_for("/services/T000/B000/xyz"))
        .query(&[("routing", "a b"), ("x", "1")])
        .header("X-Custom", "v1")
        .header("Authorization", "Token abc")
        .json(&json)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    client
        .put(sink.url_for("/hooks/pre"))
        .body(binary.clone())
        .send()
        .await
        .unwrap();
    client.get(sink.url_for("/")).send().await.unwrap();
    client
        .delete(sink.url_for("/a/b?only=query"))
        .send()
        .await
        .unwrap();

    let all = sink.wait_for_requests(4, WAIT).await.unwrap();
    assert_eq!(all.len(), 4);
    let post = &all[0];
    assert_eq!(post.method, "POST");
    assert_eq!(post.path, "/services/T000/B000/xyz");
    assert_eq!(post.query.as_deref(), Some("routing=a+b&x=1"));
    assert_eq!(post.header("x-custom"), Some("v1"));
    assert_eq!(post.header("AUTHORIZATION"), Some("Token abc"));
    assert_eq!(post.header("content-type"), Some("application/json"));
    assert_eq!(post.body_json().unwrap(), json);
    assert_eq!(post.reply, Reply::status(200));

    assert_eq!(all[1].method, "PUT");
    assert_eq!(all[1].body.as_ref(), binary.as_slice());
    assert!(all[1].body_text().is_err(), "binary is not UTF-8");
    assert_eq!((all[2].method.as_str(), all[2].path.as_str()), ("GET", "/"));
    assert!(all[2].body.is_empty());
    assert_eq!(all[2].query, None);
    assert_eq!(all[3].path, "/a/b");
    assert_eq!(all[3].query.as_deref(), Some("only=query"));
    assert!(all[3].body_json().is_err());
}

#[tokio::test]
async fn the_http_sink_fails_the_next_requests_as_scripted_then_answers_ok() {
    let sink = HttpSink::start().await.unwrap();
    let client = client();
    sink.fail_next(2, 503);
    sink.script(
        1,
        Reply::Respond {
            status: 429,
            headers: vec![("Retry-After".into(), "1".into())],
            body: "slow down".into(),
        },
    );
    sink.fail_next(1, 500);

    let mut seen = Vec::new();
    for _ in 0..6 {
        let answer = client.post(sink.url_for("/events")).send().await.unwrap();
        let retry_after = answer
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        seen.push((answer.status().as_u16(), retry_after));
    }
    let statuses: Vec<u16> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [503, 503, 429, 500, 200, 200]);
    assert_eq!(seen[2].1.as_deref(), Some("1"));
    // The record says how each one was answered.
    let replies: Vec<Reply> = sink.requests().into_iter().map(|r| r.reply).collect();
    assert_eq!(replies[0], Reply::status(503));
    assert!(matches!(replies[2], Reply::Respond { status: 429, .. }));
    assert_eq!(replies[5], Reply::status(200));

    // A PagerDuty stand-in answers 202 with a JSON body by default.
    sink.set_default_reply(Reply::Respond {
        status: 202,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: r#"{"status":"success","dedup_key":"k"}"#.into(),
    })
    .unwrap();
    let answer = client
        .post(sink.url_for("/v2/enqueue"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["status"], "success");
    assert!(sink.set_default_reply(Reply::Hang).is_err());
}

#[tokio::test]
async fn a_hung_request_times_out_at_the_client_and_is_recorded_while_others_are_served() {
    let sink = HttpSink::start().await.unwrap();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    sink.hang_next();

    let hung = impatient
        .post(sink.url_for("/hooks/pre"))
        .body("x")
        .send()
        .await;
    let error = hung.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    let all = sink.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(all[0].reply, Reply::Hang);
    assert_eq!(all[0].body_text().unwrap(), "x");

    // Another hang, still open, does not block the next client.
    sink.hang_next();
    let sink_url = sink.url_for("/hooks/slow");
    let open = tokio::spawn(async move { client().get(sink_url).send().await });
    sink.wait_for_requests(2, WAIT).await.unwrap();
    let answer = client().get(sink.url_for("/after")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(!open.is_finished(), "the hung request was answered");
    // Dropping the sink drops the hung connection: the waiting client gets an error.
    drop(sink);
    let ended = tokio::time::timeout(WAIT, open).await.unwrap().unwrap();
    assert!(ended.is_err(), "{ended:?}");
}

#[tokio::test]
async fn a_delayed_request_is_answered_after_the_delay() {
    let sink = HttpSink::start().await.unwrap();
    for delay_ms in [200u64, 600] {
        let delay = Duration::from_millis(delay_ms);
        sink.delay_next(delay);
        let started = Instant::now();
        let answer = client().post(sink.url_for("/hook")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        assert!(started.elapsed() >= delay, "answered before {delay:?}");
    }
    // A client whose timeout is shorter than the delay gives up.
    sink.delay_next(Duration::from_secs(5));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let error = impatient
        .post(sink.url_for("/hook"))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    let replies: Vec<Reply> = sink.requests().into_iter().map(|r| r.reply).collect();
    assert_eq!(replies.len(), 3);
    assert_eq!(replies[2], Reply::Delay(Duration::from_secs(5)));
}

#[tokio::test]
async fn waiting_for_requests_sees_concurrent_senders_and_fails_after_its_deadline() {
    let sink = HttpSink::start().await.unwrap();
    let url = sink.url_for("/webhook");
    let senders: Vec<_> = (0..5)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move { client().post(url).body(format!("n={i}")).send().await })
        })
        .collect();
    let all = sink.wait_for_requests(5, WAIT).await.unwrap();
    let mut bodies: Vec<String> = all
        .iter()
        .map(|r| r.body_text().unwrap().to_owned())
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["n=0", "n=1", "n=2", "n=3", "n=4"]);
    for sender in senders {
        assert_eq!(sender.await.unwrap().unwrap().status(), 200);
    }

    let error = sink
        .wait_for_requests(6, Duration::from_millis(300))
        .await
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("waiting for 6 request(s)"), "{message}");
    assert!(message.contains("5 arrived"), "{message}");
}

#[tokio::test]
async fn the_https_sink_is_trusted_through_its_certificate_only() {
    let sink = HttpSink::start_https().await.unwrap();
    assert!(sink.url().starts_with("https://localhost:"));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let root = reqwest::Certificate::from_pem(sink.ca_pem().unwrap().as_bytes()).unwrap();
    let trusting = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let answer = trusting
        .post(sink.url_for("/secure"))
        .body("over tls")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let all = sink.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(all[0].body_text().unwrap(), "over tls");

    // A client that does not trust the certificate is refused; nothing more is recorded.
    let error = client().get(sink.url_for("/x")).send().await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    assert_eq!(sink.requests().len(), 1);
    assert!(HttpSink::start().await.unwrap().ca_pem().is_none());
}

// ---- SMTP receiver ----

fn mailer(
    smtp: &SmtpReceiver,
    credentials: Option<(&str, &str)>,
    mechanism: Mechanism,
) -> AsyncSmtpTransport<Tokio1Executor> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host())
        .port(smtp.port())
        .timeout(Some(WAIT))
        .authentication(vec![mechanism]);
    if let Some((user, password)) = credentials {
        builder = builder.credentials(Credentials::new(user.to_owned(), password.to_owned()));
    }
    builder.build()
}

fn starttls(smtp: &SmtpReceiver, trust: bool) -> Tls {
    let mut parameters = TlsParameters::builder("localhost".to_owned());
    if trust {
        let root = Certificate::from_pem(smtp.ca_pem().unwrap().as_bytes()).unwrap();
        parameters = parameters.add_root_certificate(root);
    }
    Tls::Required(parameters.build_rustls().unwrap())
}

fn mailbox(text: &str) -> Mailbox {
    text.parse().unwrap()
}

#[tokio::test]
async fn the_smtp_receiver_takes_mail_with_auth_plain_and_login_and_parses_it() {
    let smtp = SmtpReceiver::start().await.unwrap();
    let (user, password) = (smtp.username().unwrap(), smtp.password().unwrap());
    assert_eq!(password.len(), 24);

    // Non-ASCII subject (RFC 2047), a long UTF-8 body (quoted-printable or base64), Cc and Bcc.
    let body = format!(
        "Backup «nightly» failed: {}\r\nSecond line ✓",
        "x".repeat(120)
    );
    let first = Message::builder()
        .from(mailbox("Vertice Backup <backup@vertice.test>"))
        .to(mailbox("ops@example.test"))
        .cc(mailbox("Data Team <data@example.test>"))
        .bcc(mailbox("audit@example.test"))
        .subject("Copia de seguridad fallida ✗ prod/db")
        .header(ContentType::TEXT_PLAIN)
        .body(body.clone())
        .unwrap();
    mailer(&smtp, Some((user, password)), Mechanism::Plain)
        .send(first)
        .await
        .unwrap();
    // A multipart message (text and HTML) over AUTH LOGIN.
    let second = Message::builder()
        .from(mailbox("backup@vertice.test"))
        .to(mailbox("oncall@example.test"))
        .subject("Backup succeeded")
        .multipart(MultiPart::alternative_plain_html(
            "3 databases, 12 MiB".to_owned(),
            "<p>3 databases, <b>12 MiB</b></p>".to_owned(),
        ))
        .unwrap();
    mailer(&smtp, Some((user, password)), Mechanism::Login)
        .send(second)
        .await
        .unwrap();

    let messages = smtp.wait_for_messages(2, WAIT).await.unwrap();
    assert_eq!(messages.len(), 2);
    let first = &messages[0];
    assert_eq!(first.mail_from, "backup@vertice.test");
    assert_eq!(
        first.rcpt_to,
        [
            "ops@example.test",
            "data@example.test",
            "audit@example.test"
        ]
    );
    assert_eq!(first.login.as_deref(), Some(user));
    assert!(!first.tls);
    assert_eq!(
        first.subject.as_deref(),
        Some("Copia de seguridad fallida ✗ prod/db")
    );
    assert_eq!(first.header("to"), Some("ops@example.test"));
    assert!(first.header("BCC").is_none(), "Bcc is not a header");
    assert_eq!(
        first.text_body.as_deref().map(str::trim_end),
        Some(body.as_str())
    );
    assert!(first.html_body.is_none());
    // The subject was really encoded on the wire (RFC 2047), and decoded by the receiver.
    let raw = String::from_utf8_lossy(&first.raw);
    assert!(first.raw.is_ascii(), "{raw}");
    assert!(raw.to_ascii_lowercase().contains("=?utf-8?"), "{raw}");

    let second = &messages[1];
    assert_eq!(second.rcpt_to, ["oncall@example.test"]);
    assert_eq!(
        second.text_body.as_deref().map(str::trim_end),
        Some("3 databases, 12 MiB")
    );
    assert_eq!(
        second.html_body.as_deref().map(str::trim_end),
        Some("<p>3 databases, <b>12 MiB</b></p>")
    );
    // The password never reaches the receiver's own log.
    let log = smtp.log_tail(1000);
    assert!(log.contains("accepted message"), "{log}");
    assert!(!log.contains(password), "{log}");

    let (pid, dir) = (smtp.pid().unwrap(), smtp.dir().to_path_buf());
    drop(smtp);
    assert!(!process_alive(pid), "aiosmtpd {pid} still runs after drop");
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
}

#[tokio::test]
async fn the_smtp_receiver_refuses_wrong_credentials_and_mail_without_auth() {
    let smtp = SmtpReceiver::start().await.unwrap();
    let (user, password) = (smtp.username().unwrap(), smtp.password().unwrap());
    let message = || {
        Message::builder()
            .from(mailbox("backup@vertice.test"))
            .to(mailbox("ops@example.test"))
            .subject("must not arrive")
            .body("x".to_owned())
            .unwrap()
    };
    let wrong_password = format!("{password}x");
    let cases = [
        (
            "wrong password, PLAIN",
            Some((user, wrong_password.as_str())),
            Mechanism::Plain,
        ),
        (
            "wrong password, LOGIN",
            Some((user, wrong_password.as_str())),
            Mechanism::Login,
        ),
        (
            "wrong user",
            Some(("someone-else", password)),
            Mechanism::Plain,
        ),
        ("empty password", Some((user, "")), Mechanism::Login),
        ("no AUTH at all", None, Mechanism::Plain),
    ];
    for (case, credentials, mechanism) in cases {
        let error = mailer(&smtp, credentials, mechanism)
            .send(message())
            .await
            .unwrap_err();
        assert!(error.is_permanent(), "{case}: {error:?}");
        let code = error.status().map(|code| code.to_string());
        let expected = if credentials.is_some() { "535" } else { "530" };
        assert_eq!(code.as_deref(), Some(expected), "{case}: {error:?}");
    }
    assert!(smtp.messages().unwrap().is_empty());
    // After the refusals the right credentials still work.
    mailer(&smtp, Some((user, password)), Mechanism::Plain)
        .send(message())
        .await
        .unwrap();
    assert_eq!(smtp.wait_for_messages(1, WAIT).await.unwrap().len(), 1);

    let error = smtp
        .wait_for_messages(2, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(format!("{error:#}").contains("1 arrived"), "{error:#}");
}

#[tokio::test]
async fn the_smtp_receiver_speaks_starttls_with_its_certificate() {
    let smtp = SmtpReceiver::start_with(SmtpOptions {
        starttls: true,
        require_starttls: true,
        ..SmtpOptions::default()
    })
    .await
    .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (user, password) = (smtp.username().unwrap(), smtp.password().unwrap());
    let message = |subject: &str| {
        Message::builder()
            .from(mailbox("backup@vertice.test"))
            .to(mailbox("ops@example.test"))
            .subject(subject)
            .body("over STARTTLS".to_owned())
            .unwrap()
    };
    let with_tls = |trust| {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host())
            .port(smtp.port())
            .timeout(Some(WAIT))
            .tls(starttls(&smtp, trust))
            .credentials(Credentials::new(user.to_owned(), password.to_owned()))
            .build()
    };
    with_tls(true).send(message("secure")).await.unwrap();
    let messages = smtp.wait_for_messages(1, WAIT).await.unwrap();
    assert!(messages[0].tls);
    assert_eq!(messages[0].login.as_deref(), Some(user));

    // Without trusting the certificate the client refuses the server.
    let error = with_tls(false)
        .send(message("untrusted"))
        .await
        .unwrap_err();
    // lettre reports the failed handshake as a connection error carrying rustls's verdict.
    assert!(format!("{error:?}").contains("UnknownIssuer"), "{error:?}");
    // Without STARTTLS the server refuses the client.
    let error = mailer(&smtp, Some((user, password)), Mechanism::Plain)
        .send(message("plain"))
        .await
        .unwrap_err();
    assert!(error.is_permanent(), "{error:?}");
    let code = error.status().map(|code| code.to_string());
    assert_eq!(code.as_deref(), Some("530"), "{error:?}");
    assert_eq!(smtp.messages().unwrap().len(), 1);

    let no_tls = SmtpReceiver::start().await.unwrap();
    assert!(no_tls.ca_pem().is_none());
    assert!(
        SmtpReceiver::start_with(SmtpOptions {
            require_starttls: true,
            ..SmtpOptions::default()
        })
        .await
        .is_err()
    );
}

#[tokio::test]
async fn an_open_smtp_receiver_takes_mail_without_auth() {
    let smtp = SmtpReceiver::start_with(SmtpOptions {
        credentials: None,
        ..SmtpOptions::default()
    })
    .await
    .unwrap();
    assert!(smtp.username().is_none());
    let message = Message::builder()
        .from(mailbox("backup@vertice.test"))
        .to(mailbox("ops@example.test"))
        .subject("relay")
        .body("no auth".to_owned())
        .unwrap();
    mailer(&smtp, None, Mechanism::Plain)
        .send(message)
        .await
        .unwrap();
    let messages = smtp.wait_for_messages(1, WAIT).await.unwrap();
    assert_eq!(messages[0].login, None);
    assert_eq!(messages[0].subject.as_deref(), Some("relay"));
}
