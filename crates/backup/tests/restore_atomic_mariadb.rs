//! Items 1 and 2 of the engine-faults issue on MariaDB, which has no `RENAME DATABASE`: a
//! restore streams into staging databases and the commit moves contents (tables, views,
//! triggers, routines, events). A restore that fails for any reason — a damaged or unreadable
//! store (one and two passes), `mariadb` failing midway through the script, a cancel, Ctrl-C
//! through the binary while the restore waits on a lock — leaves the databases it would
//! overwrite exactly as they were and nothing named `vertice_…` behind; good overwrites carry
//! every object, for one database under another name and for a dump of two databases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/db_compare.rs"]
mod db_compare;
#[path = "common/pipeline.rs"]
mod pipeline;
#[path = "support/restore_faults.rs"]
mod restore_faults;

#[path = "support/cli_process.rs"]
mod cli_process;

use db_compare::{mariadb_config, read_dump};
use pipeline::{backup_bytes, local_store};
use restore_faults::{Damage, catches_sigint, every_failure, restore, small_options, wait_until};
use tokio_util::sync::CancellationToken;
use vertice_backup::backup::BackupOptions;
use vertice_backup::progress::Progress;
use vertice_backup::source::mariadb::MariadbRestoreOptions;
use vertice_backup::source::{DatabaseSource, RestoreTarget, SourceConfig};
use vertice_testkit::services::MariaDb;

