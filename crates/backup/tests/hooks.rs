//! Pre/post hooks against testkit's real HTTP sink: order, method, headers and body; `Fail`
//! stops at the first failure, `Ignore` goes on; timeouts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/notify_events.rs"]
mod notify_events;

use std::time::{Duration, Instant};

use notify_events::{WAIT, event, notifier};
use vertice_backup::api::notify::{FailurePolicy, HookMethod, HttpHook};
use vertice_backup::api::refs::SecretRef;
use vertice_backup::notify::{
    DEFAULT_HOOK_TIMEOUT, DeliveryError, Hook, HookPhase, ResolveError, RunOutcome, SecretData,
};
use vertice_backup::source::Secret;
use vertice_testkit::services::{HttpSink, Reply};

fn spec(name: &str, url: String, method: HookMethod, policy: FailurePolicy) -> HttpHook {
    HttpHook {
        name: name.into(),
        url,
        method,
        headers_secret_ref: None,
        timeout_seconds: None,
        failure_policy: policy,
    }
}

fn resolve(specs: &[HttpHook], secrets: &SecretData) -> Vec<Hook> {
    specs
        .iter()
        .map(|s| Hook::resolve(s, secrets).unwrap())
        .collect()
}

#[tokio::test]
async fn hooks_are_called_in_order_with_their_method_headers_and_body() {
    let sink = HttpSink::start().await.unwrap();
    let mut secrets = SecretData::new();
    secrets.insert("maint", "Authorization", Secret::new("Bearer m41nt"));
    secrets.insert("maint", "X-Env", Secret::new("prod"));
    let mut first = spec(
        "maintenance-on",
        sink.url_for("/maintenance?state=on"),
        HookMethod::Post,
        FailurePolicy::Fail,
    );
    first.headers_secret_ref = Some(SecretRef {
        name: "maint".into(),
    });
    let specs = [
        first,
        spec(
            "ping",
            sink.url_for("/ping"),
            HookMethod::Get,
            FailurePolicy::Fail,
        ),
        spec(
            "record",
            sink.url_for("/record"),
            HookMethod::Put,
            FailurePolicy::Ignore,
        ),
    ];
    let hooks = resolve(&specs, &secrets);
    assert_eq!(hooks[0].timeout, DEFAULT_HOOK_TIMEOUT);
    let run = event(RunOutcome::Started);

    let outcome = notifier(1, WAIT)
        .run_hooks(&hooks, HookPhase::Pre, &run)
        .await
        .unwrap();
    assert_eq!(outcome.phase, HookPhase::Pre);
    let called: Vec<(&str, Result<u16, DeliveryError>)> = outcome
        .calls
        .iter()
        .map(|c| (c.hook.as_str(), c.result.clone()))
        .collect();
    assert_eq!(
        called,
        [
            ("maintenance-on", Ok(200)),
            ("ping", Ok(200)),
            ("record", Ok(200))
        ]
    );
    assert_eq!(outcome.ignored_failures().count(), 0);

    let requests = sink.wait_for_requests(3, WAIT).await.unwrap();
    let order: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("POST", "/maintenance"),
            ("GET", "/ping"),
            ("PUT", "/record")
        ]
    );
    assert_eq!(requests[0].query.as_deref(), Some("state=on"));
    assert_eq!(requests[0].header("authorization"), Some("Bearer m41nt"));
    assert_eq!(requests[0].header("x-env"), Some("prod"));
    let body = requests[0].body_json().unwrap();
    assert_eq!(body["phase"], "pre");
    assert_eq!(body["hook"], "maintenance-on");
    assert_eq!(body["outcome"], "started");
    assert_eq!(body["namespace"], "team-a");
    assert_eq!(body["schemaVersion"], 1);
    assert!(requests[1].body.is_empty(), "GET has no body");
    assert_eq!(requests[1].header("authorization"), None);
    assert_eq!(requests[2].body_json().unwrap()["hook"], "record");

    // Post hooks carry the run's result.
    let done = event(RunOutcome::Failed);
    notifier(1, WAIT)
        .run_hooks(&hooks[..1], HookPhase::Post, &done)
        .await
        .unwrap();
    let requests = sink.wait_for_requests(4, WAIT).await.unwrap();
    let body = requests[3].body_json().unwrap();
    assert_eq!(body["phase"], "post");
    assert_eq!(body["outcome"], "failed");
    assert_eq!(body["error"]["kind"], "DatabaseFailed");
}

