//! A restored or drilled MariaDB copy must never act on its source (issue 6, item 3): a
//! database `shop` with an enabled every-second event that writes into `shop.ticks`, a function
//! that reads `shop.orders`, a trigger that writes into `shop.audit` and a view over another
//! database, restored under a new name on the same server (the default) with the event
//! scheduler running.
//!
//! Nothing is proven by sleeping: the source's own event keeps ticking, so "several event
//! intervals passed" is a condition to wait for (the source wrote N more rows), and the copy's
//! event status in information_schema.EVENTS is asserted directly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/cli_process.rs"]
mod cli_process;
#[path = "support/db_compare.rs"]
mod db_compare;
#[path = "common/pipeline.rs"]
mod pipeline;

use std::sync::Arc;
use std::time::{Duration, Instant};

use db_compare::mariadb_config;
use pipeline::*;
use tokio_util::sync::CancellationToken;
use vertice_backup::backup::{BackupOptions, DumpInput, run_backup};
use vertice_backup::drill::run_drill;
use vertice_backup::isolation::ObjectKind;
use vertice_backup::keys::KeyRing;
use vertice_backup::progress::Progress;
use vertice_backup::restore::VerifiedBackup;
use vertice_backup::source::mariadb::MariadbRestoreOptions;
use vertice_backup::source::{DatabaseSource, RestoreTarget, SourceConfig};
use vertice_backup::store::BackupStore;
use vertice_backup::verify::OpenedBackup;
use vertice_testkit::services::{MariaDb, MariaDbOptions};

/// Every event writes the database it runs in (`DATABASE()` in an event is its own schema),
/// so a row in production's `ticks` says which copy wrote it.
const SHOP: &str = "
    CREATE TABLE orders (id INT PRIMARY KEY);
    INSERT INTO orders VALUES (1), (2), (3);
    CREATE TABLE ticks (id INT AUTO_INCREMENT PRIMARY KEY, origin VARCHAR(64) NOT NULL);
    CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, order_id INT);
    CREATE FUNCTION n_orders() RETURNS INT RETURN (SELECT COUNT(*) FROM shop.orders);
    CREATE FUNCTION local_orders() RETURNS INT
        RETURN (SELECT COUNT(*) FROM orders WHERE 'shop.orders' <> '' /* shop.x */);
    CREATE TRIGGER audit_orders AFTER INSERT ON orders FOR EACH ROW
        INSERT INTO `shop`.`audit` (order_id) VALUES (NEW.id);
    CREATE VIEW customers_view AS SELECT id FROM crm.customers;
    CREATE VIEW own_view AS SELECT o.id FROM orders o;
    CREATE EVENT tick ON SCHEDULE EVERY 1 SECOND
        DO INSERT INTO shop.ticks (origin) VALUES (DATABASE());
    CREATE EVENT weekly ON SCHEDULE EVERY 1 WEEK DISABLE DO DELETE FROM ticks;
";

async fn server() -> MariaDb {
    MariaDb::start_with(MariaDbOptions {
        extra_args: vec!["--event-scheduler=ON".into()],
        ..MariaDbOptions::default()
    })
    .await
    .unwrap_or_else(|error| {
        panic!(
            "MariaDB is needed for these tests (Debian: apt-get install mariadb-server \
             mariadb-client): {error:#}"
        )
    })
}

async fn seed(server: &MariaDb) {
    server.create_database("crm").await.unwrap();
    server
        .sql_in("crm", "CREATE TABLE customers (id INT PRIMARY KEY)")
        .await
        .unwrap();
    server.create_database("shop").await.unwrap();
    server.sql_in("shop", SHOP).await.unwrap();
}

async fn number(server: &MariaDb, sql: &str) -> u64 {
    server.sql(sql).await.unwrap().trim().parse().unwrap()
}

/// Rows in production's `ticks` written by the events of database `origin`.
async fn ticks_from(server: &MariaDb, origin: &str) -> u64 {
    number(
        server,
        &format!(
            "SELECT COUNT(*) FROM shop.ticks WHERE origin = '{}'",
            origin.replace('\'', "''")
        ),
    )
    .await
}

