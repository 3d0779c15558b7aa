//! No secret of a channel or hook — a webhook URL's token, the PagerDuty routing key, a header
//! value, the SMTP password — appears in any log line (debug included), error, outcome or
//! `Debug` text, in any of the forms a leak takes (verbatim, percent-encoded, escaped, base64),
//! even when the receiver fails, hangs, refuses or echoes the secret back. Its own test binary:
//! the log capture is process-global.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/notify_events.rs"]
mod notify_events;

use std::time::Duration;

use notify_events::{WAIT, event, headers, notifier_with, token, url};
use vertice_backup::api::notify::{
    FailurePolicy, HookMethod, NotifyOn, PagerDutySeverity, SmtpTls,
};
use vertice_backup::notify::{
    Channel, ChannelTarget, EmailChannel, Hook, HookPhase, PagerDutyChannel, RunOutcome,
    SlackChannel, SmtpCredentials, WebhookChannel,
};
use vertice_backup::source::Secret;
use vertice_testkit::log_capture::{LogCapture, find_leaks};
use vertice_testkit::services::{HttpSink, Reply, SmtpReceiver};

#[tokio::test]
async fn no_secret_reaches_a_log_line_an_error_or_an_outcome() {
    let capture = LogCapture::install().unwrap();
    let slack_token = token("slacktok");
    let webhook_token = token("hooktok");
    let routing_key = token("routing");
    let header_value = token("hdrval");
    let hook_header = token("hookhdr");
    let smtp = SmtpReceiver::start().await.unwrap();
    let wrong_password = token("smtppw");

    let sink = HttpSink::start().await.unwrap();
    // Slack: 503 twice (retries are logged at debug), then a 400 that echoes the URL.
    sink.fail_next(2, 503);
    let slack_url = sink.url_for(&format!("/services/T0/B0/{slack_token}"));
    sink.script(
        1,
        Reply::Respond {
            status: 400,
            headers: vec![],
            body: format!("invalid_token for {slack_url}"),
        },
    );
    let pd_sink = HttpSink::start().await.unwrap();
    // PagerDuty: a 400 whose body echoes the routing key.
    pd_sink
        .set_default_reply(Reply::Respond {
            status: 400,
            headers: vec![],
            body: format!("{{\"status\":\"invalid event\",\"errors\":[\"routing_key {routing_key} unknown\"]}}"),
        })
        .unwrap();
    let hung = HttpSink::start().await.unwrap();
    hung.hang_next();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };

    let channels = vec![
        Channel {
            name: "slack".into(),
            on: NotifyOn::Always,
            target: ChannelTarget::Slack(SlackChannel {
                webhook_url: url(&slack_url),
            }),
        },
        Channel {
            name: "pd".into(),
            on: NotifyOn::Failure,
            target: ChannelTarget::PagerDuty(PagerDutyChannel {
                routing_key: Secret::new(routing_key.clone()),
                severity: PagerDutySeverity::Error,
            }),
        },
        // A token in the query, a secret header, a receiver that hangs.
        Channel {
            name: "hung-webhook".into(),
            on: NotifyOn::Always,
            target: ChannelTarget::Webhook(WebhookChannel {
                url: url(&hung.url_for(&format!("/in?token={webhook_token}"))),
                headers: headers(&[("Authorization", &format!("Bearer {header_value}"))]),
            }),
        },
        // A token in the user info and the path, and nobody listening.
        Channel {
            name: "gone-webhook".into(),
            on: NotifyOn::Always,
            target: ChannelTarget::Webhook(WebhookChannel {
                url: url(&format!(
                    "http://user:{webhook_token}@127.0.0.1:{closed}/x/{webhook_token}"
                )),
                headers: headers(&[("X-Api-Key", &header_value)]),
            }),
        },
        // An invalid header value carrying the secret: refused before sending.
        Channel {
            name: "bad-header".into(),
            on: NotifyOn::Always,
            target: ChannelTarget::Webhook(WebhookChannel {
                url: url(&sink.url_for("/ok")),
                headers: headers(&[("X-Key", &format!("{header_value}\r\nInjected: 1"))]),
            }),
        },
        Channel {
            name: "mail".into(),
            on: NotifyOn::Always,
            target: ChannelTarget::Email(EmailChannel {
                host: smtp.host().into(),
                port: Some(smtp.port()),
                tls: SmtpTls::None,
                credentials: Some(SmtpCredentials {
                    username: smtp.username().unwrap().into(),
                    password: Secret::new(wrong_password.clone()),
                }),
                from: "backup@vertice.test".into(),
                to: vec!["ops@example.test".into()],
            }),
        },
        // The right password: delivered, and still not printed.
        Channel {
            name: "mail-ok".into(),
            on: NotifyOn::Always,
            target: ChannelTarget::Email(EmailChannel {
                host: smtp.host().into(),
                port: Some(smtp.port()),
                tls: SmtpTls::None,
                credentials: Some(SmtpCredentials {
                    username: smtp.username().unwrap().into(),
                    password: Secret::new(smtp.password().unwrap()),
                }),
                from: "backup@vertice.test".into(),
                to: vec!["ops@example.test".into()],
            }),
        },
    ];
    let notifier = notifier_with(3, Duration::from_millis(700), |config| {
        config.pagerduty_events_url = pd_sink.url_for("/v2/enqueue");
    });
    let outcomes = notifier.notify(&channels, &event(RunOutcome::Failed)).await;
    let failed: Vec<bool> = outcomes.iter().map(|o| o.is_failure()).collect();
    assert_eq!(
        failed,
        [true, true, true, true, true, true, false],
        "{outcomes:#?}"
    );
    smtp.wait_for_messages(1, WAIT).await.unwrap();
    // The receivers really got the secrets: the check below is about what we print.
    let slack_requests = sink.wait_for_requests(3, WAIT).await.unwrap();
    assert!(slack_requests[0].path.contains(&slack_token));
    let pd_requests = pd_sink.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(
        pd_requests[0].body_json().unwrap()["routing_key"],
        routing_key.as_str()
    );
    let hung_requests = hung.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(
        hung_requests[0].header("authorization"),
        Some(format!("Bearer {header_value}").as_str())
    );

    // Hooks: a secret header, a failing Ignore hook with a token URL, a failing Fail hook.
    let hook_sink = HttpSink::start().await.unwrap();
    hook_sink.fail_next(2, 500);
    let hook = |name: &str, path: &str, policy| Hook {
        name: name.into(),
        url: url(&hook_sink.url_for(path)),
        method: HookMethod::Post,
        headers: headers(&[("Authorization", &hook_header)]),
        timeout: Duration::from_secs(2),
        failure_policy: policy,
    };
    let hooks = [
        hook(
            "ignored",
            &format!("/h?t={webhook_token}"),
            FailurePolicy::Ignore,
        ),
        hook("fatal", &format!("/h/{webhook_token}"), FailurePolicy::Fail),
    ];
    let failed = notifier
        .run_hooks(&hooks, HookPhase::Pre, &event(RunOutcome::Started))
        .await
        .unwrap_err();
    assert_eq!(failed.hook, "fatal");

    // Every text a controller could put in an Event, a status or a log.
    let mut texts: Vec<String> = Vec::new();
    for outcome in &outcomes {
        texts.push(outcome.to_string());
        texts.push(format!("{outcome:?}"));
    }
    texts.push(failed.to_string());
    texts.push(format!("{failed:?}"));
    texts.push(format!("{channels:?}"));
    texts.push(format!("{hooks:?}"));
    let secrets = [
        slack_token.as_str(),
        webhook_token.as_str(),
        routing_key.as_str(),
        header_value.as_str(),
        hook_header.as_str(),
        wrong_password.as_str(),
        smtp.password().unwrap(),
    ];
    let leaks = find_leaks(texts.iter().map(String::as_str), &secrets);
    assert!(leaks.is_empty(), "{leaks:#?}");
    // The echoed secrets were masked, not dropped with the rest of the answer.
    let pd_text = outcomes[1].to_string();
    assert!(pd_text.contains("***"), "{pd_text}");

    // The log: not empty (each outcome was logged), and clean.
    for channel in [
        "slack",
        "pd",
        "hung-webhook",
        "gone-webhook",
        "bad-header",
        "mail",
    ] {
        capture
            .wait_for_line(&format!("notification {channel} ("), WAIT)
            .await
            .unwrap();
    }
    capture.wait_for_line("retrying", WAIT).await.unwrap();
    capture
        .wait_for_line("hook `fatal` failed", WAIT)
        .await
        .unwrap();
    capture.assert_no_secret(&secrets);
}
