//! The MariaDB source against a real MariaDB 10.11 server from testkit: dump → restore into a
//! new database → `CHECKSUM TABLE` and `SHOW CREATE TABLE` equal; counts match; hostile names;
//! multi-database dumps; clean errors without the password.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/db_compare.rs"]
mod db_compare;

use std::collections::BTreeMap;

use db_compare::{mariadb_config, mariadb_table_fingerprints, read_dump, write_restore};
use vertice_backup::source::mariadb::{MariadbRestoreOptions, MariadbSource, quote_ident};
use vertice_backup::source::{Engine, ObjectCounts, PasswordSource, Secret, SourceError};
use vertice_testkit::services::MariaDb;

const HOSTILE_DB: &str = "we`ird; DROP DATABASE mysql; -- 'ü\" \\";
const HOSTILE_TABLE: &str = "t'a`b; DELETE x; 表 \\n";

async fn server() -> MariaDb {
    MariaDb::start().await.unwrap_or_else(|error| {
        panic!(
            "MariaDB is needed for these tests (Debian: apt-get install mariadb-server \
             mariadb-client, or `cargo xtask tools`): {error:#}"
        )
    })
}

/// Views, routines and triggers are created unqualified (inside the database, as applications
/// do): MariaDB keeps a trigger's text as written, so one created as `db.trg ON db.t` would
/// still name the original database after a restore under another name.
async fn seed(server: &MariaDb, database: &str) {
    server.create_database(database).await.unwrap();
    let table = format!("{}.{}", quote_ident(database), quote_ident(HOSTILE_TABLE));
    let plain = format!("{}.plain", quote_ident(database));
    let sql = format!(
        "SET NAMES utf8mb4;
         CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100), \
             data BLOB, at DATETIME, n DECIMAL(20,5)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
         INSERT INTO {table} (name, data, at, n) VALUES
             ('ü ''q'' \"d\" \\\\ ; 😀', UNHEX('00FF10'), '2024-01-01 10:00:00', 1.5),
             (NULL, NULL, NULL, NULL),
             ('tab\\there', REPEAT('x', 5000), NOW(), -3);
         CREATE TABLE {plain} (k INT PRIMARY KEY, v TEXT) ENGINE=InnoDB;
         INSERT INTO {plain} SELECT seq, REPEAT('y', seq % 40) FROM seq_1_to_777;
         CREATE TABLE {db}.empty (k INT) ENGINE=InnoDB;
         CREATE VIEW v AS SELECT COUNT(*) AS c FROM plain;
         CREATE PROCEDURE p() SELECT 1;
         CREATE TRIGGER trg BEFORE INSERT ON plain FOR EACH ROW SET NEW.v = UPPER(NEW.v);",
        db = quote_ident(database)
    );
    server.sql_in(database, &sql).await.unwrap();
}

#[tokio::test]
async fn round_trip_with_hostile_names_into_a_new_database() {
    let server = server().await;
    seed(&server, HOSTILE_DB).await;
    let source = MariadbSource::new(mariadb_config(&server, &[HOSTILE_DB]));

    let info = source.info().await.unwrap();
    assert_eq!(info.engine, Engine::Mariadb);
    assert!(info.server_version.contains("MariaDB"), "{info:?}");

    let started = source.dump().await.unwrap();
    assert_eq!(started.databases, [HOSTILE_DB]);
    let dump = read_dump(started.stream).await.unwrap();
    let counts = started.counts.await.unwrap();
    assert_eq!(
        counts,
        ObjectCounts::Rows(BTreeMap::from([(
            HOSTILE_DB.to_owned(),
            BTreeMap::from([
                (HOSTILE_TABLE.to_owned(), 3),
                ("plain".to_owned(), 777),
                ("empty".to_owned(), 0),
            ])
        )]))
    );

    let target = "restored ` \"copy\"; ü";
    let options = MariadbRestoreOptions {
        database: Some(target.to_owned()),
        dumped_databases: vec![HOSTILE_DB.to_owned()],
        overwrite: false,
        ..Default::default()
    };
    write_restore(source.restore(&options).await.unwrap(), &dump)
        .await
        .unwrap();

    let original = mariadb_table_fingerprints(&server, HOSTILE_DB)
        .await
        .unwrap();
    let restored = mariadb_table_fingerprints(&server, target).await.unwrap();
    assert_eq!(original.len(), 3);
    assert_eq!(original, restored);
    // Routines, triggers and views came along.
    let routines = server
        .sql(&format!(
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{}'",
            target.replace('\\', "\\\\").replace('\'', "''")
        ))
        .await
        .unwrap();
    assert_eq!(routines.trim(), "1");
    let triggers = server
        .sql(&format!(
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{}'",
            target.replace('\\', "\\\\").replace('\'', "''")
        ))
        .await
        .unwrap();
    assert_eq!(triggers.trim(), "1");

    // The restored view reads the restored table, not the original one.
    server
        .sql(&format!("DELETE FROM {}.plain", quote_ident(HOSTILE_DB)))
        .await
        .unwrap();
    let view = server
        .sql(&format!("SELECT c FROM {}.v", quote_ident(target)))
        .await
        .unwrap();
    assert_eq!(view.trim(), "777");

    // A drill's count of the restored copy is keyed by the dumped name.
    let recount = source
        .count_restored(&options, &[HOSTILE_DB.to_owned()])
        .await
        .unwrap();
    assert_eq!(recount, counts);
}

