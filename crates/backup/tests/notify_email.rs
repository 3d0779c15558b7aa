//! Email notifications against testkit's real SMTP receiver (aiosmtpd): AUTH PLAIN over
//! STARTTLS and over a plain connection, an untrusted certificate, a server without STARTTLS,
//! and refused logins.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/notify_events.rs"]
mod notify_events;

use notify_events::{WAIT, event, notifier, notifier_with};
use vertice_backup::api::notify::{NotifyOn, SmtpTls};
use vertice_backup::notify::{
    Channel, ChannelTarget, DeliveryError, DeliveryResult, EmailChannel, NotificationOutcome,
    RunOutcome, SmtpCredentials,
};
use vertice_backup::source::Secret;
use vertice_testkit::services::{SmtpOptions, SmtpReceiver};

fn sent(outcome: &NotificationOutcome) -> u32 {
    match &outcome.result {
        DeliveryResult::Sent { attempts } => *attempts,
        other => panic!("{} was not sent: {other:?}", outcome.channel),
    }
}

fn failure(outcome: &NotificationOutcome) -> (u32, &DeliveryError) {
    match &outcome.result {
        DeliveryResult::Failed { attempts, error } => (*attempts, error),
        other => panic!("{} did not fail: {other:?}", outcome.channel),
    }
}

fn email_channel(smtp: &SmtpReceiver, host: &str, tls: SmtpTls, password: Option<&str>) -> Channel {
    Channel {
        name: "mail".into(),
        on: NotifyOn::Always,
        target: ChannelTarget::Email(EmailChannel {
            host: host.into(),
            port: Some(smtp.port()),
            tls,
            credentials: password.map(|password| SmtpCredentials {
                username: smtp.username().unwrap().into(),
                password: Secret::new(password),
            }),
            from: "Vertice Backup <backup@vertice.test>".into(),
            to: vec!["ops@example.test".into(), "dba@example.test".into()],
        }),
    }
}

#[tokio::test]
async fn email_is_sent_with_auth_plain_over_starttls() {
    let smtp = SmtpReceiver::start_with(SmtpOptions {
        starttls: true,
        require_starttls: true,
        ..SmtpOptions::default()
    })
    .await
    .unwrap();
    let notifier = notifier_with(1, WAIT, |config| {
        config.extra_root_certificates = vec![smtp.ca_pem().unwrap().to_owned()];
    });
    // The certificate names `localhost`: the channel's host must too.
    let channel = email_channel(&smtp, "localhost", SmtpTls::StartTLS, smtp.password());
    let outcomes = notifier
        .notify(&[channel], &event(RunOutcome::Failed))
        .await;
    assert_eq!(sent(&outcomes[0]), 1, "{}", outcomes[0]);
    let messages = smtp.wait_for_messages(1, WAIT).await.unwrap();
    let message = &messages[0];
    assert!(message.tls, "sent without STARTTLS");
    assert_eq!(message.login.as_deref(), smtp.username());
    assert_eq!(message.mail_from, "backup@vertice.test");
    assert_eq!(message.rcpt_to, ["ops@example.test", "dba@example.test"]);
    assert_eq!(
        message.subject.as_deref(),
        Some("[vertice-backup] Backup failed: team-a/nightly-28861440")
    );
    let body = message.text_body.as_deref().unwrap();
    assert!(
        body.starts_with("Backup failed: team-a/nightly-28861440 (policy nightly)"),
        "{body}"
    );
    assert!(body.contains("Error (DatabaseFailed):"), "{body}");
    assert!(body.contains("Connection refused"), "{body}");
    assert!(body.contains("Namespace:"), "{body}");
    assert!(message.html_body.is_none());

    // Without the receiver's certificate trusted, STARTTLS fails as a TLS error.
    let untrusting = notifier_with(1, WAIT, |_| {});
    let channel = email_channel(&smtp, "localhost", SmtpTls::StartTLS, smtp.password());
    let outcomes = untrusting
        .notify(&[channel], &event(RunOutcome::Failed))
        .await;
    let (_, error) = failure(&outcomes[0]);
    assert!(matches!(error, DeliveryError::Tls { .. }), "{error:?}");
    assert_eq!(smtp.messages().unwrap().len(), 1);
}

#[tokio::test]
async fn email_is_sent_with_auth_over_a_plain_connection() {
    let smtp = SmtpReceiver::start().await.unwrap();
    let notifier = notifier(1, WAIT);
    let channel = email_channel(&smtp, smtp.host(), SmtpTls::None, smtp.password());
    let outcomes = notifier
        .notify(&[channel], &event(RunOutcome::Succeeded))
        .await;
    assert_eq!(sent(&outcomes[0]), 1, "{}", outcomes[0]);
    let messages = smtp.wait_for_messages(1, WAIT).await.unwrap();
    assert!(!messages[0].tls);
    assert_eq!(messages[0].login.as_deref(), smtp.username());
    assert_eq!(
        messages[0].subject.as_deref(),
        Some("[vertice-backup] Backup succeeded: team-a/nightly-28861440")
    );
    let body = messages[0].text_body.as_deref().unwrap();
    assert!(body.contains("Stored size:"), "{body}");
    assert!(body.contains("3.0 MiB (3145728 bytes)"), "{body}");

    // StartTLS required but the server offers none: a TLS error, nothing sent.
    let channel = email_channel(&smtp, smtp.host(), SmtpTls::StartTLS, smtp.password());
    let outcomes = notifier
        .notify(&[channel], &event(RunOutcome::Succeeded))
        .await;
    let (_, error) = failure(&outcomes[0]);
    assert!(matches!(error, DeliveryError::Tls { .. }), "{error:?}");
    assert_eq!(smtp.messages().unwrap().len(), 1);
}

#[tokio::test]
async fn a_wrong_smtp_password_or_none_is_an_auth_failure_and_is_not_retried() {
    let smtp = SmtpReceiver::start().await.unwrap();
    let notifier = notifier(3, WAIT);
    let wrong = format!("{}x", smtp.password().unwrap());
    for (password, what) in [(Some(wrong.as_str()), "wrong password"), (None, "no AUTH")] {
        let channel = email_channel(&smtp, smtp.host(), SmtpTls::None, password);
        let outcomes = notifier
            .notify(&[channel], &event(RunOutcome::Failed))
            .await;
        let (attempts, error) = failure(&outcomes[0]);
        assert!(
            matches!(error, DeliveryError::SmtpAuth { .. }),
            "{what}: {error:?}"
        );
        assert_eq!(attempts, 1, "{what}");
        let text = outcomes[0].to_string();
        assert!(text.contains("refused the login"), "{text}");
        assert!(!text.contains(&wrong), "{text}");
    }
    assert!(smtp.messages().unwrap().is_empty());
    // The login was tried with AUTH PLAIN.
    let log = smtp.log_tail(100);
    assert!(log.contains("refused AUTH PLAIN"), "{log}");
}
