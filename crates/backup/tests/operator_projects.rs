//! Issue 8 §3 against the real kube-apiserver, the kubelet stand-in running the real
//! `vertice-backup runner`, real PostgreSQL and the real S3 server: a run's `projectId` and
//! `environment` (its own, or its VerticeBackup's) reach its labels, its Job's labels, its
//! manifest's labels, the apiserver's printer columns and the run metrics; the per-project
//! limit counts runs by `projectId`, not by namespace or a stale label.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/operator_env.rs"]
mod operator_env;

use kube::Api;
use kube::api::{ListParams, PostParams};
use operator_env::{Env, eventually, sample};
use serde_json::{Value, json};
use vertice_backup::api::run::RunPhase;
use vertice_backup::api::{BackupRequest, VerticeBackup};

fn label(run: &BackupRequest, key: &str) -> Option<String> {
    run.metadata.labels.as_ref()?.get(key).cloned()
}

fn phase(run: &BackupRequest) -> Option<RunPhase> {
    run.status.as_ref().map(|status| status.phase)
}

/// The apiserver's own rendering of `kind`'s printer columns: column name → cell, per object.
async fn table(env: &Env, plural: &str) -> Vec<(String, serde_json::Map<String, Value>)> {
    let request = http::Request::get(format!(
        "/apis/backup.vertice.dev/v1alpha1/namespaces/{}/{plural}",
        env.name()
    ))
    .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
    .body(Vec::new())
    .unwrap();
    let table: Value = env.client.request(request).await.unwrap();
    let columns: Vec<String> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|column| column["name"].as_str().unwrap().to_owned())
        .collect();
    table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let name = row["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_owned();
            let cells = columns
                .iter()
                .cloned()
                .zip(row["cells"].as_array().unwrap().iter().cloned())
                .collect();
            (name, cells)
        })
        .collect()
}

