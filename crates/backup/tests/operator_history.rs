//! The history database with the operator running (issue 8 §4), against the real
//! kube-apiserver, the kubelet stand-in running the real runner, the real S3 server and two
//! real PostgreSQL servers (the backed-up one and the one holding history): finished backups
//! and restores become rows that match their statuses; while history is down runs still finish,
//! the lag metric grows, and once it is back the rows appear — also for runs that finished
//! while the operator itself was stopped; `vertice-backup history` lists them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/operator_env.rs"]
mod operator_env;

use kube::Api;
use kube::api::PostParams;
use operator_env::{Env, eventually, sample};
use serde_json::{Value, json};
use tokio_postgres::Row;
use vertice_backup::api::BackupRequest;
use vertice_backup::api::restore_request::RestoreRequest;
use vertice_backup::api::run::{RunPhase, RunTimes};
use vertice_backup::history::{self, HistoryUrl};
use vertice_testkit::services::Postgres;

const LAG: &str = "vertice_backup_history_lag_seconds";

fn restores(env: &Env) -> Api<RestoreRequest> {
    Api::namespaced(env.client.clone(), env.ns.name())
}

async fn create_restore(env: &Env, name: &str, from: &str, database: &str) {
    let object = json!({
        "apiVersion": "backup.vertice.dev/v1alpha1",
        "kind": "RestoreRequest",
        "metadata": {"name": name, "labels": {"vertice.dev/project": "web"}},
        "spec": {
            "source": {"backupRequestRef": {"name": from}},
            "target": {
                "engine": "postgres",
                "host": "127.0.0.1",
                "port": env.pg.port(),
                "user": env.pg.superuser(),
                "passwordSecretRef": {"name": "db", "key": "password"},
                "database": database,
            },
        },
    });
    let request: RestoreRequest = serde_json::from_value(object).unwrap();
    restores(env)
        .create(&PostParams::default(), &request)
        .await
        .unwrap();
}

async fn wait_restore(env: &Env, name: &str, phase: RunPhase) -> RestoreRequest {
    let api = restores(env);
    eventually(
        &format!("RestoreRequest {name} to be {phase:?}"),
        || async {
            let found = api.get(name).await.ok()?;
            (found.status.as_ref()?.phase == phase).then_some(found)
        },
    )
    .await
}

/// The history row of the run with `uid` in `table`, once it exists.
async fn row(url: &HistoryUrl, table: &str, uid: &str) -> Row {
    eventually(&format!("{table} row of {uid}"), || async {
        let client = history::connect(url).await.ok()?;
        client
            .query_opt(
                &format!("SELECT * FROM vertice_history.{table} WHERE uid = $1"),
                &[&uid],
            )
            .await
            .ok()?
    })
    .await
}

fn ready(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> (String, String) {
    let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    (ready.reason.clone(), ready.message.clone())
}

/// Seconds since the epoch of an optional column / status time, for comparing.
fn column_seconds(row: &Row, column: &str) -> Option<i64> {
    row.get::<_, Option<chrono::DateTime<chrono::Utc>>>(column)
        .map(|time| time.timestamp())
}

/// What a backup row and a restore row both take from their run's object and status.
struct Common<'a> {
    meta: &'a kube::api::ObjectMeta,
    phase: RunPhase,
    times: &'a RunTimes,
    conditions: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    attempts: Option<i32>,
    error_kind: Option<String>,
    error_message: Option<String>,
    backup_name: Option<String>,
    raw_size: Option<i64>,
}

/// Asserts the columns both run tables have against `run`; `name` labels the failures.
fn assert_common(row: &Row, run: Common<'_>, name: &str) {
    let Common {
        meta, phase, times, ..
    } = run;
    let labels = meta.labels.clone().unwrap_or_default();
    assert_eq!(row.get::<_, String>("name"), meta.name.clone().unwrap());
    assert_eq!(
        row.get::<_, String>("namespace"),
        meta.namespace.clone().unwrap()
    );
    assert_eq!(
        row.get::<_, String>("project"),
        labels
            .get("vertice.dev/project")
            .cloned()
            .unwrap_or_else(|| meta.namespace.clone().unwrap())
    );
    assert_eq!(
        row.get::<_, String>("environment"),
        labels
            .get("vertice.dev/environment")
            .cloned()
            .unwrap_or_default()
    );
    assert_eq!(row.get::<_, String>("phase"), format!("{phase:?}"));
    let seconds = |time: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        time.as_ref().map(|time| time.0.as_second())
    };
    assert_eq!(
        column_seconds(row, "started_at"),
        seconds(&times.start_time)
    );
    assert_eq!(
        column_seconds(row, "completed_at"),
        seconds(&times.completion_time)
    );
    assert_eq!(
        row.get::<_, Option<f64>>("duration_seconds"),
        times.duration_seconds
    );
    assert_eq!(
        (
            row.get::<_, Option<String>>("reason").unwrap(),
            row.get::<_, Option<String>>("message").unwrap()
        ),
        ready(run.conditions),
        "{name}"
    );
    assert_eq!(
        row.get::<_, Option<String>>("backup_name"),
        run.backup_name,
        "{name}"
    );
    assert_eq!(
        row.get::<_, Option<i64>>("raw_bytes"),
        run.raw_size,
        "{name}"
    );
    assert_eq!(
        row.get::<_, Option<String>>("error_kind"),
        run.error_kind,
        "{name}"
    );
    assert_eq!(
        row.get::<_, Option<String>>("error_message"),
        run.error_message,
        "{name}"
    );
    assert_eq!(
        row.get::<_, Option<i32>>("attempts"),
        run.attempts,
        "{name}"
    );
}