#[tokio::test]
async fn several_databases_restore_under_their_names_and_refuse_existing_ones() {
    let server = server().await;
    for name in ["one", "two"] {
        server.create_database(name).await.unwrap();
        server
            .sql_in(
                name,
                "CREATE TABLE t (v INT); INSERT INTO t VALUES (1), (2);",
            )
            .await
            .unwrap();
    }
    // All non-system databases.
    let source = MariadbSource::new(mariadb_config(&server, &[]));
    let started = source.dump().await.unwrap();
    assert_eq!(started.databases, ["one", "two"]);
    let dump = read_dump(started.stream).await.unwrap();
    let counts = started.counts.await.unwrap();
    let before_one = mariadb_table_fingerprints(&server, "one").await.unwrap();

    let mut options = MariadbRestoreOptions {
        database: None,
        dumped_databases: vec!["one".to_owned(), "two".to_owned()],
        overwrite: false,
        ..Default::default()
    };
    let refused = source.restore(&options).await;
    assert!(matches!(refused, Err(SourceError::TargetExists { .. })));

    // Overwrite: change the data, restore, and it is back as dumped.
    server.sql_in("one", "DELETE FROM t").await.unwrap();
    options.overwrite = true;
    write_restore(source.restore(&options).await.unwrap(), &dump)
        .await
        .unwrap();
    assert_eq!(
        mariadb_table_fingerprints(&server, "one").await.unwrap(),
        before_one
    );
    assert_eq!(
        source
            .count_restored(&options, &options.dumped_databases)
            .await
            .unwrap(),
        counts
    );
}

#[tokio::test]
async fn restore_refuses_an_existing_database_and_failed_restore_cleans_up() {
    let server = server().await;
    server.create_database("src").await.unwrap();
    server.create_database("taken").await.unwrap();
    let source = MariadbSource::new(mariadb_config(&server, &["src"]));
    let options = MariadbRestoreOptions {
        database: Some("taken".to_owned()),
        dumped_databases: vec!["src".to_owned()],
        overwrite: false,
        ..Default::default()
    };
    let refused = source.restore(&options).await;
    assert!(
        matches!(&refused, Err(SourceError::TargetExists { target }) if target == "taken"),
        "{:?}",
        refused.err()
    );

    let options = MariadbRestoreOptions {
        database: Some("fresh".to_owned()),
        dumped_databases: vec!["src".to_owned()],
        overwrite: false,
        ..Default::default()
    };
    let error = write_restore(
        source.restore(&options).await.unwrap(),
        b"CREATE TABLE broken (;\n",
    )
    .await
    .unwrap_err();
    let error = error.downcast::<SourceError>().unwrap();
    assert!(
        matches!(&error, SourceError::Tool { tool, .. } if tool == "mariadb"),
        "{error}"
    );
    let left = server
        .sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'fresh'")
        .await
        .unwrap();
    assert_eq!(
        left.trim(),
        "0",
        "a failed restore must not leave its database"
    );
}

#[tokio::test]
async fn database_down_or_wrong_password_is_a_clean_connect_error() {
    let mut server = server().await;
    server.create_database("d").await.unwrap();
    let wrong = "Wr0ng-pa55word-Zq";
    let mut config = mariadb_config(&server, &["d"]);
    config.password = PasswordSource::Value(Secret::new(wrong));
    let error = MariadbSource::new(config).dump().await.err().unwrap();
    assert!(
        matches!(
            error,
            SourceError::Connect {
                engine: Engine::Mariadb,
                ..
            }
        ),
        "{error}"
    );
    assert!(!error.to_string().contains(wrong), "{error}");

    let source = MariadbSource::new(mariadb_config(&server, &["d"]));
    server.kill();
    let error = source.dump().await.err().unwrap();
    assert!(matches!(error, SourceError::Connect { .. }), "{error}");
    assert!(!error.to_string().contains(server.password()), "{error}");
}
