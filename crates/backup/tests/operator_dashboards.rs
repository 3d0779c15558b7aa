//! The dashboards and alerts against a RUNNING backup operator: the real test Prometheus
//! scrapes the operator (in this process, with the kubelet stand-in running the real
//! `vertice-backup runner`, real PostgreSQL and the real S3 server) after it has made scheduled
//! backups whose webhook notification fails, a failed inline run, a restore drill and a reconcile
//! that waits on a missing VerticeBackup. Then:
//! - every panel's PromQL in `dashboards/*.json` (Grafana variables replaced by their "All"
//!   value, `$__rate_interval` by `1m`, `$__range` by `1h`) parses in Prometheus and returns
//!   series;
//! - one source of metric names: every metric a dashboard or `alerts/*.rules.yaml` names is
//!   exported by the operator (its own `/metrics`, not a copied list) or declared external
//!   (`vertice_testkit::monitoring::EXTERNAL_METRICS`), and every exported metric is on a
//!   dashboard.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/operator_env.rs"]
mod operator_env;
#[path = "support/snapshots.rs"]
mod snapshots;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Api;
use operator_env::{Env, eventually};
use serde_json::{Value, json};
use vertice_backup::api::VerticeBackup;
use vertice_backup::api::run::RunPhase;
use vertice_testkit::monitoring::{
    EXTERNAL_METRICS, FoundQuery, all_queries, exported_families, metric_names,
};
use vertice_testkit::services::{Prometheus, PrometheusOptions};

/// How long the scheduled backup and drill may take: both wait for a minute boundary.
const SLOW_WAIT: Duration = Duration::from_secs(300);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Polls `check` until it gives a value, for at most [`SLOW_WAIT`].
async fn slowly<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    vertice_testkit::wait::eventually(what, SLOW_WAIT, check)
        .await
        .unwrap()
}

/// `(variable, value)` for every variable of every dashboard: Grafana's "All" (`allValue`) for
/// the dashboard's own, fixed windows for Grafana's built-ins.
fn substitutions(dashboards: &[Value]) -> Vec<(String, String)> {
    let mut pairs = vec![
        ("__rate_interval".to_owned(), "1m".to_owned()),
        ("__range".to_owned(), "1h".to_owned()),
        ("__interval".to_owned(), "15s".to_owned()),
    ];
    for dashboard in dashboards {
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let (Some(name), Some(all)) =
                (variable["name"].as_str(), variable["allValue"].as_str())
            {
                pairs.push((name.to_owned(), all.to_owned()));
            }
        }
    }
    // Longest names first, so `$backup` never eats the start of a `$backups`.
    pairs.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    pairs
}

fn substitute(expr: &str, pairs: &[(String, String)]) -> String {
    let mut expr = expr.to_owned();
    for (name, value) in pairs {
        expr = expr
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    expr
}

fn dashboards() -> Vec<Value> {
    let dir = workspace().join("dashboards");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            found.push(serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap());
        }
    }
    assert!(!found.is_empty(), "no dashboards in {}", dir.display());
    found
}

