//! Notifications against real receivers: testkit's HTTP sink (Slack, PagerDuty, webhooks) and
//! its aiosmtpd SMTP receiver (email with AUTH, STARTTLS or plain).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/notify_events.rs"]
mod notify_events;

use std::time::{Duration, Instant};

use notify_events::{WAIT, event, headers, notifier, notifier_with, token, url, webhook};
use vertice_backup::api::notify::{
    EmailSpec, NotificationSpec, NotifyOn, PagerDutySeverity, PagerDutySpec, SlackSpec, SmtpTls,
    WebhookSpec,
};
use vertice_backup::api::refs::{SecretKeyRef, SecretRef};
use vertice_backup::notify::{
    Channel, ChannelKind, ChannelTarget, DeliveryError, DeliveryResult, NotificationOutcome,
    PagerDutyChannel, ResolveError, RunOutcome, SecretData, SkipReason, SlackChannel,
    WebhookChannel, referenced_secrets,
};
use vertice_backup::source::Secret;
use vertice_testkit::services::{HttpSink, Reply};

fn slack(name: &str, on: NotifyOn, url_text: &str) -> Channel {
    Channel {
        name: name.into(),
        on,
        target: ChannelTarget::Slack(SlackChannel {
            webhook_url: url(url_text),
        }),
    }
}

fn pager_duty(routing_key: &str, on: NotifyOn) -> Channel {
    Channel {
        name: "oncall".into(),
        on,
        target: ChannelTarget::PagerDuty(PagerDutyChannel {
            routing_key: Secret::new(routing_key),
            severity: PagerDutySeverity::Critical,
        }),
    }
}

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

// ---- request shapes ----

#[tokio::test]
async fn slack_gets_a_json_text_and_blocks_post_on_the_webhook_path() {
    let sink = HttpSink::start().await.unwrap();
    let notifier = notifier(1, WAIT);
    for outcome in [RunOutcome::Failed, RunOutcome::Succeeded] {
        let channel = slack(
            "ops",
            NotifyOn::Always,
            &sink.url_for("/services/T0/B0/tok"),
        );
        let outcomes = notifier.notify(&[channel], &event(outcome)).await;
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes[0].kind, ChannelKind::Slack);
        assert_eq!(sent(&outcomes[0]), 1);
    }
    let requests = sink.wait_for_requests(2, WAIT).await.unwrap();
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/services/T0/B0/tok");
        assert_eq!(request.header("content-type"), Some("application/json"));
    }
    let failed = requests[0].body_json().unwrap();
    let text = failed["text"].as_str().unwrap();
    assert!(
        text.starts_with(":x: Backup failed: team-a/nightly-28861440"),
        "{text}"
    );
    assert!(text.contains("DatabaseFailed"), "{text}");
    let blocks = failed["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(
        blocks[0]["text"]["text"],
        "Backup failed: team-a/nightly-28861440"
    );
    let fields: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"*Policy*\nnightly"), "{fields:?}");
    assert!(
        fields.contains(&"*Error kind*\nDatabaseFailed"),
        "{fields:?}"
    );
    // The error block, with mrkdwn control characters escaped (the quotes stay).
    let error = blocks[2]["text"]["text"].as_str().unwrap();
    assert!(error.contains("Connection refused"), "{error}");
    assert_eq!(blocks.last().unwrap()["type"], "context");

    let succeeded = requests[1].body_json().unwrap();
    assert!(
        succeeded["text"]
            .as_str()
            .unwrap()
            .starts_with(":white_check_mark: Backup succeeded")
    );
    let fields = succeeded["blocks"][1]["fields"].to_string();
    assert!(fields.contains("3.0 MiB"), "{fields}");
    assert!(
        fields.contains("s3://backups/team-a/nightly/20261130T040000Z-ab12"),
        "{fields}"
    );
}

