//! The history database against a real PostgreSQL (issue 8 §4): migrations on an empty and on
//! a migrated database, concurrent migrators, and idempotent upserts with per-project totals.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use chrono::{DateTime, TimeZone, Utc};
use tokio_postgres::Client;
use vertice_backup::history::migrate::{MIGRATIONS, applied_versions, migrate};
use vertice_backup::history::read::{ListQuery, list};
use vertice_backup::history::record::{BackupRun, RestoreRun, RunCommon, RunRecord};
use vertice_backup::history::write::upsert;
use vertice_backup::history::{self, HistoryError, HistoryUrl};
use vertice_testkit::services::Postgres;

async fn database(pg: &Postgres, name: &str) -> (Client, HistoryUrl) {
    pg.create_database(name).await.unwrap();
    let url = HistoryUrl::new(pg.url(name));
    (history::connect(&url).await.unwrap(), url)
}

fn all_versions() -> Vec<i32> {
    MIGRATIONS.iter().map(|m| m.version).collect()
}

/// The history schema's tables and views, by kind.
async fn relations(client: &Client) -> Vec<(String, String)> {
    client
        .query(
            "SELECT table_name::text, table_type::text FROM information_schema.tables \
             WHERE table_schema = 'vertice_history' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test]
async fn migrations_apply_on_an_empty_database_and_change_nothing_on_a_migrated_one() {
    let pg = Postgres::start().await.unwrap();
    let (mut client, url) = database(&pg, "history").await;
    assert_eq!(
        applied_versions(&client, &url).await.unwrap(),
        Vec::<i32>::new()
    );

    assert_eq!(migrate(&mut client, &url).await.unwrap(), all_versions());
    let created = relations(&client).await;
    for (name, kind) in [
        ("backup_runs", "BASE TABLE"),
        ("restore_runs", "BASE TABLE"),
        ("project_totals", "BASE TABLE"),
        ("schema_migrations", "BASE TABLE"),
        ("recent_successful_backups", "VIEW"),
        ("project_summary", "VIEW"),
    ] {
        assert!(
            created.contains(&(name.to_owned(), kind.to_owned())),
            "{name} ({kind}) missing from {created:?}"
        );
    }
    assert_eq!(
        applied_versions(&client, &url).await.unwrap(),
        all_versions()
    );

    // Again, on the migrated database and from a fresh connection: nothing to do, nothing
    // changed (a run written in between survives).
    upsert(
        &mut client,
        &url,
        &backup("uid-keep", "shop", "", "Succeeded", 10),
    )
    .await
    .unwrap();
    for _ in 0..2 {
        let mut again = history::connect(&url).await.unwrap();
        assert_eq!(migrate(&mut again, &url).await.unwrap(), Vec::<i32>::new());
    }
    assert_eq!(relations(&client).await, created);
    assert_eq!(count(&client, "vertice_history.backup_runs").await, 1);
    assert_eq!(
        count(&client, "vertice_history.schema_migrations").await,
        MIGRATIONS.len() as i64
    );
}

#[tokio::test]
async fn concurrent_migrators_apply_each_migration_exactly_once() {
    let pg = Postgres::start().await.unwrap();
    // Several rounds on fresh databases, with 2 and 4 migrators starting together.
    for (round, migrators) in [(1, 2), (2, 4), (3, 2)] {
        let name = format!("history_race_{round}");
        pg.create_database(&name).await.unwrap();
        let url = HistoryUrl::new(pg.url(&name));
        let mut clients = Vec::new();
        for _ in 0..migrators {
            clients.push(history::connect(&url).await.unwrap());
        }
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(migrators));
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|mut client| {
                let url = url.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    migrate(&mut client, &url).await
                })
            })
            .collect();
        let mut applied = Vec::new();
        for task in tasks {
            applied.extend(task.await.unwrap().unwrap());
        }
        applied.sort_unstable();
        assert_eq!(
            applied,
            all_versions(),
            "round {round}: each migration applied once in all"
        );
        let client = history::connect(&url).await.unwrap();
        assert_eq!(
            applied_versions(&client, &url).await.unwrap(),
            all_versions()
        );
    }
}

