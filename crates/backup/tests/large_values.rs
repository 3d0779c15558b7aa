//! Whatever was dumped from a server restores onto that same server, however large its rows
//! (issue 6, item 8): MariaDB rows of 20 MiB on a server whose `max_allowed_packet` is 32M,
//! binary and text; a restore onto a server whose limit is smaller than the row fails with a
//! short message that names max_allowed_packet; a 200 MB PostgreSQL bytea; a 100 MiB Redis
//! string.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/db_compare.rs"]
mod db_compare;
#[path = "common/pipeline.rs"]
mod pipeline;

use std::path::Path;
use std::sync::Arc;

use db_compare::{mariadb_config, mariadb_table_fingerprints, postgres_config, redis_config};
use pipeline::*;
use tokio_util::sync::CancellationToken;
use vertice_backup::backup::{BackupOptions, DumpInput, run_backup};
use vertice_backup::drill::run_drill;
use vertice_backup::error::BackupError;
use vertice_backup::keys::KeyRing;
use vertice_backup::progress::Progress;
use vertice_backup::restore::VerifiedBackup;
use vertice_backup::source::mariadb::MariadbRestoreOptions;
use vertice_backup::source::postgres::PostgresRestoreOptions;
use vertice_backup::source::redis::RedisRestoreOptions;
use vertice_backup::source::{DatabaseSource, RestoreTarget, SourceConfig, SourceError};
use vertice_backup::store::BackupStore;
use vertice_backup::verify::OpenedBackup;
use vertice_testkit::services::{MariaDb, MariaDbOptions, Postgres, Redis, RedisOptions};

const MIB: u64 = 1024 * 1024;

