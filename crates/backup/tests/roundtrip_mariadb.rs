//! A real MariaDB database with hostile database and table names, backed up through the whole
//! pipeline (dump → chunks → zstd → AES-256-GCM → object store → manifest) into the real S3
//! server and the local store, restored into a new database (`CHECKSUM TABLE` and
//! `SHOW CREATE TABLE` equal for every table), verified and drilled (counts match the
//! manifest; a manifest whose counts differ makes the drill report the difference), and a
//! backup of a server that is down that fails cleanly and leaves nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/db_compare.rs"]
mod db_compare;
#[path = "common/pipeline.rs"]
mod pipeline;

use std::collections::BTreeMap;
use std::sync::Arc;

use db_compare::{mariadb_config, mariadb_table_fingerprints};
use pipeline::*;
use tokio_util::sync::CancellationToken;
use vertice_backup::backup::{BackupOptions, DumpInput, run_backup};
use vertice_backup::drill::{quoted_table, run_drill};
use vertice_backup::error::BackupError;
use vertice_backup::keys::KeyRing;
use vertice_backup::progress::Progress;
use vertice_backup::restore::VerifiedBackup;
use vertice_backup::source::mariadb::{MariadbRestoreOptions, quote_ident};
use vertice_backup::source::{DatabaseSource, Engine, ObjectCounts, RestoreTarget, SourceConfig};
use vertice_backup::store::BackupStore;
use vertice_backup::verify::OpenedBackup;
use vertice_testkit::services::{MariaDb, S3Server};

/// Backticks, both quotes, spaces, a statement separator, a comment and unicode.
const HOSTILE_DB: &str = "shop `prod` 'eu' \"ü\" 表; -- x";
/// Table names with the same kinds of characters (and a reserved word).
const ORDERS: &str = "order `items` 'x' \"y\"";
// Identifiers are utf8mb3 in MariaDB: no 4-byte characters such as emoji (data may hold them).
const PEOPLE: &str = "ñandú; DROP TABLE t; ☃";
const EMPTY: &str = "select";

async fn server() -> MariaDb {
    MariaDb::start().await.unwrap_or_else(|error| {
        panic!(
            "MariaDB is needed for these tests (Debian: apt-get install mariadb-server \
             mariadb-client): {error:#}"
        )
    })
}

fn table(database: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(database), quote_ident(table))
}