/// Waits until the source's own event has written `more` rows beyond now: proof that the
/// scheduler ran and that `more` event intervals passed.
async fn wait_for_source_ticks(server: &MariaDb, more: u64) {
    let start = ticks_from(server, "shop").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ticks_from(server, "shop").await < start + more {
        assert!(
            Instant::now() < deadline,
            "the source's event did not tick {more} times in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn event_status(server: &MariaDb, database: &str, event: &str) -> String {
    server
        .sql(&format!(
            "SELECT STATUS FROM information_schema.EVENTS \
             WHERE EVENT_SCHEMA = '{database}' AND EVENT_NAME = '{event}'"
        ))
        .await
        .unwrap()
        .trim()
        .to_owned()
}

async fn back_up(server: &MariaDb, store: &BackupStore, name: &str) -> DatabaseSource {
    let source = DatabaseSource::new(SourceConfig::Mariadb(mariadb_config(server, &["shop"])));
    run_backup(
        store,
        &BackupOptions::new(name, Some(key(7))),
        DumpInput::from_started(source.dump().await.unwrap()),
        Progress::new(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    source
}

async fn verified(store: &BackupStore, name: &str) -> VerifiedBackup {
    let opened = OpenedBackup::open(store, name, &KeyRing::new(vec![key(7)]), 2)
        .await
        .unwrap();
    VerifiedBackup::verify(opened, &Arc::new(Progress::default()))
        .await
        .unwrap()
}

async fn restore(
    source: &DatabaseSource,
    verified: &VerifiedBackup,
    database: &str,
    keep_events_enabled: bool,
) -> vertice_backup::isolation::IsolationReport {
    let target = RestoreTarget::Mariadb(MariadbRestoreOptions {
        database: Some(database.to_owned()),
        dumped_databases: vec!["shop".into()],
        keep_events_enabled,
        ..Default::default()
    });
    let stream = source.restore(&target).await.unwrap();
    verified
        .restore_into(stream, &Arc::new(Progress::default()))
        .await
        .unwrap();
    source
        .isolation_report(&target, &["shop".to_owned()])
        .await
        .unwrap()
}

#[tokio::test]
async fn a_restored_or_drilled_copy_never_acts_on_its_source() {
    let server = server().await;
    seed(&server).await;
    wait_for_source_ticks(&server, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let source = back_up(&server, &store, "shop-1").await;
    let verified = verified(&store, "shop-1").await;

    // The default: the copy's events arrive disabled, and stay so while the source ticks on.
    let report = restore(&source, &verified, "shop_copy", false).await;
    assert_eq!(event_status(&server, "shop_copy", "tick").await, "DISABLED");
    assert_eq!(
        event_status(&server, "shop_copy", "weekly").await,
        "DISABLED"
    );
    wait_for_source_ticks(&server, 3).await;
    assert_eq!(ticks_from(&server, "shop_copy").await, 0);

    // The report names what reaches outside the copy, and only that.
    let mut found: Vec<(ObjectKind, String, String, bool)> = report
        .external_references
        .iter()
        .map(|r| (r.kind, r.name.clone(), r.reaches.clone(), r.names_source))
        .collect();
    found.sort_by(|a, b| (a.1.clone()).cmp(&b.1));
    assert_eq!(
        found,
        [
            (
                ObjectKind::Trigger,
                "audit_orders".into(),
                "database shop".into(),
                true
            ),
            (
                ObjectKind::View,
                "customers_view".into(),
                "database crm".into(),
                false
            ),
            (
                ObjectKind::Routine,
                "n_orders".into(),
                "database shop".into(),
                true
            ),
            (
                ObjectKind::Event,
                "tick".into(),
                "database shop".into(),
                true
            ),
        ],
        "{report:#?}"
    );
    assert!(report.scheduled.iter().all(|event| !event.enabled));
    assert_eq!(report.scheduled.len(), 2, "{report:#?}");
    assert!(!report.isolated());

    // Asked for: the events keep their state, and the copy's tick really runs.
    let kept = restore(&source, &verified, "shop_live_copy", true).await;
    assert_eq!(
        event_status(&server, "shop_live_copy", "tick").await,
        "ENABLED"
    );
    assert_eq!(
        event_status(&server, "shop_live_copy", "weekly").await,
        "DISABLED"
    );
    assert!(kept.scheduled.iter().any(|event| event.enabled));
    let deadline = Instant::now() + Duration::from_secs(30);
    while ticks_from(&server, "shop_live_copy").await == 0 {
        assert!(Instant::now() < deadline, "the kept event never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.sql("DROP DATABASE shop_live_copy").await.unwrap();

    // A drill restores with events disabled, writes nothing into production, and fails its
    // isolated check.
    let audit_before = number(&server, "SELECT COUNT(*) FROM shop.audit").await;
    let drill = run_drill(&verified, &source, &Arc::new(Progress::default()))
        .await
        .unwrap();
    // (The source's event may tick between the counts and the dump: differences in `ticks`
    // are not this test's business.)
    assert!(!drill.isolated);
    assert!(!drill.passed());
    assert!(drill.isolation.scheduled.iter().all(|event| !event.enabled));
    assert_eq!(drill.isolation.external_references.len(), 4);
    wait_for_source_ticks(&server, 2).await;
    assert_eq!(
        ticks_from_like(&server, "vertice\\_drill\\_%").await,
        0,
        "a drill's event wrote into production"
    );
    assert_eq!(
        number(&server, "SELECT COUNT(*) FROM shop.audit").await,
        audit_before
    );
}

async fn ticks_from_like(server: &MariaDb, pattern: &str) -> u64 {
    number(
        server,
        &format!("SELECT COUNT(*) FROM shop.ticks WHERE origin LIKE '{pattern}'"),
    )
    .await
}

/// A database whose code names only itself drills as isolated, even with an enabled event.
#[tokio::test]
async fn a_self_contained_database_drills_isolated() {
    let server = server().await;
    server.create_database("solo").await.unwrap();
    server
        .sql_in(
            "solo",
            "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME);
             INSERT INTO t (at) VALUES (NOW());
             CREATE FUNCTION n() RETURNS INT RETURN (SELECT COUNT(*) FROM t);
             CREATE EVENT e ON SCHEDULE EVERY 1 SECOND STARTS NOW() + INTERVAL 1 DAY
                 DO INSERT INTO t (at) VALUES (NOW());
             CREATE VIEW v AS SELECT solo.t.id FROM solo.t;",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let source = DatabaseSource::new(SourceConfig::Mariadb(mariadb_config(&server, &["solo"])));
    assert_eq!(event_status(&server, "solo", "e").await, "ENABLED");
    run_backup(
        &store,
        &BackupOptions::new("solo-1", Some(key(7))),
        DumpInput::from_started(source.dump().await.unwrap()),
        Progress::new(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let drill = run_drill(
        &verified(&store, "solo-1").await,
        &source,
        &Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    assert!(drill.differences.is_empty(), "{:?}", drill.differences);
    assert!(drill.isolated, "{:#?}", drill.isolation);
    assert!(drill.passed());
    assert!(drill.isolation.external_references.is_empty());
    assert_eq!(drill.isolation.scheduled.len(), 1);
    assert!(!drill.isolation.scheduled[0].enabled);
}

/// The CLI: `--keep-events-enabled` is documented in `--help`, the restore's JSON and text
/// carry the findings, and a drill that is not isolated exits 9.
#[tokio::test]
async fn the_cli_reports_references_and_a_drill_that_is_not_isolated_exits_9() {
    let server = server().await;
    seed(&server).await;
    let help = cli_process::run(["restore", "--help"]).await;
    help.expect_code(0, "restore --help");
    assert!(
        help.stdout.contains("--keep-events-enabled"),
        "{}",
        help.stdout
    );

    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, server.password()).unwrap();
    let store_dir = dir.path().join("store");
    let connection = |database: &str| {
        vec![
            "--store".to_owned(),
            "local".to_owned(),
            "--path".to_owned(),
            store_dir.display().to_string(),
            "--engine".to_owned(),
            "mariadb".to_owned(),
            "--host".to_owned(),
            server.host().to_owned(),
            "--port".to_owned(),
            server.port().to_string(),
            "--user".to_owned(),
            server.user().to_owned(),
            "--password-file".to_owned(),
            password_file.display().to_string(),
            "--database".to_owned(),
            database.to_owned(),
            "--no-encryption".to_owned(),
        ]
    };
    let mut args = vec![
        "backup".to_owned(),
        "--name".to_owned(),
        "shop-cli".to_owned(),
    ];
    args.extend(connection("shop"));
    cli_process::run(&args).await.expect_code(0, "backup");

    let mut args = vec![
        "restore".to_owned(),
        "--name".to_owned(),
        "shop-cli".to_owned(),
    ];
    args.extend(connection("shop"));
    args.extend(["--target-database".to_owned(), "shop_cli_copy".to_owned()]);
    let mut json_args = args.clone();
    json_args.extend(["--output".to_owned(), "json".to_owned()]);
    let restored = cli_process::run(&json_args).await;
    restored.expect_code(0, "restore --output json");
    let json = restored.json();
    assert_eq!(json["isolated"], false, "{json}");
    let references = json["isolation"]["externalReferences"].as_array().unwrap();
    assert!(
        references
            .iter()
            .any(|r| r["name"] == "n_orders" && r["kind"] == "routine" && r["namesSource"] == true),
        "{json}"
    );
    assert_eq!(
        event_status(&server, "shop_cli_copy", "tick").await,
        "DISABLED"
    );

    let mut text_args = args.clone();
    if let Some(last) = text_args.last_mut() {
        *last = "shop_cli_copy2".to_owned();
    }
    let text = cli_process::run(&text_args).await;
    text.expect_code(0, "restore (text)");
    assert!(
        text.stdout
            .contains("warning: routine shop_cli_copy2.n_orders reaches database shop"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("disabled in the copy"),
        "{}",
        text.stdout
    );

    let mut args = vec![
        "drill".to_owned(),
        "--name".to_owned(),
        "shop-cli".to_owned(),
    ];
    args.extend(connection("shop"));
    let drill = cli_process::run(&args).await;
    drill.expect_code(9, "drill of a copy that reaches its source");
    assert!(drill.stdout.contains("NOT ISOLATED"), "{}", drill.stdout);
}