fn kind_name(kind: Option<impl serde::Serialize>) -> Option<String> {
    kind.map(|kind| {
        serde_json::to_value(kind)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    })
}

/// Asserts that `name`'s history row equals its status, field by field.
async fn assert_backup_row(env: &Env, url: &HistoryUrl, name: &str) {
    let request: BackupRequest = env.requests().get(name).await.unwrap();
    let row = row(url, "backup_runs", &request.metadata.uid.clone().unwrap()).await;
    let status = request.status.clone().unwrap();
    let result = status.result.clone().unwrap_or_default();
    let common = Common {
        meta: &request.metadata,
        phase: status.phase,
        times: &status.times,
        conditions: &status.conditions,
        attempts: status.attempts,
        error_kind: kind_name(result.error_kind),
        error_message: result.error_message.clone(),
        backup_name: result.backup_name.clone(),
        raw_size: result.raw_size,
    };
    assert_common(&row, common, name);
    assert_eq!(
        row.get::<_, Option<String>>("location"),
        result.location,
        "{name}"
    );
    assert_eq!(
        row.get::<_, Option<i64>>("stored_bytes"),
        result.stored_size,
        "{name}"
    );
}

/// The same for a RestoreRequest's row.
async fn assert_restore_row(env: &Env, url: &HistoryUrl, name: &str) {
    let request = restores(env).get(name).await.unwrap();
    let row = row(url, "restore_runs", &request.metadata.uid.clone().unwrap()).await;
    let status = request.status.clone().unwrap();
    let result = status.result.clone().unwrap_or_default();
    let common = Common {
        meta: &request.metadata,
        phase: status.phase,
        times: &status.times,
        conditions: &status.conditions,
        attempts: status.attempts,
        error_kind: kind_name(result.error_kind),
        error_message: result.error_message.clone(),
        backup_name: result.backup_name.clone(),
        raw_size: result.raw_size,
    };
    assert_common(&row, common, name);
    assert_eq!(
        row.get::<_, Option<String>>("target"),
        result.target,
        "{name}"
    );
    assert_eq!(
        row.get::<_, Option<String>>("verification"),
        kind_name(status.verification.map(|v| v.result)),
        "{name}"
    );
}

async fn lag(env: &Env) -> Option<f64> {
    sample(&env.metrics().await, LAG)
}