#[tokio::test]
async fn a_failing_fail_hook_stops_the_phase_and_names_itself() {
    // Several kinds of failure: a 5xx, a 4xx, a redirect (not followed), nobody listening.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let cases: [(Option<Reply>, &str); 4] = [
        (Some(Reply::status(500)), "status"),
        (Some(Reply::status(404)), "status"),
        (
            Some(Reply::Respond {
                status: 302,
                headers: vec![("Location".into(), "http://127.0.0.1:1/elsewhere".into())],
                body: String::new(),
            }),
            "status",
        ),
        (None, "connect"),
    ];
    for (reply, kind) in cases {
        let sink = HttpSink::start().await.unwrap();
        let failing_url = match &reply {
            Some(reply) => {
                sink.script(1, Reply::status(200));
                sink.script(1, reply.clone());
                sink.url_for("/second")
            }
            None => format!("http://127.0.0.1:{closed}/second"),
        };
        let specs = [
            spec(
                "first",
                sink.url_for("/first"),
                HookMethod::Post,
                FailurePolicy::Fail,
            ),
            spec("second", failing_url, HookMethod::Post, FailurePolicy::Fail),
            spec(
                "third",
                sink.url_for("/third"),
                HookMethod::Post,
                FailurePolicy::Fail,
            ),
        ];
        let hooks = resolve(&specs, &SecretData::new());
        let failed = notifier(3, WAIT)
            .run_hooks(&hooks, HookPhase::Pre, &event(RunOutcome::Started))
            .await
            .unwrap_err();
        assert_eq!(failed.hook, "second", "{kind}");
        assert_eq!(failed.phase, HookPhase::Pre);
        assert_eq!(failed.error.kind(), kind, "{failed}");
        assert_eq!(failed.outcome.calls.len(), 2);
        assert!(failed.outcome.calls[0].result.is_ok());
        assert!(
            failed.to_string().starts_with("pre hook `second` failed: "),
            "{failed}"
        );
        // Hooks are not retried, and the one after the failure is never called.
        let paths: Vec<String> = sink.requests().into_iter().map(|r| r.path).collect();
        let expected: &[&str] = if reply.is_some() {
            &["/first", "/second"]
        } else {
            &["/first"]
        };
        assert_eq!(paths, expected, "{kind}");
    }
}

#[tokio::test]
async fn a_failing_ignore_hook_is_recorded_and_the_next_ones_run() {
    let sink = HttpSink::start().await.unwrap();
    sink.fail_next(1, 503);
    sink.fail_next(1, 400);
    let specs = [
        spec(
            "a",
            sink.url_for("/a"),
            HookMethod::Post,
            FailurePolicy::Ignore,
        ),
        spec(
            "b",
            sink.url_for("/b"),
            HookMethod::Put,
            FailurePolicy::Ignore,
        ),
        spec(
            "c",
            sink.url_for("/c"),
            HookMethod::Get,
            FailurePolicy::Fail,
        ),
    ];
    let hooks = resolve(&specs, &SecretData::new());
    let outcome = notifier(3, WAIT)
        .run_hooks(&hooks, HookPhase::Post, &event(RunOutcome::Succeeded))
        .await
        .unwrap();
    let ignored: Vec<&str> = outcome
        .ignored_failures()
        .map(|c| c.hook.as_str())
        .collect();
    assert_eq!(ignored, ["a", "b"]);
    assert!(matches!(
        outcome.calls[0].result,
        Err(DeliveryError::Status { status: 503, .. })
    ));
    assert!(matches!(
        outcome.calls[1].result,
        Err(DeliveryError::Status { status: 400, .. })
    ));
    assert_eq!(outcome.calls[2].result, Ok(200));
    assert_eq!(sink.requests().len(), 3, "a 503 hook is not retried");
}

#[tokio::test]
async fn a_hung_hook_times_out_after_its_timeout_seconds() {
    for policy in [FailurePolicy::Fail, FailurePolicy::Ignore] {
        let sink = HttpSink::start().await.unwrap();
        sink.hang_next();
        let mut slow = spec("slow", sink.url_for("/slow"), HookMethod::Post, policy);
        slow.timeout_seconds = Some(1);
        let specs = [
            slow,
            spec(
                "after",
                sink.url_for("/after"),
                HookMethod::Post,
                FailurePolicy::Fail,
            ),
        ];
        let hooks = resolve(&specs, &SecretData::new());
        assert_eq!(hooks[0].timeout, Duration::from_secs(1));
        let started = Instant::now();
        let result = notifier(3, WAIT)
            .run_hooks(&hooks, HookPhase::Pre, &event(RunOutcome::Started))
            .await;
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
        assert!(elapsed < WAIT, "{elapsed:?}");
        let timed_out = |error: &DeliveryError| matches!(error, DeliveryError::Timeout { timeout, .. } if *timeout == Duration::from_secs(1));
        match policy {
            FailurePolicy::Fail => {
                let failed = result.unwrap_err();
                assert!(timed_out(&failed.error), "{failed:?}");
                assert!(failed.to_string().contains("no answer from"), "{failed}");
                assert_eq!(sink.requests().len(), 1);
            }
            FailurePolicy::Ignore => {
                let outcome = result.unwrap();
                assert!(timed_out(outcome.calls[0].result.as_ref().unwrap_err()));
                assert_eq!(outcome.calls[1].result, Ok(200));
                assert_eq!(sink.requests().len(), 2);
            }
        }
    }
}

#[test]
fn hook_specs_with_missing_secrets_or_bad_urls_do_not_resolve() {
    let mut with_headers = spec(
        "h",
        "https://example.test/x".into(),
        HookMethod::Post,
        FailurePolicy::Fail,
    );
    with_headers.headers_secret_ref = Some(SecretRef {
        name: "absent".into(),
    });
    let error = Hook::resolve(&with_headers, &SecretData::new()).unwrap_err();
    assert!(
        matches!(error, ResolveError::MissingSecret { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("for hook h"), "{error}");
    for url in ["file:///etc/passwd", "no scheme", "http://"] {
        let bad = spec("u", url.into(), HookMethod::Get, FailurePolicy::Fail);
        let error = Hook::resolve(&bad, &SecretData::new()).unwrap_err();
        assert!(
            matches!(error, ResolveError::Config { .. }),
            "{url}: {error:?}"
        );
    }
}