#[tokio::test]
async fn a_webhook_gets_the_event_json_and_the_secret_headers() {
    let sink = HttpSink::start().await.unwrap();
    let channel = Channel {
        name: "audit".into(),
        on: NotifyOn::Always,
        target: ChannelTarget::Webhook(WebhookChannel {
            url: url(&sink.url_for("/in/backup?token=abc123")),
            headers: headers(&[("Authorization", "Bearer t0ken"), ("X-Team", "data")]),
        }),
    };
    let run = event(RunOutcome::Succeeded);
    let outcomes = notifier(1, WAIT).notify(&[channel], &run).await;
    assert_eq!(sent(&outcomes[0]), 1);
    let requests = sink.wait_for_requests(1, WAIT).await.unwrap();
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/in/backup");
    assert_eq!(request.query.as_deref(), Some("token=abc123"));
    assert_eq!(request.header("authorization"), Some("Bearer t0ken"));
    assert_eq!(request.header("x-team"), Some("data"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.body_json().unwrap();
    assert_eq!(body, run.to_json());
    assert_eq!(body["schemaVersion"], 1);
    assert_eq!(body["kind"], "backup");
    assert_eq!(body["outcome"], "succeeded");
    assert_eq!(body["policy"], "nightly");
    assert_eq!(body["backupName"], "20261130T040000Z-ab12");
    assert_eq!(body["rawBytes"], 10 * 1024 * 1024);
    assert_eq!(body["storedBytes"], 3 * 1024 * 1024);
    assert_eq!(body["durationSeconds"], 4.25);
    assert_eq!(body["time"], "2026-11-29T04:00:00Z");
    assert!(body.get("error").is_none());
}

#[tokio::test]
async fn pagerduty_triggers_on_failure_and_resolves_on_success_with_one_dedup_key() {
    let sink = HttpSink::start().await.unwrap();
    sink.set_default_reply(Reply::Respond {
        status: 202,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: r#"{"status":"success","message":"Event processed"}"#.into(),
    })
    .unwrap();
    let notifier = notifier_with(1, WAIT, |config| {
        config.pagerduty_events_url = sink.url_for("/v2/enqueue");
    });
    let key = "R0UTINGKEY0123456789abcdef012345";
    let channel = pager_duty(key, NotifyOn::Failure);
    for outcome in [
        RunOutcome::Failed,
        RunOutcome::Failed,
        RunOutcome::Succeeded,
    ] {
        let outcomes = notifier
            .notify(std::slice::from_ref(&channel), &event(outcome))
            .await;
        assert_eq!(sent(&outcomes[0]), 1);
    }
    // Another policy's failure gets its own key.
    let mut other = event(RunOutcome::Failed);
    other.policy = Some("hourly".into());
    notifier
        .notify(std::slice::from_ref(&channel), &other)
        .await;

    let requests = sink.wait_for_requests(4, WAIT).await.unwrap();
    let bodies: Vec<serde_json::Value> = requests.iter().map(|r| r.body_json().unwrap()).collect();
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v2/enqueue");
    }
    let actions: Vec<&str> = bodies
        .iter()
        .map(|b| b["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "trigger", "resolve", "trigger"]);
    assert_eq!(
        bodies[0]["dedup_key"],
        "vertice-backup/team-a/nightly/backup"
    );
    assert_eq!(bodies[0]["dedup_key"], bodies[1]["dedup_key"]);
    assert_eq!(bodies[0]["dedup_key"], bodies[2]["dedup_key"]);
    assert_eq!(
        bodies[3]["dedup_key"],
        "vertice-backup/team-a/hourly/backup"
    );
    let trigger = &bodies[0];
    assert_eq!(trigger["routing_key"], key);
    let payload = &trigger["payload"];
    assert!(
        payload["summary"]
            .as_str()
            .unwrap()
            .starts_with("Backup failed: team-a/nightly-28861440")
    );
    assert_eq!(payload["source"], "vertice-backup/team-a/nightly-28861440");
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["custom_details"]["error"]["kind"], "DatabaseFailed");
    assert_eq!(payload["custom_details"]["outcome"], "failed");
}

// ---- `on` ----

#[tokio::test]
async fn each_channel_is_used_only_for_the_outcomes_its_on_names() {
    let sink = HttpSink::start().await.unwrap();
    let notifier = notifier_with(1, WAIT, |config| {
        config.pagerduty_events_url = sink.url_for("/pd");
    });
    let channels = [
        webhook("failure", NotifyOn::Failure, &sink.url_for("/failure")),
        webhook("success", NotifyOn::Success, &sink.url_for("/success")),
        slack("always", NotifyOn::Always, &sink.url_for("/always")),
        pager_duty("key-for-success-only", NotifyOn::Success),
    ];
    let cases = [
        (
            RunOutcome::Failed,
            vec!["/failure", "/always"],
            vec!["success", "oncall"],
        ),
        (
            RunOutcome::Succeeded,
            vec!["/success", "/always", "/pd"],
            vec!["failure"],
        ),
        (
            RunOutcome::Started,
            vec![],
            vec!["failure", "success", "always", "oncall"],
        ),
    ];
    let mut seen = 0;
    for (outcome, paths, skipped) in cases {
        let outcomes = notifier.notify(&channels, &event(outcome)).await;
        let names: Vec<&str> = outcomes.iter().map(|o| o.channel.as_str()).collect();
        assert_eq!(
            names,
            ["failure", "success", "always", "oncall"],
            "in the order given"
        );
        let skipped_now: Vec<&str> = outcomes
            .iter()
            .filter(|o| matches!(o.result, DeliveryResult::Skipped(_)))
            .map(|o| o.channel.as_str())
            .collect();
        assert_eq!(skipped_now, skipped, "{outcome:?}");
        if outcome == RunOutcome::Started {
            assert!(
                outcomes
                    .iter()
                    .all(|o| o.result == DeliveryResult::Skipped(SkipReason::RunNotEnded))
            );
        }
        // `notify` returns after every request was answered, so the record is complete.
        let requests = sink.requests();
        let mut arrived: Vec<&str> = requests[seen..].iter().map(|r| r.path.as_str()).collect();
        arrived.sort();
        let mut expected = paths.clone();
        expected.sort();
        assert_eq!(arrived, expected, "{outcome:?}");
        seen = requests.len();
    }
}

// ---- retries, give-up, timeouts ----

#[tokio::test]
async fn http_503_and_429_are_retried_honouring_retry_after_then_the_message_goes_through() {
    let sink = HttpSink::start().await.unwrap();
    sink.fail_next(2, 503);
    sink.script(
        1,
        Reply::Respond {
            status: 429,
            headers: vec![("Retry-After".into(), "1".into())],
            body: "rate limited".into(),
        },
    );
    let started = Instant::now();
    let outcomes = notifier(5, WAIT)
        .notify(
            &[slack("ops", NotifyOn::Failure, &sink.url_for("/s"))],
            &event(RunOutcome::Failed),
        )
        .await;
    assert_eq!(sent(&outcomes[0]), 4);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured ({:?})",
        started.elapsed()
    );
    assert_eq!(
        outcomes[0].to_string(),
        "notification ops (slack) sent after 4 attempts"
    );
    let replies: Vec<Reply> = sink.requests().into_iter().map(|r| r.reply).collect();
    assert_eq!(replies.len(), 4);
    assert_eq!(replies[3], Reply::status(200));
}

#[tokio::test]
async fn a_channel_gives_up_after_its_attempts_and_says_why() {
    let sink = HttpSink::start().await.unwrap();
    let notifier = notifier(3, WAIT);
    let channel = |path: &str| webhook("hook", NotifyOn::Failure, &sink.url_for(path));

    // 5xx until the attempts are used up.
    sink.fail_next(10, 500);
    let outcomes = notifier
        .notify(&[channel("/a")], &event(RunOutcome::Failed))
        .await;
    let (attempts, error) = failure(&outcomes[0]);
    assert_eq!(attempts, 3);
    assert!(
        matches!(error, DeliveryError::Status { status: 500, .. }),
        "{error:?}"
    );
    assert!(outcomes[0].is_failure());
    let text = outcomes[0].to_string();
    assert!(text.contains("failed after 3 attempts"), "{text}");
    assert!(
        text.contains(&format!("{} answered HTTP 500", sink.url())),
        "{text}"
    );
    assert_eq!(sink.requests().len(), 3);

    // A 4xx other than 408/425/429 is the receiver saying no: not retried.
    let refusing = HttpSink::start().await.unwrap();
    for (done, status) in [400u16, 403, 404, 410].into_iter().enumerate() {
        refusing.script(1, Reply::status(status));
        let channel = webhook("hook", NotifyOn::Failure, &refusing.url_for("/b"));
        let outcomes = notifier
            .notify(&[channel], &event(RunOutcome::Failed))
            .await;
        let (attempts, error) = failure(&outcomes[0]);
        assert_eq!(attempts, 1, "{status}");
        assert!(matches!(error, DeliveryError::Status { status: s, .. } if *s == status));
        assert_eq!(refusing.requests().len(), done + 1, "{status} was retried");
    }
    // A Retry-After longer than allowed ends the delivery at once.
    let sink2 = HttpSink::start().await.unwrap();
    sink2.script(
        1,
        Reply::Respond {
            status: 429,
            headers: vec![("Retry-After".into(), "3600".into())],
            body: String::new(),
        },
    );
    let outcomes = notifier
        .notify(
            &[webhook("hook", NotifyOn::Failure, &sink2.url_for("/c"))],
            &event(RunOutcome::Failed),
        )
        .await;
    let (attempts, error) = failure(&outcomes[0]);
    assert_eq!(attempts, 1);
    assert!(
        matches!(error, DeliveryError::RetryAfterTooLong { status: 429, retry_after, .. } if retry_after.as_secs() == 3600),
        "{error:?}"
    );

    // Nobody listening: connection errors are retried, then reported as such.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let outcomes = notifier
        .notify(
            &[webhook(
                "gone",
                NotifyOn::Failure,
                &format!("http://127.0.0.1:{closed}/x"),
            )],
            &event(RunOutcome::Failed),
        )
        .await;
    let (attempts, error) = failure(&outcomes[0]);
    assert_eq!(attempts, 3);
    assert!(matches!(error, DeliveryError::Connect { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot connect to http://127.0.0.1:{closed}"))
    );
}

#[tokio::test]
async fn a_hung_receiver_times_out_without_holding_up_the_other_channels() {
    let hung = HttpSink::start().await.unwrap();
    let healthy = HttpSink::start().await.unwrap();
    hung.hang_next();
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let outcomes = notifier(3, timeout)
        .notify(
            &[
                slack("slow", NotifyOn::Failure, &hung.url_for("/s")),
                webhook("fine", NotifyOn::Failure, &healthy.url_for("/w")),
            ],
            &event(RunOutcome::Failed),
        )
        .await;
    let (attempts, error) = failure(&outcomes[0]);
    // A timeout is not retried: the receiver may already have the message.
    assert_eq!(attempts, 1);
    assert!(
        matches!(error, DeliveryError::Timeout { timeout: t, .. } if *t == timeout),
        "{error:?}"
    );
    assert!(
        outcomes[0].to_string().contains("no answer from"),
        "{}",
        outcomes[0]
    );
    assert_eq!(sent(&outcomes[1]), 1);
    assert!(started.elapsed() < WAIT);
    assert_eq!(hung.requests().len(), 1);
    assert_eq!(healthy.requests().len(), 1);
}

// ---- resolving specs ----

fn key(name: &str, key: &str) -> SecretKeyRef {
    SecretKeyRef {
        name: name.into(),
        key: key.into(),
    }
}

fn spec(name: &str) -> NotificationSpec {
    NotificationSpec {
        name: name.into(),
        on: NotifyOn::Always,
        slack: None,
        pager_duty: None,
        webhook: None,
        email: None,
    }
}

#[tokio::test]
async fn specs_resolve_from_secret_data_and_missing_values_are_named() {
    let sink = HttpSink::start().await.unwrap();
    let slack_token = token("slack");
    let mut secrets = SecretData::new();
    secrets.insert(
        "slack",
        "url",
        Secret::new(sink.url_for(&format!("/services/{slack_token}"))),
    );
    secrets.insert("pd", "routingKey", Secret::new("  key-with-spaces \n"));
    secrets.insert("hook", "url", Secret::new(sink.url_for("/hook")));
    secrets.insert("hook-headers", "Authorization", Secret::new("Bearer z"));
    secrets.insert("smtp", "username", Secret::new("vertice"));
    secrets.insert("smtp", "password", Secret::new("pw"));
    assert!(!format!("{secrets:?}").contains(&slack_token));

    let specs = vec![
        NotificationSpec {
            slack: Some(SlackSpec {
                webhook_url_secret_ref: key("slack", "url"),
            }),
            ..spec("a")
        },
        NotificationSpec {
            pager_duty: Some(PagerDutySpec {
                routing_key_secret_ref: key("pd", "routingKey"),
                severity: PagerDutySeverity::Warning,
            }),
            ..spec("b")
        },
        NotificationSpec {
            webhook: Some(WebhookSpec {
                url_secret_ref: key("hook", "url"),
                headers_secret_ref: Some(SecretRef {
                    name: "hook-headers".into(),
                }),
            }),
            ..spec("c")
        },
        NotificationSpec {
            email: Some(EmailSpec {
                smtp_host: "smtp.example.test".into(),
                smtp_port: None,
                tls: SmtpTls::TLS,
                credentials_secret_ref: Some(SecretRef {
                    name: "smtp".into(),
                }),
                from: "b@vertice.test".into(),
                to: vec!["o@example.test".into()],
            }),
            ..spec("d")
        },
    ];
    assert_eq!(
        referenced_secrets(&specs, &[])
            .into_iter()
            .collect::<Vec<_>>(),
        ["hook", "hook-headers", "pd", "slack", "smtp"]
    );
    let channels: Vec<Channel> = specs
        .iter()
        .map(|s| Channel::resolve(s, &secrets).unwrap())
        .collect();
    let kinds: Vec<ChannelKind> = channels.iter().map(Channel::kind).collect();
    assert_eq!(
        kinds,
        [
            ChannelKind::Slack,
            ChannelKind::PagerDuty,
            ChannelKind::Webhook,
            ChannelKind::Email
        ]
    );
    match &channels[1].target {
        ChannelTarget::PagerDuty(pd) => assert_eq!(pd.routing_key.expose(), "key-with-spaces"),
        other => panic!("{other:?}"),
    }
    match &channels[3].target {
        ChannelTarget::Email(mail) => assert_eq!(mail.port(), 465),
        other => panic!("{other:?}"),
    }
    let debug = format!("{channels:?}");
    assert!(!debug.contains(&slack_token), "{debug}");
    assert!(!debug.contains("Bearer z"), "{debug}");
    assert!(!debug.contains("key-with-spaces"), "{debug}");

    // The resolved Slack channel really sends to the URL from the Secret.
    let outcomes = notifier(1, WAIT)
        .notify(&channels[..1], &event(RunOutcome::Failed))
        .await;
    assert_eq!(sent(&outcomes[0]), 1);
    let requests = sink.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(requests[0].path, format!("/services/{slack_token}"));

    // Missing Secrets and keys, unusable values: each named, no value shown.
    let mut broken = SecretData::new();
    broken.insert("slack", "other", Secret::new("x"));
    broken.insert(
        "bad-url",
        "url",
        Secret::new("ftp://files.example.test/s3cr3t"),
    );
    broken.insert("bad-header", "Bad Header", Secret::new("s3cr3t"));
    let cases: Vec<(NotificationSpec, &str)> = vec![
        (
            specs[0].clone(),
            "Secret `slack` has no key `url` (for notification a)",
        ),
        (
            specs[1].clone(),
            "Secret `pd` (for notification b) was not found",
        ),
        (
            NotificationSpec {
                slack: Some(SlackSpec {
                    webhook_url_secret_ref: key("bad-url", "url"),
                }),
                ..spec("e")
            },
            "the Slack webhook URL is not a usable http(s) URL",
        ),
        (
            NotificationSpec {
                webhook: Some(WebhookSpec {
                    url_secret_ref: key("bad-url", "url"),
                    headers_secret_ref: None,
                }),
                ..spec("f")
            },
            "scheme `ftp` is not http or https",
        ),
        (
            NotificationSpec {
                webhook: Some(WebhookSpec {
                    url_secret_ref: key("hook", "url"),
                    headers_secret_ref: Some(SecretRef {
                        name: "bad-header".into(),
                    }),
                }),
                ..spec("g")
            },
            "Secret `hook` (for notification g) was not found",
        ),
        (spec("h"), "none of slack, pagerDuty, webhook, email is set"),
    ];
    for (spec, expected) in cases {
        let error = Channel::resolve(&spec, &broken).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(expected), "{}: {text}", spec.name);
        assert!(!text.contains("s3cr3t"), "{text}");
    }
    broken.insert("hook", "url", Secret::new("https://example.test/x"));
    let error = Channel::resolve(
        &NotificationSpec {
            webhook: Some(WebhookSpec {
                url_secret_ref: key("hook", "url"),
                headers_secret_ref: Some(SecretRef {
                    name: "bad-header".into(),
                }),
            }),
            ..spec("g")
        },
        &broken,
    )
    .unwrap_err();
    assert!(matches!(error, ResolveError::Config { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("header `Bad Header` cannot be sent"),
        "{error}"
    );
}