#[tokio::test]
async fn an_edited_applied_migration_is_reported_not_rerun() {
    let pg = Postgres::start().await.unwrap();
    let (mut client, url) = database(&pg, "history").await;
    migrate(&mut client, &url).await.unwrap();
    client
        .execute(
            "UPDATE vertice_history.schema_migrations SET checksum = 'edited' WHERE version = 1",
            &[],
        )
        .await
        .unwrap();
    match migrate(&mut client, &url).await {
        Err(HistoryError::MigrationChanged {
            version: 1,
            applied,
            ..
        }) => {
            assert_eq!(applied, "edited");
        }
        other => panic!("expected MigrationChanged, got {other:?}"),
    }
}

fn at(second: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + second, 0).unwrap()
}

fn common(uid: &str, project: &str, environment: &str, phase: &str, second: i64) -> RunCommon {
    RunCommon {
        uid: uid.to_owned(),
        namespace: "team-a".to_owned(),
        name: format!("run-{uid}"),
        project: project.to_owned(),
        environment: environment.to_owned(),
        phase: phase.to_owned(),
        reason: Some(phase.to_owned()),
        message: Some("it's done; 'quoted' \"text\"".to_owned()),
        error_kind: (phase == "Failed").then(|| "StorageFailed".to_owned()),
        error_message: (phase == "Failed").then(|| "503 from the store".to_owned()),
        attempts: Some(1),
        started_at: Some(at(second - 5)),
        completed_at: Some(at(second)),
        duration_seconds: Some(5.0),
    }
}

fn backup(uid: &str, project: &str, environment: &str, phase: &str, second: i64) -> RunRecord {
    RunRecord::Backup(BackupRun {
        common: common(uid, project, environment, phase, second),
        policy: Some("nightly".to_owned()),
        backup_name: Some(format!("b-{uid}")),
        location: Some("s3://backups/team/app".to_owned()),
        raw_bytes: Some(1000),
        stored_bytes: (phase == "Succeeded").then_some(100),
    })
}

fn restore(uid: &str, project: &str, phase: &str, second: i64) -> RunRecord {
    RunRecord::Restore(RestoreRun {
        common: common(uid, project, "", phase, second),
        backup_name: Some("b-1".to_owned()),
        target: Some("postgres://127.0.0.1:5432/shop_restored".to_owned()),
        raw_bytes: Some(1000),
        verification: Some("Passed".to_owned()),
    })
}