fn cell<'a>(
    rows: &'a [(String, serde_json::Map<String, Value>)],
    name: &str,
    column: &str,
) -> &'a Value {
    rows.iter()
        .find(|(row, _)| row == name)
        .and_then(|(_, cells)| cells.get(column))
        .unwrap_or_else(|| panic!("no {column} cell for {name}: {rows:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_and_environment_reach_labels_columns_manifests_metrics_and_the_limit() {
    // No kubelet at first: Jobs exist but nothing runs, so the queue can be looked at.
    let mut env = Env::new("projects", false).await;
    env.start_operator(&["--max-concurrent-runs-per-project", "1"], None)
        .await;
    let policy: VerticeBackup = serde_json::from_value(json!({
        "apiVersion": "backup.vertice.dev/v1alpha1",
        "kind": "VerticeBackup",
        "metadata": {"name": "shop-db"},
        "spec": {
            "projectId": "shop",
            "environment": "production",
            "target": env.target(env.pg.port(), "db"),
            "schedule": "@yearly",
            "storage": env.storage(),
            "encryption": env.encryption(),
            "retentionDays": 30,
        },
    }))
    .unwrap();
    let policies: Api<VerticeBackup> = Api::namespaced(env.client.clone(), env.name());
    policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();

    // `shop-1` takes project shop's only slot by its own field.
    env.inline_request(
        "shop-1",
        json!({"projectId": "shop", "environment": "staging"}),
        json!({}),
    )
    .await;
    env.wait_phase("shop-1", RunPhase::Running).await;
    // `shop-2` names no project: it inherits its VerticeBackup's and waits for shop's slot.
    env.create_request(
        "shop-2",
        json!({"backupRef": {"name": "shop-db"}}),
        json!({}),
    )
    .await;
    // `blog-1` carries a stale label `shop`, but its field says `blog`: it is not held up.
    env.inline_request(
        "blog-1",
        json!({"projectId": "blog"}),
        json!({"vertice.dev/project": "shop"}),
    )
    .await;
    // `plain` has neither: its project is the namespace, with its own slot.
    env.inline_request("plain", json!({}), json!({})).await;

    let queued = env.wait_phase("shop-2", RunPhase::Queued).await;
    let message = queued
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("\"shop\"") && message.contains("shop-1"),
        "{message}"
    );
    assert_eq!(
        label(&queued, "vertice.dev/project").as_deref(),
        Some("shop")
    );
    assert_eq!(
        label(&queued, "vertice.dev/environment").as_deref(),
        Some("production")
    );
    assert!(env.jobs_of("shop-2").await.is_empty());
    for name in ["blog-1", "plain"] {
        env.wait_phase(name, RunPhase::Running).await;
    }
    let blog = env.requests().get("blog-1").await.unwrap();
    assert_eq!(label(&blog, "vertice.dev/project").as_deref(), Some("blog"));
    assert_eq!(label(&blog, "vertice.dev/environment"), None);
    let plain = env.requests().get("plain").await.unwrap();
    assert_eq!(
        label(&plain, "vertice.dev/project").as_deref(),
        Some(env.name())
    );

    // The Job carries the run's project and environment.
    let job = env.jobs_of("shop-1").await.pop().expect("shop-1's Job");
    let job_labels = job.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        job_labels.get("vertice.dev/project").map(String::as_str),
        Some("shop")
    );
    assert_eq!(
        job_labels
            .get("vertice.dev/environment")
            .map(String::as_str),
        Some("staging")
    );

    // Printer columns, as the apiserver renders them for `kubectl get`.
    let runs = table(&env, "backuprequests").await;
    assert_eq!(cell(&runs, "shop-1", "Project"), "shop");
    assert_eq!(cell(&runs, "shop-1", "Environment"), "staging");
    assert_eq!(cell(&runs, "blog-1", "Project"), "blog");
    let policies_table = table(&env, "verticebackups").await;
    assert_eq!(cell(&policies_table, "shop-db", "Project"), "shop");
    assert_eq!(
        cell(&policies_table, "shop-db", "Environment"),
        "production"
    );

    // Runs execute; the queued run starts when shop's slot frees, and all succeed.
    env.start_kubelet().await;
    for name in ["shop-1", "shop-2", "blog-1", "plain"] {
        env.wait_phase(name, RunPhase::Succeeded).await;
    }
    let all = env.requests().list(&ListParams::default()).await.unwrap();
    assert!(
        all.items
            .iter()
            .all(|run| phase(run) == Some(RunPhase::Succeeded))
    );

    // Manifests carry the labels too (retention and history read them from the store).
    for (name, project, environment) in [
        ("shop-1", "shop", Some("staging")),
        ("shop-2", "shop", Some("production")),
        ("blog-1", "blog", None),
    ] {
        let manifest = env.manifest(name).await;
        assert_eq!(
            manifest
                .labels
                .get("vertice.dev/project")
                .map(String::as_str),
            Some(project),
            "{name}"
        );
        assert_eq!(
            manifest
                .labels
                .get("vertice.dev/environment")
                .map(String::as_str),
            environment,
            "{name}"
        );
    }

    // The run metrics carry project and environment.
    let ns = env.name().to_owned();
    let expected = [
        format!(
            r#"vertice_backup_runs_total{{namespace="{ns}",backup="shop-1",project="shop",environment="staging",result="success"}}"#
        ),
        format!(
            r#"vertice_backup_runs_total{{namespace="{ns}",backup="shop-db",project="shop",environment="production",result="success"}}"#
        ),
        format!(
            r#"vertice_backup_runs_total{{namespace="{ns}",backup="blog-1",project="blog",environment="",result="success"}}"#
        ),
        format!(
            r#"vertice_backup_duration_seconds_count{{namespace="{ns}",backup="shop-db",project="shop",environment="production"}}"#
        ),
        format!(
            r#"vertice_backup_size_bytes{{namespace="{ns}",backup="shop-db",project="shop",environment="production"}}"#
        ),
    ];
    let metrics = eventually("the run metrics with project labels", || async {
        let metrics = env.metrics().await;
        expected
            .iter()
            .all(|series| sample(&metrics, series).is_some())
            .then_some(metrics)
    })
    .await;
    for series in &expected[..4] {
        assert_eq!(sample(&metrics, series), Some(1.0), "{series}\n{metrics}");
    }

    // `retentionDays` alone is a retention policy: the VerticeBackup's sweep runs after its
    // successful run (and keeps it: it is 30 days from expiring).
    let applied = eventually("the retentionDays sweep", || async {
        let policy = policies.get("shop-db").await.ok()?;
        let condition = policy
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "RetentionApplied")?;
        (condition.reason == "Applied").then_some(condition)
    })
    .await;
    assert_eq!(applied.status, "True", "{applied:?}");
    env.manifest("shop-2").await;
    env.stop_operator().await;
}