async fn mariadb(max_allowed_packet: &str) -> MariaDb {
    MariaDb::start_with(MariaDbOptions {
        extra_args: vec![format!("--max-allowed-packet={max_allowed_packet}")],
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

async fn back_up(source: &DatabaseSource, store: &BackupStore, name: &str) {
    run_backup(
        store,
        &BackupOptions::new(name, Some(key(8))),
        DumpInput::from_started(source.dump().await.unwrap()),
        Progress::new(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
}

async fn verified(store: &BackupStore, name: &str) -> VerifiedBackup {
    let opened = OpenedBackup::open(store, name, &KeyRing::new(vec![key(8)]), 2)
        .await
        .unwrap();
    VerifiedBackup::verify(opened, &Arc::new(Progress::default()))
        .await
        .unwrap()
}

async fn restore(
    source: &DatabaseSource,
    verified: &VerifiedBackup,
    target: &RestoreTarget,
) -> Result<(), BackupError> {
    let stream = source.restore(target).await?;
    verified
        .restore_into(stream, &Arc::new(Progress::default()))
        .await
        .map(|_| ())
}

fn mariadb_target(database: &str) -> RestoreTarget {
    RestoreTarget::Mariadb(MariadbRestoreOptions {
        database: Some(database.to_owned()),
        dumped_databases: vec!["big".into()],
        ..Default::default()
    })
}

/// 20 MiB rows: random bytes (every byte value, so escapes and NULs), a text of two-byte
/// characters, a blob of random bytes next to a 10 MiB text in one row, 20 MiB of zero bytes
/// (each escaped as two: a 40 MiB literal) and a 20 MiB latin1 text of accented letters.
const BIG_ROWS: &str = "
    CREATE TABLE blobs (id INT PRIMARY KEY, data LONGBLOB, note LONGTEXT)
        DEFAULT CHARSET=utf8mb4;
    INSERT INTO blobs VALUES (1, REPEAT(RANDOM_BYTES(1024), 20 * 1024), NULL);
    INSERT INTO blobs VALUES (2, NULL, REPEAT('ü', 10 * 1024 * 1024));
    INSERT INTO blobs VALUES (3, REPEAT(RANDOM_BYTES(1000), 9 * 1024), REPEAT('x', 10 * 1024 * 1024));
    INSERT INTO blobs VALUES (4, 0x00275C220A0D1A, 'small');
    INSERT INTO blobs VALUES (5, REPEAT(0x00, 20 * 1024 * 1024), NULL);
    CREATE TABLE latin (id INT PRIMARY KEY, t LONGTEXT) DEFAULT CHARSET=latin1;
    INSERT INTO latin VALUES (1, REPEAT('é''\\\\', 7 * 1024 * 1024));
";

#[tokio::test]
async fn mariadb_rows_of_20_mib_restore_onto_the_server_they_came_from() {
    let server = mariadb("32M").await;
    server.create_database("big").await.unwrap();
    server.sql_in("big", BIG_ROWS).await.unwrap();
    let lengths = server
        .sql("SELECT SUM(LENGTH(data)), SUM(LENGTH(note)) FROM big.blobs")
        .await
        .unwrap();
    assert_eq!(
        lengths.trim(),
        format!("{}\t{}", 40 * MIB + 9 * 1000 * 1024 + 7, 30 * MIB + 5)
    );
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let source = DatabaseSource::new(SourceConfig::Mariadb(mariadb_config(&server, &["big"])));
    back_up(&source, &store, "big-1").await;
    let verified = verified(&store, "big-1").await;

    restore(&source, &verified, &mariadb_target("big_copy"))
        .await
        .unwrap();
    let original = mariadb_table_fingerprints(&server, "big").await.unwrap();
    assert_eq!(
        mariadb_table_fingerprints(&server, "big_copy")
            .await
            .unwrap(),
        original
    );
    let drill = run_drill(&verified, &source, &Arc::new(Progress::default()))
        .await
        .unwrap();
    assert!(drill.passed(), "{drill:#?}");

    // A backup made before this fix (binary columns as hex, each byte two digits: a 40 MiB
    // statement for the 20 MiB row) restores onto the same server too.
    let mut dump = server.client_command("mariadb-dump");
    dump.args([
        "--single-transaction",
        "--hex-blob",
        "--default-character-set=utf8mb4",
        "--max-allowed-packet=1073741824",
        "big",
    ]);
    let old_dump = dump.output().unwrap();
    assert!(old_dump.status.success());
    assert!(old_dump.stdout.len() > 80 * MIB as usize);
    let old_target = mariadb_target("big_old");
    let stream = source.restore(&old_target).await.unwrap();
    db_compare::write_restore(stream, &old_dump.stdout)
        .await
        .unwrap();
    assert_eq!(
        mariadb_table_fingerprints(&server, "big_old")
            .await
            .unwrap(),
        original
    );

    // A server whose max_allowed_packet is smaller than the rows: a short, clear refusal.
    let small = mariadb("16M").await;
    let target = DatabaseSource::new(SourceConfig::Mariadb(mariadb_config(&small, &[])));
    let error = restore(&target, &verified, &mariadb_target("big_copy"))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(
            &error,
            BackupError::Source(SourceError::ValueTooLarge {
                max_allowed_packet,
                ..
            }) if *max_allowed_packet == 16 * MIB
        ),
        "{error:?}"
    );
    assert_eq!(error.exit_code(), 4);
    assert!(text.contains("max_allowed_packet"), "{text}");
    assert!(text.contains("16.0 MiB"), "{text}");
    // The client's own error line is kept, its echo of the statement is not.
    assert!(text.contains("said: ERROR 1242"), "{text}");
    assert!(text.len() < 3000, "{} bytes: {text}", text.len());
    // No row data: no run of 200 hex digits or of raw bytes.
    assert!(!text.contains(&"x".repeat(300)), "{text}");
    let databases = small
        .sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'big_copy'")
        .await
        .unwrap();
    assert_eq!(databases.trim(), "0", "a failed restore left its database");
}

#[tokio::test]
async fn a_postgres_value_of_200_mb_restores() {
    let server = Postgres::start().await.unwrap_or_else(|error| {
        panic!(
            "PostgreSQL is needed for these tests (Debian: apt-get install postgresql): {error:#}"
        )
    });
    server.create_database("big").await.unwrap();
    server
        .sql_in(
            "big",
            "CREATE TABLE blobs (id int PRIMARY KEY, data bytea, note text);
             INSERT INTO blobs SELECT 1, decode(repeat(md5('a') || md5('b'), 200 * 1000 * 1000 / 32), 'hex'), NULL;
             INSERT INTO blobs SELECT 2, NULL, repeat('ü', 50 * 1000 * 1000);",
        )
        .await
        .unwrap();
    let fingerprint = "SELECT string_agg(id || ':' || coalesce(md5(data), '-') || ':' \
                       || coalesce(md5(note), '-') || ':' || coalesce(length(data), 0), ',' \
                       ORDER BY id) FROM blobs";
    let original = server.sql_in("big", fingerprint).await.unwrap();
    assert!(original.contains(":200000000"), "{original}");
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let source = DatabaseSource::new(SourceConfig::Postgres(postgres_config(&server, "big")));
    back_up(&source, &store, "pg-big").await;
    let verified = verified(&store, "pg-big").await;
    let target = RestoreTarget::Postgres(PostgresRestoreOptions {
        database: "big_copy".into(),
        overwrite: false,
        no_owner: false,
        no_privileges: false,
        properties: None,
    });
    restore(&source, &verified, &target).await.unwrap();
    assert_eq!(
        server.sql_in("big_copy", fingerprint).await.unwrap(),
        original
    );
}

#[tokio::test]
async fn a_redis_value_of_100_mib_restores() {
    let start = |rdb: Option<&Path>| {
        Redis::start_with(RedisOptions {
            load_rdb: rdb.map(Path::to_path_buf),
            extra_args: vec!["--enable-debug-command".into(), "yes".into()],
            ..RedisOptions::default()
        })
    };
    let server = start(None).await.unwrap_or_else(|error| {
        panic!("Redis is needed for these tests (Debian: apt-get install redis-server): {error:#}")
    });
    server
        .cli(&[
            "EVAL",
            "redis.call('SET', 'big', string.rep('ab\\0\\255', 25 * 1024 * 1024)) \
             redis.call('RPUSH', 'list', string.rep('z', 8 * 1024 * 1024), 'small') \
             return redis.call('STRLEN', 'big')",
            "0",
        ])
        .await
        .unwrap();
    let digest = server.cli(&["DEBUG", "DIGEST"]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let source = DatabaseSource::new(SourceConfig::Redis(redis_config(&server)));
    back_up(&source, &store, "redis-big").await;
    let verified = verified(&store, "redis-big").await;
    let data = tempfile::tempdir().unwrap();
    let target = RestoreTarget::Redis(RedisRestoreOptions {
        data_dir: data.path().to_path_buf(),
        dbfilename: "dump.rdb".into(),
        overwrite: false,
        bin_dir: None,
        databases: None,
    });
    restore(&source, &verified, &target).await.unwrap();
    let restored = start(Some(&data.path().join("dump.rdb"))).await.unwrap();
    assert_eq!(
        restored.cli(&["STRLEN", "big"]).await.unwrap().trim(),
        (100 * MIB).to_string()
    );
    assert_eq!(restored.cli(&["DEBUG", "DIGEST"]).await.unwrap(), digest);
}
