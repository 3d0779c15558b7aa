//! Items 1 and 2 of the engine-faults issue on PostgreSQL: a restore that fails for any
//! reason — the store's last data object flipped, shortened, lengthened, removed or
//! unreadable (before a one-pass restore, or after the verify pass of a two-pass one),
//! `pg_restore` failing on a truncated archive, a cancel mid-stream — leaves the database it
//! would overwrite exactly as it was and no staging or set-aside database behind; a good
//! overwrite replaces it even while a session is connected to it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/db_compare.rs"]
mod db_compare;
#[path = "common/pipeline.rs"]
mod pipeline;
#[path = "support/restore_faults.rs"]
mod restore_faults;

use db_compare::{postgres_config, read_dump};
use pipeline::{backup_bytes, local_store};
use restore_faults::{every_failure, restore, small_options};
use vertice_backup::source::postgres::PostgresRestoreOptions;
use vertice_backup::source::{DatabaseSource, RestoreTarget, SourceConfig};
use vertice_testkit::services::Postgres;

async fn postgres_leftovers(server: &Postgres) -> String {
    server
        .sql(
            "SELECT string_agg(datname, ',') FROM pg_database \
             WHERE datname LIKE 'vertice\\_%'",
        )
        .await
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test]
async fn postgres_failed_overwrites_keep_the_old_database() {
    let server = Postgres::start().await.unwrap();
    server.create_database("src").await.unwrap();
    server
        .sql_in(
            "src",
            "CREATE TABLE items (id int PRIMARY KEY, label text);
             INSERT INTO items SELECT i, md5(i::text) || md5((i * 7)::text)
               FROM generate_series(1, 40000) i;",
        )
        .await
        .unwrap();
    server.create_database("live").await.unwrap();
    server
        .sql_in(
            "live",
            "CREATE TABLE marker (v text); INSERT INTO marker VALUES ('previous');",
        )
        .await
        .unwrap();
    let source = DatabaseSource::new(SourceConfig::Postgres(postgres_config(&server, "src")));
    let DatabaseSource::Postgres(postgres) = &source else {
        unreachable!()
    };
    let dump = read_dump(postgres.dump().await.unwrap().stream)
        .await
        .unwrap();
    assert!(dump.len() > 2 * 1024 * 1024, "{}", dump.len());
    let target = RestoreTarget::Postgres(PostgresRestoreOptions {
        database: "live".into(),
        overwrite: true,
        no_owner: false,
        no_privileges: false,
        properties: None,
    });
    let check = async |what: &str| {
        assert_eq!(
            server
                .sql_in("live", "SELECT v FROM marker")
                .await
                .unwrap()
                .trim(),
            "previous",
            "{what}"
        );
        assert_eq!(postgres_leftovers(&server).await, "", "{what}");
    };
    every_failure(&dump, &dump[..dump.len() * 9 / 10], &source, &target, check).await;

    // A good overwrite replaces it, even while a session is connected to it.
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host={} port={} user={} password={} dbname=live",
            server.host(),
            server.port(),
            server.superuser(),
            server.password()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    client.simple_query("SELECT 1").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    backup_bytes(&store, &small_options("good", None), dump.clone())
        .await
        .unwrap();
    restore(&store, "good", &source, &target, false, || {})
        .await
        .unwrap();
    assert_eq!(
        server
            .sql_in("live", "SELECT count(*) FROM items")
            .await
            .unwrap()
            .trim(),
        "40000"
    );
    assert!(
        server
            .sql_in("live", "SELECT to_regclass('marker') IS NULL")
            .await
            .unwrap()
            .trim()
            == "t"
    );
    assert_eq!(postgres_leftovers(&server).await, "");
}
