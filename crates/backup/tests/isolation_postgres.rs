//! A restored PostgreSQL copy must not act on its source either (issue 6, item 3): a database
//! `shop` with an enabled subscription that consumes from a publication in `hub` on the same
//! server, a postgres_fdw foreign server (and user mapping with a password) pointing back at
//! `shop`, and a function that calls dblink. Restored as a new database, its subscription
//! arrives disabled and without touching the publisher's slot, the report names every way out
//! (without the password), and a drill of it is not isolated. Publications and event triggers
//! act only inside their own database and are not reported.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/db_compare.rs"]
mod db_compare;
#[path = "common/pipeline.rs"]
mod pipeline;

use std::sync::Arc;
use std::time::{Duration, Instant};

use db_compare::postgres_config;
use pipeline::*;
use tokio_util::sync::CancellationToken;
use vertice_backup::backup::{BackupOptions, DumpInput, run_backup};
use vertice_backup::drill::run_drill;
use vertice_backup::isolation::ObjectKind;
use vertice_backup::keys::KeyRing;
use vertice_backup::progress::Progress;
use vertice_backup::restore::VerifiedBackup;
use vertice_backup::source::postgres::PostgresRestoreOptions;
use vertice_backup::source::{DatabaseSource, RestoreTarget, SourceConfig};
use vertice_backup::verify::OpenedBackup;
use vertice_testkit::services::{Postgres, PostgresOptions};

