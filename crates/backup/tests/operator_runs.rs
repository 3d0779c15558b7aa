//! The BackupRequest controller against the real kube-apiserver and job controller, the
//! kubelet stand-in running the real `vertice-backup runner`, real PostgreSQL and the real S3
//! server: on-demand runs succeed with the store's sizes, failures end `Failed` with their kind
//! and no more attempts than allowed, a refusing store trips the breaker, the per-project limit
//! queues, a restarted operator resumes the same Job, the in-process executor runs, and no
//! secret shows in logs, Events, status or Job specs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/operator_env.rs"]
mod operator_env;

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, PostParams};
use operator_env::{Env, eventually, sample};
use serde_json::json;
use vertice_backup::api::run::{ErrorKind, RunPhase};
use vertice_backup::api::{BackupRequest, VerticeBackup};
use vertice_core::clock::ManualClock;
use vertice_testkit::log_capture::LogCapture;

fn result(request: &BackupRequest) -> vertice_backup::api::backup_request::BackupResult {
    request
        .status
        .as_ref()
        .and_then(|status| status.result.clone())
        .unwrap_or_default()
}

fn ready_reason(request: &BackupRequest) -> String {
    request
        .status
        .as_ref()
        .and_then(|status| status.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|condition| condition.reason.clone())
        .unwrap_or_default()
}

/// Every Event of the namespace as JSON text.
async fn events_text(env: &Env) -> String {
    let api: Api<Event> = Api::namespaced(env.client.clone(), env.name());
    let events = api.list(&ListParams::default()).await.unwrap();
    serde_json::to_string(&events.items).unwrap()
}