async fn count(url: &HistoryUrl, table: &str) -> i64 {
    let client = history::connect(url).await.unwrap();
    client
        .query_one(
            &format!("SELECT count(*) FROM vertice_history.{table}"),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// `vertice-backup history …` with the URL from the environment; its stdout.
async fn cli(url: &str, args: &[&str]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_vertice-backup"))
        .arg("history")
        .args(args)
        .env("VERTICE_HISTORY_DATABASE_URL", url)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "history {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_recorded_through_a_history_outage_and_an_operator_restart() {
    let mut env = Env::new("history", true).await;
    let mut history_pg = Postgres::start().await.unwrap();
    history_pg.create_database("history").await.unwrap();
    let url_text = history_pg.url("history");
    let url = HistoryUrl::new(url_text.clone());
    let flags = ["--history-database-url", url_text.as_str()];
    env.start_operator(&flags, None).await;
    env.secret("wrong", &[("password", "not-the-password".to_owned())])
        .await;
    let labels = json!({"vertice.dev/project": "web", "vertice.dev/environment": "prod"});

    // History up: a backup and a restore of it.
    env.inline_request("first", json!({}), labels.clone()).await;
    env.wait_phase("first", RunPhase::Succeeded).await;
    assert_backup_row(&env, &url, "first").await;
    create_restore(&env, "first-restore", "first", "shop_restored").await;
    wait_restore(&env, "first-restore", RunPhase::Succeeded).await;
    assert_restore_row(&env, &url, "first-restore").await;
    eventually("the lag to be 0 when caught up", || async {
        (lag(&env).await? == 0.0).then_some(())
    })
    .await;

    // History down: runs still finish (a success and two failures), the lag grows.
    history_pg.stop();
    env.inline_request("during", json!({}), labels.clone())
        .await;
    env.inline_request(
        "broken",
        json!({"target": env.target(env.pg.port(), "wrong")}),
        json!({"vertice.dev/project": "web"}),
    )
    .await;
    env.wait_phase("during", RunPhase::Succeeded).await;
    env.wait_phase("broken", RunPhase::Failed).await;
    create_restore(&env, "from-broken", "broken", "never").await;
    wait_restore(&env, "from-broken", RunPhase::Failed).await;
    let first_lag = eventually("a lag above 0 during the outage", || async {
        lag(&env).await.filter(|lag| *lag > 0.0)
    })
    .await;
    eventually("the lag to grow during the outage", || async {
        lag(&env).await.filter(|lag| *lag >= first_lag + 2.0)
    })
    .await;

    // History back: the rows appear and match, and the lag returns to 0.
    history_pg.restart().await.unwrap();
    assert_backup_row(&env, &url, "during").await;
    assert_backup_row(&env, &url, "broken").await;
    assert_restore_row(&env, &url, "from-broken").await;
    eventually("the lag to return to 0", || async {
        (lag(&env).await? == 0.0).then_some(())
    })
    .await;

    // A run that finished while history was down and the operator then stopped: the
    // restarted operator records it (it re-offers the finished runs it lists).
    history_pg.stop();
    env.inline_request("while-down", json!({}), labels.clone())
        .await;
    env.wait_phase("while-down", RunPhase::Succeeded).await;
    env.stop_operator().await;
    history_pg.restart().await.unwrap();
    env.start_operator(&flags, None).await;
    assert_backup_row(&env, &url, "while-down").await;
    eventually("the lag to return to 0 after the restart", || async {
        (lag(&env).await? == 0.0).then_some(())
    })
    .await;
    // Every run once, however often it was offered.
    assert_eq!(count(&url, "backup_runs").await, 4);
    assert_eq!(count(&url, "restore_runs").await, 2);
    let client = history::connect(&url).await.unwrap();
    let totals = client
        .query_one(
            "SELECT backups_succeeded, backups_failed, restores_succeeded, restores_failed \
             FROM vertice_history.project_summary WHERE project = 'web' AND environment = ''",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (0..4).map(|i| totals.get::<_, i64>(i)).collect::<Vec<_>>(),
        [0, 1, 1, 1],
        "web without environment: broken, first-restore and from-broken"
    );
    let prod = client
        .query_one(
            "SELECT backups_succeeded, backups_failed FROM vertice_history.project_summary \
             WHERE project = 'web' AND environment = 'prod'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (prod.get::<_, i64>(0), prod.get::<_, i64>(1)),
        (3, 0),
        "web/prod: first, during, while-down"
    );

    // The CLI lists them, newest first, filtered by project.
    let listed: Value =
        serde_json::from_str(&cli(&url_text, &["--project", "web", "--output", "json"]).await)
            .unwrap();
    let names: Vec<&str> = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert_eq!(names[0], "while-down", "{names:?}");
    for name in ["first", "first-restore", "during", "broken", "from-broken"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let limited: Value =
        serde_json::from_str(&cli(&url_text, &["--limit", "2", "--output", "json"]).await).unwrap();
    assert_eq!(limited["runs"].as_array().unwrap().len(), 2);
    let table = cli(&url_text, &["--project", "web"]).await;
    assert!(table.starts_with("KIND"), "{table}");
    assert!(
        table
            .lines()
            .any(|line| line.contains("broken") && line.contains("DatabaseFailed")),
        "{table}"
    );
    let other = cli(&url_text, &["--project", env.name()]).await;
    assert_eq!(other.trim(), "no runs recorded");

    // The history password never shows in the operator's logs.
    let logs = vertice_testkit::log_capture::LogCapture::install()
        .map(|capture| capture.lines())
        .unwrap_or_default();
    assert!(
        logs.iter()
            .all(|line| !line.contains(history_pg.password())),
        "the history password is in the logs"
    );
    env.stop_operator().await;
}