/// The scrape job the overview expects for the backup operator (its `job` variable).
fn backup_job(dashboards: &[Value]) -> String {
    dashboards
        .iter()
        .flat_map(|d| {
            d["templating"]["list"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|v| v["name"] == "job")
        .and_then(|v| v["allValue"].as_str().map(str::to_owned))
        .expect("the overview has a `job` variable")
}

/// Makes the operator do everything the dashboards show: scheduled backups of `shop` with
/// restore drills and a webhook that cannot be reached, a failed inline run, a run that waits
/// on a missing VerticeBackup (a reconcile error), and a run of an RDS snapshot (moto).
async fn exercise(env: &Env) {
    let mut policy = json!({
        "target": env.target(env.pg.port(), "db"),
        "schedule": "* * * * *",
        "storage": env.storage(),
        "encryption": env.encryption(),
        "verification": {"schedule": "* * * * *"},
        // Nothing listens there: every run's notification fails after its retries.
        "notifications": [{"name": "ops", "on": "always",
                            "webhook": {"urlSecretRef": {"name": "hook", "key": "url"}}}],
    });
    policy["target"]["database"] = json!("shop");
    let backup: VerticeBackup = serde_json::from_value(json!({
        "apiVersion": "backup.vertice.dev/v1alpha1",
        "kind": "VerticeBackup",
        "metadata": {"name": "shop"},
        "spec": policy,
    }))
    .unwrap();
    env.secret("hook", &[("url", "http://127.0.0.1:1/hook".to_owned())])
        .await;
    let policies: Api<VerticeBackup> = Api::namespaced(env.client.clone(), env.name());
    policies.create(&Default::default(), &backup).await.unwrap();

    env.inline_request("broken", json!({"target": env.target(1, "db")}), json!({}))
        .await;
    env.create_request(
        "orphan",
        json!({"backupRef": {"name": "missing"}}),
        json!({}),
    )
    .await;
    env.wait_phase_slowly("broken", RunPhase::Failed).await;

    // A run whose database part is an RDS snapshot (moto), for the snapshot panels.
    let moto = vertice_testkit::services::Moto::shared().await.unwrap();
    env.secret(
        "aws",
        &[
            ("AWS_ACCESS_KEY_ID", moto.access_key_id().to_owned()),
            ("AWS_SECRET_ACCESS_KEY", moto.secret_access_key().to_owned()),
        ],
    )
    .await;
    let instance = snapshots::instance(&snapshots::rds(moto)).await;
    env.snapshot_run("rds", snapshots::snapshot_part(moto, &instance, "aws"))
        .await;
    env.wait_phase_slowly("rds", RunPhase::Succeeded).await;
}

trait SlowPhase {
    async fn wait_phase_slowly(&self, name: &str, phase: RunPhase);
}

impl SlowPhase for Env {
    async fn wait_phase_slowly(&self, name: &str, phase: RunPhase) {
        let api = self.requests();
        slowly(&format!("BackupRequest {name} to be {phase:?}"), || async {
            let found = api.get(name).await.ok()?;
            (found.status?.phase == phase).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_returns_series_from_a_running_operator_and_names_only_exported_metrics()
{
    let dashboards = dashboards();
    let mut env = Env::new("dash", true).await;
    env.start_operator(&[], None).await;
    let admin = env.operator.as_ref().unwrap().admin;
    let prometheus = Prometheus::start_with(PrometheusOptions {
        scrape_targets: vec![admin.to_string()],
        job_name: backup_job(&dashboards),
        ..PrometheusOptions::default()
    })
    .await
    .unwrap();

    exercise(&env).await;
    // The drill runs at the minute after a successful backup; both gauges then exist.
    let wanted = |text: &str| {
        let series = |name: &str| {
            format!(
                r#"vertice_backup_{name}{{namespace="{}",backup="shop"}}"#,
                env.name()
            )
        };
        [
            series("last_success_timestamp_seconds"),
            series("verification_last_success_timestamp_seconds"),
            "vertice_backup_restores_total{".to_owned(),
            "vertice_backup_notification_failures_total{".to_owned(),
            "vertice_reconcile_errors_total{".to_owned(),
            "vertice_backup_snapshot_duration_seconds_count{".to_owned(),
        ]
        .into_iter()
        .filter(|s| !text.contains(s.as_str()))
        .collect::<Vec<_>>()
    };
    let deadline = tokio::time::Instant::now() + SLOW_WAIT;
    let metrics = loop {
        let text = env.metrics().await;
        let missing = wanted(&text);
        if missing.is_empty() {
            break text;
        }
        if tokio::time::Instant::now() >= deadline {
            let policies: Api<VerticeBackup> = Api::namespaced(env.client.clone(), env.name());
            let status = policies.get("shop").await.ok().and_then(|b| b.status);
            let runs = env.requests().list(&Default::default()).await.unwrap();
            let phases: Vec<String> = runs
                .items
                .iter()
                .map(|r| {
                    format!(
                        "{:?} {:?}",
                        r.metadata.name,
                        r.status.as_ref().map(|s| (&s.phase, &s.conditions))
                    )
                })
                .collect();
            let logs = vertice_testkit::log_capture::LogCapture::install()
                .map(|capture| capture.lines())
                .unwrap_or_default();
            let tail: Vec<&String> = logs.iter().rev().take(30).rev().collect();
            panic!(
                "timed out; missing series {missing:?}\nVerticeBackup status: {status:#?}\nruns: {phases:#?}\nlog tail: {tail:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Prometheus has scraped every one of those series at least twice (rates and increases
    // need two samples in their window): waiting for one of them is not enough, since the
    // others may have appeared on /metrics a moment ago.
    for name in [
        "vertice_backup_last_success_timestamp_seconds",
        "vertice_backup_verification_last_success_timestamp_seconds",
        "vertice_backup_restores_total",
        "vertice_backup_notification_failures_total",
        "vertice_reconcile_errors_total",
        "vertice_backup_snapshot_duration_seconds_count",
    ] {
        eventually(&format!("Prometheus to scrape {name} twice"), || async {
            let found = prometheus
                .query(&format!("count_over_time({name}[1m]) >= 2"))
                .await
                .ok()?;
            (!found.as_array()?.is_empty()).then_some(())
        })
        .await;
    }

    let families = exported_families(&metrics);
    let exported: BTreeSet<String> = families.iter().flat_map(|(_, s)| s.clone()).collect();
    let queries =
        all_queries(&workspace().join("dashboards"), &workspace().join("alerts")).unwrap();
    let pairs = substitutions(&dashboards);

    // Every dashboard query parses and returns series.
    let mut problems = Vec::new();
    let mut ran = 0;
    for FoundQuery { origin, expr } in queries.iter().filter(|q| q.origin.contains(".json")) {
        let promql = substitute(expr, &pairs);
        ran += 1;
        match prometheus.query(&promql).await {
            Err(error) => problems.push(format!("{origin}: `{promql}` failed: {error:#}")),
            Ok(result) if result.as_array().is_some_and(|r| !r.is_empty()) => {}
            Ok(_) => problems.push(format!("{origin}: `{promql}` returned no series")),
        }
    }
    println!("ran {ran} dashboard queries");
    assert!(ran >= 10, "only {ran} dashboard queries found");
    assert!(
        problems.is_empty(),
        "dashboard queries:\n{}",
        problems.join("\n")
    );

    // One source of metric names: used ⊆ exported ∪ external.
    let mut unknown = Vec::new();
    for query in &queries {
        for name in metric_names(&query.expr) {
            let known = exported.contains(&name) || EXTERNAL_METRICS.contains(&name.as_str());
            if !known {
                unknown.push(format!("{}: {name}", query.origin));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics no operator exports (add them to the operator, or to EXTERNAL_METRICS if another exporter provides them):\n{}",
        unknown.join("\n")
    );
    // … and every exported family is on a dashboard.
    let on_dashboards: BTreeSet<String> = queries
        .iter()
        .filter(|q| q.origin.contains(".json"))
        .flat_map(|q| metric_names(&q.expr))
        .collect();
    let missing: Vec<&str> = families
        .iter()
        .filter(|(_, samples)| samples.is_disjoint(&on_dashboards))
        .map(|(family, _)| family.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "exported but on no dashboard: {missing:?}"
    );
    println!(
        "{} exported families, all on a dashboard; {} distinct metric names used",
        families.len(),
        queries
            .iter()
            .flat_map(|q| metric_names(&q.expr))
            .collect::<BTreeSet<_>>()
            .len()
    );
    env.stop_operator().await;
}
