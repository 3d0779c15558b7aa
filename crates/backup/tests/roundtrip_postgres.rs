//! A real PostgreSQL database, with a hostile name, backed up through the real S3 server and
//! the local store, restored into a new database (a plain `pg_dump` of both is identical),
//! drilled (counts match the manifest), and a backup of a stopped server that fails cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/db_compare.rs"]
mod db_compare;
#[path = "common/pipeline.rs"]
mod pipeline;

use std::sync::Arc;

use db_compare::{postgres_config, postgres_plain_dump};
use pipeline::*;
use tokio_util::sync::CancellationToken;
use vertice_backup::backup::{BackupOptions, DumpInput, run_backup};
use vertice_backup::drill::run_drill;
use vertice_backup::error::BackupError;
use vertice_backup::keys::KeyRing;
use vertice_backup::progress::Progress;
use vertice_backup::restore::VerifiedBackup;
use vertice_backup::source::postgres::PostgresRestoreOptions;
use vertice_backup::source::{DatabaseSource, ObjectCounts, RestoreTarget, SourceConfig};
use vertice_backup::store::BackupStore;
use vertice_backup::verify::OpenedBackup;
use vertice_testkit::services::{Postgres, S3Server};

const HOSTILE_DB: &str = "app\"; DROP DATABASE postgres; --";

async fn seed(server: &Postgres) {
    server.create_database(HOSTILE_DB).await.unwrap();
    server
        .sql_in(
            HOSTILE_DB,
            "CREATE TABLE \"Weird \"\"table\"\"\" (id int primary key, payload text);
             INSERT INTO \"Weird \"\"table\"\"\" SELECT i, md5(i::text) || repeat(md5((i*7)::text), 20)
               FROM generate_series(1, 20000) i;
             CREATE TABLE plain (id bigserial primary key, at timestamptz default now());
             INSERT INTO plain (at) SELECT now() - i * interval '1 minute' FROM generate_series(1, 500) i;",
        )
        .await
        .unwrap();
}

async fn round_trip(server: &Postgres, store: &BackupStore, name: &str) {
    let source = DatabaseSource::new(SourceConfig::Postgres(postgres_config(server, HOSTILE_DB)));
    let started = source.dump().await.unwrap();
    let mut options = BackupOptions::new(name, Some(key(1)));
    options.chunk_size = 1024 * 1024;
    let manifest = run_backup(
        store,
        &options,
        DumpInput::from_started(started),
        Progress::new(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    match &manifest.counts {
        Some(ObjectCounts::Rows(tables)) => {
            let rows: u64 = tables.values().flat_map(|tables| tables.values()).sum();
            assert_eq!(rows, 20_500, "{tables:?}");
        }
        other => panic!("no table counts: {other:?}"),
    }
    assert!(
        manifest
            .source
            .as_ref()
            .unwrap()
            .tool_versions
            .contains_key("pg_dump")
    );

    let progress = Arc::new(Progress::default());
    let opened = OpenedBackup::open(store, name, &KeyRing::new(vec![key(1)]), 2)
        .await
        .unwrap();
    let verified = VerifiedBackup::verify(opened, &progress).await.unwrap();
    let target_db = format!("{name} restored \"copy\"");
    let target = RestoreTarget::Postgres(PostgresRestoreOptions {
        database: target_db.clone(),
        overwrite: false,
        no_owner: false,
        no_privileges: false,
        properties: None,
    });
    let stream = source.restore(&target).await.unwrap();
    verified.restore_into(stream, &progress).await.unwrap();
    // pg_dump ≥ 15.14 brackets its output with a random `\restrict` token; drop those lines.
    let comparable = |dump: String| {
        dump.lines()
            .filter(|line| !line.starts_with("\\restrict ") && !line.starts_with("\\unrestrict "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let original = comparable(postgres_plain_dump(server, HOSTILE_DB).await.unwrap());
    let restored = comparable(postgres_plain_dump(server, &target_db).await.unwrap());
    let differing: Vec<_> = original
        .lines()
        .zip(restored.lines())
        .filter(|(a, b)| a != b)
        .take(5)
        .collect();
    assert!(
        original == restored,
        "pg_dump of the original and the restored database differ: {differing:?}"
    );

    // A second restore into the same database is refused (new database by default).
    let error = source.restore(&target).await.map(|_| ()).unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");

    let drill = run_drill(&verified, &source, &progress).await.unwrap();
    assert!(drill.differences.is_empty(), "{:?}", drill.differences);
    assert!(drill.restore.restore_seconds > 0.0);
}

#[tokio::test]
async fn postgres_through_s3_and_local_store() {
    let server = Postgres::start().await.unwrap();
    seed(&server).await;

    let s3 = S3Server::start().await.unwrap();
    s3.create_bucket("pg-backups").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let in_s3 = s3_store(&s3, "pg-backups", dir.path());
    round_trip(&server, &in_s3, "pg-s3").await;
    round_trip(&server, &local_store(dir.path()), "pg-local").await;
}

#[tokio::test]
async fn a_stopped_database_fails_the_backup_cleanly() {
    let mut server = Postgres::start().await.unwrap();
    let config = postgres_config(&server, "postgres");
    server.stop();
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let source = DatabaseSource::new(SourceConfig::Postgres(config));
    let outcome = async {
        let started = source.dump().await?;
        run_backup(
            &store,
            &BackupOptions::new("down", Some(key(1))),
            DumpInput::from_started(started),
            Progress::new(),
            CancellationToken::new(),
        )
        .await
        .map(|_| ())
    }
    .await;
    let error: BackupError = outcome.unwrap_err();
    assert_eq!(error.exit_code(), 4, "{error}");
    assert!(store.list_backup_names().await.unwrap().is_empty());
}