/// `live`'s objects and data, as one comparable text.
async fn mariadb_state(server: &MariaDb, database: &str) -> String {
    let schema = database.replace('\'', "''");
    server
        .sql(&format!(
            "SELECT CONCAT_WS('|',
               (SELECT GROUP_CONCAT(TABLE_NAME, ':', TABLE_TYPE ORDER BY TABLE_NAME)
                  FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{schema}'),
               (SELECT GROUP_CONCAT(TRIGGER_NAME ORDER BY TRIGGER_NAME)
                  FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{schema}'),
               (SELECT GROUP_CONCAT(ROUTINE_NAME ORDER BY ROUTINE_NAME)
                  FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{schema}'),
               (SELECT GROUP_CONCAT(EVENT_NAME ORDER BY EVENT_NAME)
                  FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{schema}'),
               (SELECT COUNT(*) FROM `{database}`.items),
               (SELECT c FROM `{database}`.v),
               `{database}`.f())"
        ))
        .await
        .unwrap()
        .trim()
        .to_owned()
}

async fn mariadb_leftovers(server: &MariaDb) -> String {
    server
        .sql(
            "SELECT IFNULL(GROUP_CONCAT(SCHEMA_NAME), '') FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME LIKE 'vertice\\_%'",
        )
        .await
        .unwrap()
        .trim()
        .to_owned()
}

/// A database with every kind of object a swap must carry: tables with data, a view on a
/// view, a trigger, a function reading a table, an event (disabled: it must not run here).
async fn seed_mariadb(server: &MariaDb, database: &str, rows: u32) {
    server.create_database(database).await.unwrap();
    server
        .sql_in(
            database,
            &format!(
                "CREATE TABLE items (id INT PRIMARY KEY, label TEXT);
                 INSERT INTO items SELECT seq, REPEAT(MD5(seq), 4) FROM seq_1_to_{rows};
                 CREATE TABLE log (id INT);
                 CREATE VIEW base AS SELECT COUNT(*) AS c FROM items;
                 CREATE VIEW v AS SELECT c FROM base;
                 CREATE TRIGGER trg AFTER INSERT ON items FOR EACH ROW INSERT INTO log VALUES (NEW.id);
                 CREATE FUNCTION f() RETURNS INT RETURN (SELECT COUNT(*) FROM log);
                 CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DISABLE DO INSERT INTO log VALUES (0);"
            ),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn mariadb_failed_overwrites_keep_the_old_database_and_good_ones_carry_everything() {
    let server = MariaDb::start().await.unwrap();
    seed_mariadb(&server, "src", 20_000).await;
    seed_mariadb(&server, "live", 3).await;
    server
        .sql_in(
            "live",
            "INSERT INTO items VALUES (100, 'fires the trigger')",
        )
        .await
        .unwrap();
    let before = mariadb_state(&server, "live").await;
    assert_eq!(
        before,
        "base:VIEW,items:BASE TABLE,log:BASE TABLE,v:VIEW|trg|f|e|4|4|1"
    );

    let source = DatabaseSource::new(SourceConfig::Mariadb(mariadb_config(&server, &["src"])));
    let DatabaseSource::Mariadb(mariadb) = &source else {
        unreachable!()
    };
    let dump = read_dump(mariadb.dump().await.unwrap().stream)
        .await
        .unwrap();
    assert!(dump.len() > 2 * 1024 * 1024, "{}", dump.len());
    let target = RestoreTarget::Mariadb(MariadbRestoreOptions {
        database: Some("live".into()),
        dumped_databases: vec!["src".into()],
        overwrite: true,
        // The copy is compared with its source, events' status included.
        keep_events_enabled: true,
        ..Default::default()
    });
    // A script that creates a table, fills it, then fails.
    let mut failing = dump[..dump.len() / 2]
        .rsplitn(2, |&b| b == b'\n')
        .nth(1)
        .unwrap()
        .to_vec();
    failing.extend_from_slice(b"\nTHIS IS NOT SQL;\n");
    let check = async |what: &str| {
        assert_eq!(mariadb_state(&server, "live").await, before, "{what}");
        assert_eq!(mariadb_leftovers(&server).await, "", "{what}");
    };
    every_failure(&dump, &failing, &source, &target, check).await;

    // A good overwrite: every object of src, working, under the name live.
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    backup_bytes(&store, &small_options("good", None), dump.clone())
        .await
        .unwrap();
    restore(&store, "good", &source, &target, false, || {})
        .await
        .unwrap();
    assert_eq!(
        mariadb_state(&server, "live").await,
        mariadb_state(&server, "src").await
    );
    server
        .sql_in("live", "INSERT INTO items VALUES (0, 'new')")
        .await
        .unwrap();
    assert_eq!(
        server.sql_in("live", "SELECT f()").await.unwrap().trim(),
        "1",
        "the trigger and the function act on live's own tables"
    );
    assert_eq!(mariadb_leftovers(&server).await, "");
}

#[tokio::test]
async fn mariadb_several_databases_are_replaced_together_or_not_at_all() {
    let server = MariaDb::start().await.unwrap();
    seed_mariadb(&server, "a", 15_000).await;
    seed_mariadb(&server, "b", 5).await;
    let source = DatabaseSource::new(SourceConfig::Mariadb(mariadb_config(&server, &["a", "b"])));
    let DatabaseSource::Mariadb(mariadb) = &source else {
        unreachable!()
    };
    let dump = read_dump(mariadb.dump().await.unwrap().stream)
        .await
        .unwrap();
    let dumped = (
        mariadb_state(&server, "a").await,
        mariadb_state(&server, "b").await,
    );
    // After the dump both change: a restore must bring back the dumped state, or keep this.
    for database in ["a", "b"] {
        server
            .sql_in(
                database,
                "INSERT INTO items VALUES (99999, 'after the dump')",
            )
            .await
            .unwrap();
    }
    let changed = (
        mariadb_state(&server, "a").await,
        mariadb_state(&server, "b").await,
    );
    let target = RestoreTarget::Mariadb(MariadbRestoreOptions {
        database: None,
        dumped_databases: vec!["a".into(), "b".into()],
        overwrite: true,
        keep_events_enabled: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    for (name, damage) in [
        ("shortened", Damage::Shorten),
        ("flipped", Damage::FlipByte),
    ] {
        backup_bytes(&store, &small_options(name, None), dump.clone())
            .await
            .unwrap();
        restore(&store, name, &source, &target, false, || {
            damage.apply(dir.path(), name)
        })
        .await
        .unwrap_err();
        let now = (
            mariadb_state(&server, "a").await,
            mariadb_state(&server, "b").await,
        );
        assert_eq!(now, changed, "{damage:?}");
        assert_eq!(mariadb_leftovers(&server).await, "", "{damage:?}");
    }
    backup_bytes(&store, &small_options("good", None), dump.clone())
        .await
        .unwrap();
    restore(&store, "good", &source, &target, false, || {})
        .await
        .unwrap();
    let now = (
        mariadb_state(&server, "a").await,
        mariadb_state(&server, "b").await,
    );
    assert_eq!(now, dumped);
    assert_eq!(mariadb_leftovers(&server).await, "");
}

/// Ctrl-C in the middle of `restore --overwrite` through the binary: the restore is held at
/// a known point — the dump's view reads `other.t`, which a session keeps locked, so creating
/// the view in the staging database waits — then SIGINT: exit 130, the target as it was, no
/// staging database left.
#[tokio::test]
async fn sigint_in_the_middle_of_a_restore_leaves_the_target_as_it_was() {
    let server = MariaDb::start().await.unwrap();
    server.create_database("other").await.unwrap();
    server
        .sql_in("other", "CREATE TABLE t (i INT); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    seed_mariadb(&server, "src", 1000).await;
    server
        .sql_in("src", "CREATE VIEW vx AS SELECT COUNT(*) AS c FROM other.t")
        .await
        .unwrap();
    seed_mariadb(&server, "live", 3).await;
    let before = mariadb_state(&server, "live").await;

    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store = local_store(&store_dir);
    let source =
        vertice_backup::source::mariadb::MariadbSource::new(mariadb_config(&server, &["src"]));
    let started = source.dump().await.unwrap();
    vertice_backup::backup::run_backup(
        &store,
        &BackupOptions::new("held", None),
        vertice_backup::backup::DumpInput::from_started(started),
        Progress::new(),
        CancellationToken::new(),
    )
    .await
    .unwrap();

    // The lock: a session that holds it for as long as its stdin stays open.
    let mut locker = tokio::process::Command::from(server.mariadb_command());
    locker
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut locker = locker.spawn().unwrap();
    let mut locker_stdin = locker.stdin.take().unwrap();
    use tokio::io::AsyncWriteExt;
    locker_stdin
        .write_all(b"LOCK TABLES other.t WRITE;\n")
        .await
        .unwrap();
    locker_stdin.flush().await.unwrap();
    wait_until("other.t is locked", async || {
        server
            .sql("SHOW OPEN TABLES FROM other WHERE In_use > 0")
            .await
            .unwrap()
            .contains('t')
    })
    .await;

    let password_file = dir.path().join("password");
    std::fs::write(&password_file, server.password()).unwrap();
    let mut restore = cli_process::command([
        "restore",
        "--path",
        &store_dir.display().to_string(),
        "--prefix",
        "team/app",
        "--name",
        "held",
        "--engine",
        "mariadb",
        "--host",
        server.host(),
        "--port",
        &server.port().to_string(),
        "--user",
        server.user(),
        "--password-file",
        &password_file.display().to_string(),
        "--target-database",
        "live",
        "--overwrite",
    ]);
    let child = restore.spawn().unwrap();
    let pid = child.id().unwrap();
    wait_until("the restore waits for the lock", async || {
        catches_sigint(pid)
            && server
                .sql(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                     WHERE DB LIKE 'vertice\\_stage\\_%' AND STATE LIKE '%metadata lock%'",
                )
                .await
                .unwrap()
                .trim()
                == "1"
    })
    .await;
    let signalled = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the cancelled restore did not exit")
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(mariadb_state(&server, "live").await, before);
    assert_eq!(mariadb_leftovers(&server).await, "");
    drop(locker_stdin);
    let _ = locker.wait().await;
}