fn assert_absent(text: &str, secrets: &[String], where_: &str) {
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "a secret is in {where_}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_runs_succeed_with_the_stored_manifests_sizes_and_leak_no_secret() {
    let logs = LogCapture::install().unwrap();
    let mut env = Env::new("runs-ok", true).await;
    env.start_operator(&[], None).await;

    // Inline.
    env.inline_request("inline-1", json!({}), json!({})).await;
    // Through a VerticeBackup, with the run's own backup name.
    let policy: VerticeBackup = serde_json::from_value(json!({
        "apiVersion": "backup.vertice.dev/v1alpha1",
        "kind": "VerticeBackup",
        "metadata": {"name": "nightly"},
        "spec": {
            "target": env.target(env.pg.port(), "db"),
            "schedule": "@yearly",
            "storage": env.storage(),
            "encryption": env.encryption(),
        },
    }))
    .unwrap();
    let policies: Api<VerticeBackup> = Api::namespaced(env.client.clone(), env.name());
    let policy = policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    env.create_request(
        "by-ref",
        json!({"backupRef": {"name": "nightly"}, "backupName": "nightly-manual"}),
        json!({}),
    )
    .await;

    for (request_name, backup_name, label) in [
        ("inline-1", "inline-1", "inline-1"),
        ("by-ref", "nightly-manual", "nightly"),
    ] {
        let done = env.wait_phase(request_name, RunPhase::Succeeded).await;
        let manifest = env.manifest(backup_name).await;
        let result = result(&done);
        assert_eq!(result.backup_name.as_deref(), Some(backup_name));
        assert_eq!(result.stored_size, Some(manifest.stored_size as i64));
        assert_eq!(result.raw_size, Some(manifest.raw_size as i64));
        assert!(manifest.raw_size > 10_000, "{}", manifest.raw_size);
        assert_eq!(
            result.location.as_deref(),
            Some(format!("s3://backups/team/app/{backup_name}").as_str())
        );
        assert_eq!(
            manifest.labels.get("backup.vertice.dev/request-uid"),
            done.metadata.uid.as_ref()
        );
        assert_eq!(
            manifest
                .labels
                .get("backup.vertice.dev/request")
                .map(String::as_str),
            Some(request_name)
        );
        assert_eq!(
            manifest
                .labels
                .get("vertice.dev/project")
                .map(String::as_str),
            Some(env.name())
        );
        let status = done.status.clone().unwrap();
        assert!(status.times.start_time.is_some() && status.times.completion_time.is_some());
        assert_eq!(ready_reason(&done), "Succeeded");
        assert_eq!(env.jobs_of(request_name).await.len(), 1);
        let series = format!(
            r#"vertice_backup_runs_total{{namespace="{0}",backup="{label}",project="{0}",environment="",result="success"}}"#,
            env.name()
        );
        let size = format!(
            r#"vertice_backup_size_bytes{{namespace="{0}",backup="{label}",project="{0}",environment=""}}"#,
            env.name()
        );
        let metrics = eventually("the run metrics", || async {
            let metrics = env.metrics().await;
            sample(&metrics, &size).is_some().then_some(metrics)
        })
        .await;
        assert_eq!(sample(&metrics, &series), Some(1.0), "{metrics}");
        assert_eq!(
            sample(&metrics, &size),
            Some(manifest.stored_size as f64),
            "{metrics}"
        );
        assert!(
            metrics.contains("vertice_backup_duration_seconds_count"),
            "{metrics}"
        );
    }
    let by_ref = env.manifest("nightly-manual").await;
    assert_eq!(
        by_ref
            .labels
            .get("backup.vertice.dev/policy")
            .map(String::as_str),
        Some("nightly")
    );
    assert_eq!(
        by_ref.labels.get("backup.vertice.dev/policy-uid"),
        policy.metadata.uid.as_ref()
    );

    // No secret in the operator's logs, the Events, the statuses or the Jobs.
    let secrets = env.secrets();
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    logs.assert_no_secret(&refs);
    assert_absent(&events_text(&env).await, &secrets, "an Event");
    let requests = env.requests().list(&ListParams::default()).await.unwrap();
    assert_absent(
        &serde_json::to_string(&requests.items).unwrap(),
        &secrets,
        "a BackupRequest",
    );
    let jobs = env.jobs().list(&ListParams::default()).await.unwrap();
    assert_eq!(jobs.items.len(), 2);
    let jobs_text = serde_json::to_string(&jobs.items).unwrap();
    assert_absent(&jobs_text, &secrets, "a Job");
    assert!(
        jobs_text.contains("/var/run/vertice/secrets/"),
        "{jobs_text}"
    );
    // Nor in what the runners printed.
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), env.name());
    let kubelet = env.kubelet.as_ref().unwrap();
    let pods = pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(pods.items.len(), 2);
    for pod in &pods.items {
        let name = pod.metadata.name.clone().unwrap();
        let log = kubelet.logs(env.name(), &name, "runner");
        assert!(
            log.contains("storedSize"),
            "the runner printed its result: {log}"
        );
        assert_absent(&log, &secrets, "a runner's log");
    }
    env.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_failures_end_failed_after_exactly_the_allowed_attempts() {
    let mut env = Env::new("runs-dbfail", true).await;
    env.start_operator(&["--run-backoff-limit", "1"], None)
        .await;
    env.secret("wrong", &[("password", "not-the-password".to_owned())])
        .await;
    // A port nobody listens on: the database is down.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    env.create_request(
        "db-down",
        json!({
            "target": env.target(closed, "db"),
            "storage": env.storage(),
            "encryption": env.encryption(),
        }),
        json!({}),
    )
    .await;
    env.create_request(
        "wrong-password",
        json!({
            "target": env.target(env.pg.port(), "wrong"),
            "storage": env.storage(),
            "encryption": env.encryption(),
        }),
        json!({}),
    )
    .await;
    for name in ["db-down", "wrong-password"] {
        let failed = env.wait_phase(name, RunPhase::Failed).await;
        let result = result(&failed);
        assert_eq!(result.error_kind, Some(ErrorKind::DatabaseFailed), "{name}");
        assert!(
            result
                .error_message
                .as_deref()
                .unwrap_or_default()
                .contains("connect"),
            "{name}: {:?}",
            result.error_message
        );
        assert_eq!(ready_reason(&failed), "DatabaseFailed");
        // backoffLimit 1: two Pods, one Job, never more.
        let jobs = env.jobs_of(name).await;
        assert_eq!(jobs.len(), 1, "{name}");
        let job_status = jobs[0].status.clone().unwrap_or_default();
        assert_eq!(job_status.failed, Some(2), "{name}");
        assert_eq!(failed.status.as_ref().unwrap().attempts, Some(2), "{name}");
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), env.name());
        let job_name = jobs[0].metadata.name.clone().unwrap();
        let pods = pods
            .list(
                &ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job_name}")),
            )
            .await
            .unwrap();
        assert_eq!(pods.items.len(), 2, "{name}");
        let series = format!(
            r#"vertice_backup_runs_total{{namespace="{0}",backup="{name}",project="{0}",environment="",result="failure"}}"#,
            env.name()
        );
        let metrics = eventually("the failure metric", || async {
            let metrics = env.metrics().await;
            sample(&metrics, &series).map(|_| metrics)
        })
        .await;
        assert_eq!(sample(&metrics, &series), Some(1.0), "{metrics}");
    }
    // A wrong password never shows either.
    assert_absent(
        &events_text(&env).await,
        &["not-the-password".to_owned()],
        "an Event",
    );

    // A missing Secret: Ready=False with the reason, no Job, the run waits.
    let missing = env
        .create_request(
            "no-secret",
            json!({
                "target": env.target(env.pg.port(), "absent"),
                "storage": env.storage(),
                "encryption": env.encryption(),
            }),
            json!({}),
        )
        .await;
    let waiting = eventually("the missing Secret to be reported", || async {
        let request = env.requests().get("no-secret").await.ok()?;
        (ready_reason(&request) == "SecretNotFound").then_some(request)
    })
    .await;
    assert_eq!(
        waiting.status.as_ref().map(|s| s.phase),
        Some(RunPhase::Pending)
    );
    assert!(env.jobs_of("no-secret").await.is_empty());
    // Once the Secret exists, the run goes on by itself.
    env.secret("absent", &[("password", env.pg.password().to_owned())])
        .await;
    env.wait_phase("no-secret", RunPhase::Succeeded).await;
    drop(missing);
    env.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_store_trips_the_breaker_until_a_probe_answers() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let mut env = Env::new("runs-breaker", true).await;
    env.start_operator(
        &[
            "--run-backoff-limit",
            "0",
            "--storage-probe-interval-seconds",
            "30",
        ],
        Some(clock.clone()),
    )
    .await;
    // The store refuses these credentials.
    env.secret(
        "s3",
        &[
            ("AWS_ACCESS_KEY_ID", "AKWRONG".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "wrong-secret".to_owned()),
        ],
    )
    .await;
    env.inline_request("first", json!({}), json!({})).await;
    let first = env.wait_phase("first", RunPhase::Failed).await;
    assert_eq!(result(&first).error_kind, Some(ErrorKind::StorageFailed));
    assert_eq!(env.jobs_of("first").await.len(), 1);

    // The breaker is open: the next runs fail fast, without a Job.
    for name in ["second", "third"] {
        env.inline_request(name, json!({}), json!({})).await;
        let failed = env.wait_phase(name, RunPhase::Failed).await;
        assert_eq!(ready_reason(&failed), "StorageUnavailable", "{name}");
        assert_eq!(result(&failed).error_kind, Some(ErrorKind::StorageFailed));
        assert!(env.jobs_of(name).await.is_empty(), "{name}");
    }
    // A probe is due, but the store still refuses: fail fast again.
    clock.advance(TimeDelta::seconds(31));
    env.inline_request("probe-fails", json!({}), json!({}))
        .await;
    let failed = env.wait_phase("probe-fails", RunPhase::Failed).await;
    assert_eq!(ready_reason(&failed), "StorageUnavailable");
    assert!(env.jobs_of("probe-fails").await.is_empty());

    // The store answers again; after the probe interval the next run probes, closes the
    // breaker and runs.
    env.secret(
        "s3",
        &[
            ("AWS_ACCESS_KEY_ID", env.s3.access_key().to_owned()),
            ("AWS_SECRET_ACCESS_KEY", env.s3.secret_key().to_owned()),
        ],
    )
    .await;
    env.inline_request("too-soon", json!({}), json!({})).await;
    let failed = env.wait_phase("too-soon", RunPhase::Failed).await;
    assert_eq!(ready_reason(&failed), "StorageUnavailable");
    clock.advance(TimeDelta::seconds(31));
    env.inline_request("recovered", json!({}), json!({})).await;
    env.wait_phase("recovered", RunPhase::Succeeded).await;
    assert_eq!(env.jobs_of("recovered").await.len(), 1);
    env.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_project_limit_queues_runs_and_starts_them_as_slots_free() {
    // No kubelet at first: Jobs exist but nothing runs, so the queue can be looked at.
    let mut env = Env::new("runs-queue", false).await;
    env.start_operator(&["--max-concurrent-runs-per-project", "2"], None)
        .await;
    let project = json!({"vertice.dev/project": "team-a"});
    for name in ["q-1", "q-2", "q-3"] {
        env.inline_request(name, json!({}), project.clone()).await;
    }
    // Another project is not held up.
    env.inline_request("other", json!({}), json!({"vertice.dev/project": "team-b"}))
        .await;
    let (running, queued) = eventually("two running and one queued", || async {
        let list = env.requests().list(&ListParams::default()).await.ok()?;
        let in_phase = |phase: RunPhase| -> Vec<BackupRequest> {
            list.items
                .iter()
                .filter(|r| {
                    r.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("vertice.dev/project"))
                        .map(String::as_str)
                        == Some("team-a")
                })
                .filter(|r| r.status.as_ref().map(|s| s.phase) == Some(phase))
                .cloned()
                .collect()
        };
        let running = in_phase(RunPhase::Running);
        let queued = in_phase(RunPhase::Queued);
        (running.len() == 2 && queued.len() == 1).then_some((running, queued))
    })
    .await;
    let message = queued[0]
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("team-a"), "{message}");
    for run in &running {
        let name = run.metadata.name.clone().unwrap();
        assert!(message.contains(&name), "{message} names {name}");
    }
    let queued_name = queued[0].metadata.name.clone().unwrap();
    assert!(env.jobs_of(&queued_name).await.is_empty());
    env.wait_phase("other", RunPhase::Running).await;

    // Runs execute; the queued one starts when a slot frees, and all succeed.
    env.start_kubelet().await;
    for name in ["q-1", "q-2", "q-3", "other"] {
        env.wait_phase(name, RunPhase::Succeeded).await;
    }
    assert_eq!(env.jobs_of(&queued_name).await.len(), 1);
    env.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_resumes_the_same_job_with_no_duplicate_backup() {
    let mut env = Env::new("runs-restart", false).await;
    env.start_operator(&[], None).await;
    env.inline_request("resume", json!({}), json!({})).await;
    env.wait_phase("resume", RunPhase::Running).await;
    let jobs = eventually("the Job", || async {
        let jobs = env.jobs_of("resume").await;
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    let job_uid = jobs[0].metadata.uid.clone();

    // The operator stops mid-run; the run goes on without it.
    env.stop_operator().await;
    env.start_kubelet().await;
    eventually("the Job to complete", || async {
        let job = env
            .jobs()
            .get(jobs[0].metadata.name.as_deref()?)
            .await
            .ok()?;
        (job.status?.succeeded? == 1).then_some(())
    })
    .await;

    env.start_operator(&[], None).await;
    let done = env.wait_phase("resume", RunPhase::Succeeded).await;
    let after = env.jobs_of("resume").await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].metadata.uid, job_uid);
    let (store, _dir) = env.store();
    assert_eq!(store.list_backup_names().await.unwrap(), ["resume"]);
    let manifest = env.manifest("resume").await;
    assert_eq!(result(&done).stored_size, Some(manifest.stored_size as i64));
    env.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_run_succeeds_without_a_job() {
    let mut env = Env::new("runs-inproc", false).await;
    env.start_operator(&[], None).await;
    env.inline_request(
        "local-run",
        json!({"executor": {"type": "InProcess"}}),
        json!({}),
    )
    .await;
    let done = env.wait_phase("local-run", RunPhase::Succeeded).await;
    let manifest = env.manifest("local-run").await;
    assert_eq!(result(&done).stored_size, Some(manifest.stored_size as i64));
    assert_eq!(result(&done).raw_size, Some(manifest.raw_size as i64));
    assert_eq!(
        manifest.labels.get("backup.vertice.dev/request-uid"),
        done.metadata.uid.as_ref()
    );
    assert!(env.jobs_of("local-run").await.is_empty());
    // The in-process run read the Secrets itself: nothing of them in the logs or Events.
    let secrets = env.secrets();
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    LogCapture::install().unwrap().assert_no_secret(&refs);
    assert_absent(&events_text(&env).await, &secrets, "an Event");
    env.stop_operator().await;
}