/// Several tables: a large one (so the dump spans many chunks) with NULLs and binary blobs,
/// one with unicode and awkward text, one with many column types, and an empty one.
async fn seed(server: &MariaDb) {
    server.create_database(HOSTILE_DB).await.unwrap();
    let orders = table(HOSTILE_DB, ORDERS);
    let people = table(HOSTILE_DB, PEOPLE);
    let types = table(HOSTILE_DB, "types");
    let empty = table(HOSTILE_DB, EMPTY);
    let sql = format!(
        "SET NAMES utf8mb4;
         CREATE TABLE {orders} (id INT PRIMARY KEY, note VARCHAR(200) NULL, data BLOB NULL,
             amount DECIMAL(12,2) NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
         INSERT INTO {orders}
             SELECT seq,
                    IF(seq % 7 = 0, NULL, CONCAT('note ', seq, ' ', MD5(seq))),
                    IF(seq % 5 = 0, NULL, UNHEX(CONCAT(REPEAT(MD5(seq), 8), '00FF275C220A'))),
                    IF(seq % 11 = 0, NULL, seq * 1.25)
             FROM seq_1_to_12000;
         CREATE TABLE {people} (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NULL,
             bio TEXT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
         INSERT INTO {people} (name, bio) VALUES
             ('Zoë ''O''Brien'' \"the\" \\\\ one', 'line1\\nline2\\ttab; -- not a comment'),
             ('名前 😀 ß ø', REPEAT('ü', 3000)),
             (NULL, NULL),
             ('', ''),
             ('back`tick', '/* c */ DROP TABLE x;');
         CREATE TABLE {types} (k BIGINT PRIMARY KEY, f DOUBLE NULL, d DATE NULL,
             t TIME(6) NULL, b BIT(8) NULL, e ENUM('a','b c','d''e') NULL, j LONGTEXT NULL,
             v VARBINARY(16) NULL) ENGINE=InnoDB;
         INSERT INTO {types}
             SELECT seq, seq / 3, DATE_ADD('2000-01-01', INTERVAL seq DAY),
                    SEC_TO_TIME(seq * 1.000001), seq % 256, ELT(1 + seq % 3, 'a', 'b c', 'd''e'),
                    JSON_OBJECT('k', seq, 's', 'ü'), UNHEX(LPAD(HEX(seq), 8, '0'))
             FROM seq_1_to_500;
         INSERT INTO {types} (k) VALUES (0);
         CREATE TABLE {empty} (k INT) ENGINE=InnoDB;"
    );
    server.sql_in(HOSTILE_DB, &sql).await.unwrap();
}

/// Row counts of every table, counted here with plain SQL (not by the code under test).
async fn expected_counts(server: &MariaDb) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    // Keyed by table: the manifest files them all under the one dumped database.
    for name in [ORDERS, PEOPLE, "types", EMPTY] {
        let rows = server
            .sql(&format!("SELECT COUNT(*) FROM {}", table(HOSTILE_DB, name)))
            .await
            .unwrap();
        counts.insert(name.to_owned(), rows.trim().parse::<u64>().unwrap());
    }
    counts
}

/// Databases whose name starts with `prefix` (to see that a drill cleaned up).
async fn databases_named_like(server: &MariaDb, prefix: &str) -> Vec<String> {
    let text = server
        .sql(&format!(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '{prefix}%'"
        ))
        .await
        .unwrap();
    text.lines().map(str::to_owned).collect()
}

async fn round_trip(server: &MariaDb, store: &BackupStore, name: &str) {
    let source = DatabaseSource::new(SourceConfig::Mariadb(mariadb_config(server, &[HOSTILE_DB])));
    let started = source.dump().await.unwrap();
    let mut options = BackupOptions::new(name, Some(key(3)));
    options.chunk_size = 256 * 1024;
    let manifest = run_backup(
        store,
        &options,
        DumpInput::from_started(started),
        Progress::new(),
        CancellationToken::new(),
    )
    .await
    .unwrap();

    // The manifest describes the dump: one database, exact per-table counts, the tools.
    assert_eq!(manifest.databases, [HOSTILE_DB]);
    let expected = expected_counts(server).await;
    assert_eq!(expected.values().sum::<u64>(), 12_000 + 5 + 501);
    assert_eq!(
        manifest.counts,
        Some(ObjectCounts::Rows(BTreeMap::from([(
            HOSTILE_DB.to_owned(),
            expected
        )])))
    );
    let info = manifest.source.as_ref().unwrap();
    assert_eq!(info.engine, Engine::Mariadb);
    assert!(info.server_version.contains("MariaDB"), "{info:?}");
    assert!(info.tool_versions.contains_key("mariadb-dump"), "{info:?}");
    assert!(
        manifest.chunks.len() > 4,
        "{} chunks",
        manifest.chunks.len()
    );
    assert!(manifest.encryption.is_some());
    let manifest_text = String::from_utf8(manifest.to_json().unwrap()).unwrap();
    assert!(!manifest_text.contains(server.password()));

    let keys = KeyRing::new(vec![key(3)]);
    let progress = Arc::new(Progress::default());
    let opened = OpenedBackup::open(store, name, &keys, 2).await.unwrap();
    let report = opened.verify(&progress).await.unwrap();
    assert_eq!(report.raw_size, manifest.raw_size);
    assert_eq!(report.chunks, manifest.chunks.len() as u64);

    // Restore into a new database with a hostile name of its own.
    let opened = OpenedBackup::open(store, name, &keys, 2).await.unwrap();
    let verified = VerifiedBackup::verify(opened, &progress).await.unwrap();
    let target_db = format!("{name} restored `copy` 'ü'");
    let target = RestoreTarget::Mariadb(MariadbRestoreOptions {
        database: Some(target_db.clone()),
        dumped_databases: manifest.databases.clone(),
        overwrite: false,
        ..Default::default()
    });
    let stream = source.restore(&target).await.unwrap();
    let restore = verified.restore_into(stream, &progress).await.unwrap();
    assert_eq!(restore.raw_size, manifest.raw_size);

    let original = mariadb_table_fingerprints(server, HOSTILE_DB)
        .await
        .unwrap();
    let restored = mariadb_table_fingerprints(server, &target_db)
        .await
        .unwrap();
    assert_eq!(original.len(), 4, "{original:?}");
    for (checksum, create) in original.values() {
        assert!(checksum.parse::<u64>().is_ok(), "{checksum:?}");
        assert!(create.starts_with("CREATE TABLE"), "{create}");
    }
    assert_eq!(original, restored);
    // The comparison sees a one-byte change in one row.
    server
        .sql(&format!(
            "UPDATE {} SET bio = CONCAT(bio, '.') WHERE name = ''",
            table(&target_db, PEOPLE)
        ))
        .await
        .unwrap();
    let changed = mariadb_table_fingerprints(server, &target_db)
        .await
        .unwrap();
    assert_ne!(original[PEOPLE], changed[PEOPLE]);

    // A second restore into the same database is refused.
    let error = source.restore(&target).await.map(|_| ()).unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");

    // The drill restores into a scratch database, finds the manifest's counts and removes it.
    let drill = run_drill(&verified, &source, &progress).await.unwrap();
    assert!(drill.differences.is_empty(), "{:?}", drill.differences);
    assert_eq!(drill.restored, drill.expected.clone().unwrap());
    assert!(drill.restore.restore_seconds > 0.0);
    assert!(drill.scratch_target.starts_with("vertice_drill_"));
    assert!(
        databases_named_like(server, "vertice\\_drill\\_")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn mariadb_through_s3_and_local_store() {
    let server = server().await;
    seed(&server).await;

    let s3 = S3Server::start().await.unwrap();
    s3.create_bucket("mariadb-backups").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let in_s3 = s3_store(&s3, "mariadb-backups", dir.path());
    round_trip(&server, &in_s3, "maria-s3").await;
    round_trip(&server, &local_store(dir.path()), "maria-local").await;
}

/// The manifest's counts are the dump-time truth a drill checks against; when they do not
/// match what the backup restores to, the drill names the table. (Here the manifest records
/// one row more and is sealed again with the key — without the key the seal would refuse it.)
#[tokio::test]
async fn a_drill_reports_tables_whose_counts_differ() {
    let server = server().await;
    seed(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let source = DatabaseSource::new(SourceConfig::Mariadb(mariadb_config(
        &server,
        &[HOSTILE_DB],
    )));
    let started = source.dump().await.unwrap();
    let mut manifest = run_backup(
        &store,
        &BackupOptions::new("counted", Some(key(4))),
        DumpInput::from_started(started),
        Progress::new(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    match &mut manifest.counts {
        Some(ObjectCounts::Rows(tables)) => {
            *tables
                .get_mut(HOSTILE_DB)
                .and_then(|tables| tables.get_mut(PEOPLE))
                .unwrap() += 1;
        }
        other => panic!("no table counts: {other:?}"),
    }
    reseal(&mut manifest, &key(4));
    store.write_manifest(&manifest).await.unwrap();

    let progress = Arc::new(Progress::default());
    let opened = OpenedBackup::open(&store, "counted", &KeyRing::new(vec![key(4)]), 2)
        .await
        .unwrap();
    let verified = VerifiedBackup::verify(opened, &progress).await.unwrap();
    let drill = run_drill(&verified, &source, &progress).await.unwrap();
    assert_eq!(
        drill.differences,
        [format!(
            "{}: 6 rows at dump time, 5 restored",
            quoted_table(HOSTILE_DB, PEOPLE)
        )]
    );
    // The scratch database is gone even though the drill found differences.
    assert!(
        databases_named_like(&server, "vertice\\_drill\\_")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_database_that_is_down_fails_the_backup_cleanly() {
    let mut server = server().await;
    server.create_database("d").await.unwrap();
    let config = mariadb_config(&server, &["d"]);
    server.kill();
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let source = DatabaseSource::new(SourceConfig::Mariadb(config));
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
    assert_eq!(error.kind(), "Database", "{error}");
    assert!(!error.to_string().contains(server.password()), "{error}");
    assert!(!store.exists("down").await.unwrap());
    assert!(store.list_backup_names().await.unwrap().is_empty());
}