async fn server() -> Postgres {
    Postgres::start_with(PostgresOptions {
        settings: vec![("wal_level".into(), "logical".into())],
        ..PostgresOptions::default()
    })
    .await
    .unwrap_or_else(|error| {
        panic!(
            "PostgreSQL is needed for these tests (Debian: apt-get install postgresql \
             postgresql-contrib): {error:#}"
        )
    })
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

async fn number(server: &Postgres, database: &str, sql: &str) -> i64 {
    server
        .sql_in(database, sql)
        .await
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `hub` publishes `items`; `shop` subscribes to it (enabled, with its own slot `shop_sub`),
/// and reaches back to itself through postgres_fdw and dblink.
async fn seed(server: &Postgres) {
    let connection = format!(
        "host={} port={} user={} password={} dbname=",
        server.host(),
        server.port(),
        server.superuser(),
        server.password()
    );
    server.create_database("hub").await.unwrap();
    server
        .sql_in(
            "hub",
            "CREATE TABLE items (id int PRIMARY KEY);
             CREATE PUBLICATION hub_pub FOR TABLE items;",
        )
        .await
        .unwrap();
    server
        .sql_in(
            "hub",
            "SELECT pg_create_logical_replication_slot('shop_sub', 'pgoutput')",
        )
        .await
        .unwrap();
    server.create_database("shop").await.unwrap();
    server
        .sql_in(
            "shop",
            &format!(
                "CREATE TABLE items (id int PRIMARY KEY);
                 CREATE TABLE orders (id int PRIMARY KEY);
                 INSERT INTO orders VALUES (1), (2);
                 CREATE SUBSCRIPTION shop_sub CONNECTION {hub} PUBLICATION hub_pub
                     WITH (connect = false);
                 CREATE EXTENSION postgres_fdw;
                 CREATE SERVER prod FOREIGN DATA WRAPPER postgres_fdw
                     OPTIONS (host {host}, port {port}, dbname 'shop');
                 CREATE USER MAPPING FOR CURRENT_USER SERVER prod
                     OPTIONS (user {user}, password {password});
                 CREATE FOREIGN TABLE prod_orders (id int) SERVER prod
                     OPTIONS (table_name 'orders');
                 CREATE EXTENSION dblink;
                 CREATE FUNCTION remote_count() RETURNS bigint LANGUAGE sql AS $$
                     SELECT n FROM dblink('dbname=shop', 'SELECT count(*) FROM orders')
                         AS t(n bigint) $$;
                 CREATE FUNCTION local_count() RETURNS bigint LANGUAGE sql
                     AS $$ SELECT count(*) FROM orders $$;
                 CREATE PUBLICATION shop_pub FOR TABLE orders;
                 CREATE FUNCTION note_ddl() RETURNS event_trigger LANGUAGE plpgsql
                     AS $$ BEGIN END $$;
                 CREATE EVENT TRIGGER ddl_note ON ddl_command_end EXECUTE FUNCTION note_ddl();",
                hub = literal(&format!("{connection}hub")),
                host = literal(server.host()),
                port = literal(&server.port().to_string()),
                user = literal(server.superuser()),
                password = literal(server.password()),
            ),
        )
        .await
        .unwrap();
    for sql in [
        "ALTER SUBSCRIPTION shop_sub ENABLE",
        "ALTER SUBSCRIPTION shop_sub REFRESH PUBLICATION WITH (copy_data = false)",
    ] {
        server.sql_in("shop", sql).await.unwrap();
    }
    // The source's subscription really consumes: a row published in `hub` arrives in `shop`.
    server
        .sql_in("hub", "INSERT INTO items VALUES (1)")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while number(server, "shop", "SELECT count(*) FROM items").await < 1 {
        assert!(
            Instant::now() < deadline,
            "the source's subscription never replicated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_restored_postgres_copy_reports_every_way_out_and_subscribes_to_nothing() {
    let server = server().await;
    seed(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let source = DatabaseSource::new(SourceConfig::Postgres(postgres_config(&server, "shop")));
    run_backup(
        &store,
        &BackupOptions::new("shop-pg", Some(key(9))),
        DumpInput::from_started(source.dump().await.unwrap()),
        Progress::new(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let opened = OpenedBackup::open(&store, "shop-pg", &KeyRing::new(vec![key(9)]), 2)
        .await
        .unwrap();
    let progress = Arc::new(Progress::default());
    let verified = VerifiedBackup::verify(opened, &progress).await.unwrap();
    let target = RestoreTarget::Postgres(PostgresRestoreOptions {
        database: "shop_copy".into(),
        overwrite: false,
        no_owner: false,
        no_privileges: false,
        properties: None,
    });
    let stream = source.restore(&target).await.unwrap();
    verified.restore_into(stream, &progress).await.unwrap();

    // The copy's subscription is disabled; the publisher's slot still belongs to the source.
    let copy_sub = server
        .sql_in(
            "shop_copy",
            "SELECT subenabled FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid \
             WHERE d.datname = 'shop_copy'",
        )
        .await
        .unwrap();
    assert_eq!(copy_sub.trim(), "f");
    server
        .sql_in("hub", "INSERT INTO items VALUES (2)")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while number(&server, "shop", "SELECT count(*) FROM items").await < 2 {
        assert!(
            Instant::now() < deadline,
            "the source's subscription stopped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        number(&server, "shop_copy", "SELECT count(*) FROM items").await,
        1
    );

    let report = source
        .isolation_report(&target, &["shop".to_owned()])
        .await
        .unwrap();
    let text = format!("{report:?} {}", serde_json::to_string(&report).unwrap());
    assert!(!text.contains(server.password()), "{text}");
    let mut found: Vec<(ObjectKind, String, bool)> = report
        .external_references
        .iter()
        .map(|r| (r.kind, r.name.clone(), r.names_source))
        .collect();
    found.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        found,
        [
            (
                ObjectKind::UserMapping,
                format!("{}@prod", server.superuser()),
                false
            ),
            (ObjectKind::ForeignServer, "prod".into(), true),
            (ObjectKind::Routine, "remote_count".into(), true),
        ],
        "{report:#?}"
    );
    let prod = &report.external_references[0];
    assert_eq!(
        prod.reaches,
        format!(
            "postgres_fdw server dbname=shop host={} port={}",
            server.host(),
            server.port()
        )
    );
    assert_eq!(report.scheduled.len(), 1, "{report:#?}");
    assert_eq!(report.scheduled[0].name, "shop_sub");
    assert!(!report.scheduled[0].enabled);
    assert!(!report.isolated());

    let drill = run_drill(&verified, &source, &progress).await.unwrap();
    assert!(!drill.isolated);
    assert!(!drill.passed());
    assert_eq!(drill.isolation.external_references.len(), 3);
    // The drill removed its scratch database (its subscription detached from the slot first),
    // and the source still consumes from its slot.
    let scratch = server
        .sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'vertice\\_drill\\_%'")
        .await
        .unwrap();
    assert_eq!(scratch.trim(), "0");
    server
        .sql_in("hub", "INSERT INTO items VALUES (3)")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while number(&server, "shop", "SELECT count(*) FROM items").await < 3 {
        assert!(
            Instant::now() < deadline,
            "the source's subscription stopped after the drill"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