async fn count(client: &Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// (backups ok, backups failed, restores ok, restores failed, stored bytes) of a project.
async fn totals(
    client: &Client,
    project: &str,
    environment: &str,
) -> Option<(i64, i64, i64, i64, i64)> {
    client
        .query_opt(
            "SELECT backups_succeeded, backups_failed, restores_succeeded, restores_failed, \
             stored_bytes_total FROM vertice_history.project_summary \
             WHERE project = $1 AND environment = $2",
            &[&project, &environment],
        )
        .await
        .unwrap()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
}

#[tokio::test]
async fn writing_a_run_again_never_duplicates_it_or_its_totals() {
    let pg = Postgres::start().await.unwrap();
    let (mut client, url) = database(&pg, "history").await;
    migrate(&mut client, &url).await.unwrap();
    // Project names as users write them: quotes, unicode, spaces, SQL-looking text.
    for project in [
        "shop",
        "o'reilly \"books\"",
        "ñandú 🐦",
        "x'); DROP TABLE vertice_history.backup_runs; --",
    ] {
        let runs = [
            backup(&format!("{project}-1"), project, "prod", "Succeeded", 10),
            backup(&format!("{project}-2"), project, "prod", "Failed", 20),
            backup(&format!("{project}-3"), project, "prod", "Succeeded", 30),
            restore(&format!("{project}-r1"), project, "Succeeded", 40),
        ];
        // Every run written three times, as retries and restarts would.
        for _ in 0..3 {
            for run in &runs {
                upsert(&mut client, &url, run).await.unwrap();
            }
        }
        assert_eq!(
            totals(&client, project, "prod").await,
            Some((2, 1, 0, 0, 200)),
            "{project}"
        );
        assert_eq!(
            totals(&client, project, "").await,
            Some((0, 0, 1, 0, 0)),
            "{project}"
        );
        let listed = list(
            &client,
            &url,
            &ListQuery {
                project: Some(project.to_owned()),
                limit: 100,
            },
        )
        .await
        .unwrap();
        let names: Vec<&str> = listed.iter().map(|run| run.uid.as_str()).collect();
        assert_eq!(
            names,
            [
                format!("{project}-r1"),
                format!("{project}-3"),
                format!("{project}-2"),
                format!("{project}-1")
            ],
            "newest first, each once"
        );
    }
    assert_eq!(count(&client, "vertice_history.backup_runs").await, 12);
    assert_eq!(count(&client, "vertice_history.restore_runs").await, 4);

    // A run whose labels moved it to another environment leaves the old one's totals right.
    upsert(
        &mut client,
        &url,
        &backup("shop-3", "shop", "staging", "Succeeded", 30),
    )
    .await
    .unwrap();
    assert_eq!(
        totals(&client, "shop", "prod").await,
        Some((1, 1, 0, 0, 100))
    );
    assert_eq!(
        totals(&client, "shop", "staging").await,
        Some((1, 0, 0, 0, 100))
    );

    // The limit and the project filter.
    let two = list(
        &client,
        &url,
        &ListQuery {
            project: None,
            limit: 2,
        },
    )
    .await
    .unwrap();
    assert_eq!(two.len(), 2);
    let none = list(
        &client,
        &url,
        &ListQuery {
            project: Some("no such project".into()),
            limit: 10,
        },
    )
    .await
    .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn listing_an_empty_database_says_it_is_not_migrated() {
    let pg = Postgres::start().await.unwrap();
    let (client, url) = database(&pg, "empty").await;
    let error = list(
        &client,
        &url,
        &ListQuery {
            project: None,
            limit: 10,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(error, HistoryError::NotMigrated), "{error:?}");
}

#[tokio::test]
async fn connection_errors_never_show_the_password() {
    let pg = Postgres::start().await.unwrap();
    // A wrong password (the server refuses) and a closed port (nothing answers).
    let wrong = format!(
        "postgresql://{}:Wr0ngPassw0rdXyz@127.0.0.1:{}/postgres",
        pg.superuser(),
        pg.port()
    );
    let closed = "postgresql://someone:Wr0ngPassw0rdXyz@127.0.0.1:1/postgres".to_owned();
    for text in [wrong, closed] {
        let url: HistoryUrl = text.parse().unwrap();
        let error = history::connect(&url).await.unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(matches!(error, HistoryError::Connect(_)), "{shown}");
        assert!(!shown.contains("Wr0ngPassw0rdXyz"), "{shown}");
    }
}

/// `vertice-backup history` with `url` in the environment: (exit code, stdout + stderr).
async fn cli(url: &str, args: &[&str]) -> (Option<i32>, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_vertice-backup"))
        .arg("history")
        .args(args)
        .env("VERTICE_HISTORY_DATABASE_URL", url)
        .output()
        .await
        .unwrap();
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test]
async fn the_cli_exits_by_kind_and_never_prints_the_password() {
    let pg = Postgres::start().await.unwrap();
    pg.create_database("empty").await.unwrap();
    let secret = "Wr0ngPassw0rdXyz";
    let cases = [
        // Nothing listens: database failed.
        (format!("postgresql://someone:{secret}@127.0.0.1:1/x"), 4),
        // The server refuses the password: database failed.
        (
            format!(
                "postgresql://{}:{secret}@127.0.0.1:{}/empty",
                pg.superuser(),
                pg.port()
            ),
            4,
        ),
        // Not migrated: invalid configuration (the operator has not written yet).
        (pg.url("empty"), 3),
        // Not a PostgreSQL URL: invalid configuration, without echoing it.
        (format!("mysql://someone:{secret}@db/x"), 3),
        (format!("postgres://someone:{secret}@[::1"), 3),
    ];
    for (url, code) in cases {
        for output in ["table", "json"] {
            let (exit, printed) = cli(&url, &["--output", output]).await;
            assert_eq!(exit, Some(code), "{output}: {printed}");
            assert!(!printed.contains(secret), "{printed}");
            assert!(!printed.contains(pg.password()), "{printed}");
        }
    }
}
