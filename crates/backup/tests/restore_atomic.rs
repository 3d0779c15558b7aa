//! Items 1 and 2 of the engine-faults issue: a restore that fails for any reason leaves the
//! target exactly as it was, on every engine, and a commit happens only after the whole
//! stream was read and verified. Against real PostgreSQL, MariaDB and Redis servers (testkit)
//! and the local store, every restore below overwrites a target holding known contents and
//! fails because of:
//! - the store: the last data object flipped, shortened, lengthened, removed, or unreadable
//!   (a store error, not an integrity one) — damaged before a one-pass restore, and damaged
//!   after the verify pass of a two-pass one (what the issue saw);
//! - the tool: `pg_restore` on a truncated archive, `mariadb` on a script that fails midway,
//!   an RDB that is not one;
//! - a cancel in the middle of the stream.
//!
//! Each asserts the old contents, and that no staging database, holding database or partial
//! file is left. The successful overwrites prove the swap itself: PostgreSQL while a session
//! is connected to the target, MariaDB with views, triggers, routines and events, and a
//! MariaDB dump of two databases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/db_compare.rs"]
mod db_compare;
#[path = "common/pipeline.rs"]
mod pipeline;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use db_compare::{mariadb_config, postgres_config, read_dump, redis_config, seed_redis};
use pipeline::{backup_bytes, local_store};
use tokio_util::sync::CancellationToken;
use vertice_backup::backup::BackupOptions;
use vertice_backup::error::BackupError;
use vertice_backup::keys::KeyRing;
use vertice_backup::pipeline::compress::Compression;
use vertice_backup::progress::Progress;
use vertice_backup::restore::{VerifiedBackup, restore_backup};
use vertice_backup::source::mariadb::MariadbRestoreOptions;
use vertice_backup::source::postgres::PostgresRestoreOptions;
use vertice_backup::source::redis::RedisRestoreOptions;
use vertice_backup::source::{DatabaseSource, RestoreTarget, SourceConfig};
use vertice_backup::store::BackupStore;
use vertice_backup::verify::OpenedBackup;
use vertice_testkit::services::{MariaDb, Postgres, Redis, RedisOptions};

/// How the store lets a restore down.
#[derive(Clone, Copy, Debug)]
enum Damage {
    FlipByte,
    Shorten,
    Lengthen,
    Remove,
    /// The object cannot be read at all: a store error.
    Unreadable,
}

const DAMAGES: [Damage; 5] = [
    Damage::FlipByte,
    Damage::Shorten,
    Damage::Lengthen,
    Damage::Remove,
    Damage::Unreadable,
];

impl Damage {
    /// The exit code the restore must end with.
    fn exit_code(self) -> u8 {
        match self {
            Damage::Unreadable => 5,
            _ => 6,
        }
    }

    /// Damages the last data object of backup `name` in the local store at `dir`: the earlier
    /// objects stream into the staging target before the damage is found.
    fn apply(self, dir: &Path, name: &str) {
        let mut objects: Vec<PathBuf> = files_under(dir)
            .into_iter()
            .filter(|path| {
                path.parent().and_then(Path::file_name) == Some(name.as_ref())
                    && path
                        .file_name()
                        .and_then(|f| f.to_str())
                        .is_some_and(|f| f.starts_with("data-"))
            })
            .collect();
        objects.sort();
        assert!(objects.len() >= 2, "{name}: {objects:?}");
        let last = objects.last().unwrap();
        let mut bytes = std::fs::read(last).unwrap();
        match self {
            Damage::FlipByte => {
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x40;
                std::fs::write(last, bytes).unwrap();
            }
            Damage::Shorten => {
                bytes.truncate(bytes.len() - 100);
                std::fs::write(last, bytes).unwrap();
            }
            Damage::Lengthen => {
                bytes.extend_from_slice(b"appended");
                std::fs::write(last, bytes).unwrap();
            }
            Damage::Remove => std::fs::remove_file(last).unwrap(),
            Damage::Unreadable => {
                // A link to itself: opening it fails with ELOOP, which no store calls "not
                // found" (a directory or a missing file would be).
                std::fs::remove_file(last).unwrap();
                std::os::unix::fs::symlink(last.file_name().unwrap(), last).unwrap();
            }
        }
    }
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Small chunks and objects without compression: a dump of a few MB spans several objects
/// whatever its contents.
fn small_options(name: &str, key: Option<vertice_backup::keys::KeyEncryptionKey>) -> BackupOptions {
    let mut options = pipeline::small_options(name, key);
    options.compression = Compression::None;
    options
}

async fn open(store: &BackupStore, name: &str) -> OpenedBackup {
    OpenedBackup::open(store, name, &KeyRing::default(), 2)
        .await
        .unwrap()
}

/// Restores backup `name` into `target`: in one pass, or (`two_pass`) verified first and
/// damaged by `between` after the verify pass.
async fn restore(
    store: &BackupStore,
    name: &str,
    source: &DatabaseSource,
    target: &RestoreTarget,
    two_pass: bool,
    between: impl FnOnce(),
) -> Result<(), BackupError> {
    let progress = Progress::default();
    if two_pass {
        let verified = VerifiedBackup::verify(open(store, name).await, &progress).await?;
        between();
        let stream = source.restore(target).await?;
        verified.restore_into(stream, &progress).await.map(|_| ())
    } else {
        between();
        let opened = open(store, name).await;
        let stream = source.restore(target).await?;
        restore_backup(&opened, stream, &progress, &CancellationToken::new())
            .await
            .map(|_| ())
    }
}

/// Restores backup `name` into `target` and cancels as soon as the first bytes streamed in.
async fn restore_cancelled(
    store: &BackupStore,
    name: &str,
    source: &DatabaseSource,
    target: &RestoreTarget,
) -> Result<(), BackupError> {
    let progress = Arc::new(Progress::default());
    let cancel = CancellationToken::new();
    let watcher = {
        let progress = progress.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            while progress.done() == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            cancel.cancel();
        })
    };
    let opened = open(store, name).await;
    let stream = source.restore(target).await?;
    let outcome = restore_backup(&opened, stream, &progress, &cancel).await;
    watcher.abort();
    outcome.map(|_| ())
}

/// Every way of failing, each on a fresh copy of `dump` in the store: damages in one and in
/// two passes, then `tool_failure` (a dump the tool fails on), then a cancel. `check` runs
/// after each and asserts the target is unchanged.
async fn every_failure(
    dump: &[u8],
    tool_failure: &[u8],
    source: &DatabaseSource,
    target: &RestoreTarget,
    check: impl AsyncFn(&str),
) {
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let mut round = 0;
    for two_pass in [false, true] {
        for damage in DAMAGES {
            round += 1;
            let name = format!("b{round}");
            backup_bytes(&store, &small_options(&name, None), dump.to_vec())
                .await
                .unwrap();
            let what = format!("{damage:?}, two passes: {two_pass}");
            let error = restore(&store, &name, source, target, two_pass, || {
                damage.apply(dir.path(), &name)
            })
            .await
            .expect_err(&what);
            assert_eq!(error.exit_code(), damage.exit_code(), "{what}: {error}");
            check(&what).await;
        }
    }
    backup_bytes(&store, &small_options("tool", None), tool_failure.to_vec())
        .await
        .unwrap();
    let error = restore(&store, "tool", source, target, false, || {})
        .await
        .expect_err("tool failure");
    assert_eq!(error.exit_code(), 4, "tool failure: {error}");
    check("tool failure").await;

    backup_bytes(&store, &small_options("cancel", None), dump.to_vec())
        .await
        .unwrap();
    let error = restore_cancelled(&store, "cancel", source, target)
        .await
        .expect_err("cancel");
    assert!(matches!(error, BackupError::Cancelled), "cancel: {error}");
    assert_eq!(error.exit_code(), 130);
    check("cancel").await;
}

// ---------------------------------------------------------------------------------------
// PostgreSQL

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

// ---------------------------------------------------------------------------------------
// MariaDB

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

// ---------------------------------------------------------------------------------------
// Redis

fn dir_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn redis_failed_overwrites_keep_the_old_snapshot() {
    let original = Redis::start_with(RedisOptions::default()).await.unwrap();
    seed_redis(&original, 0, 200, 3_000_000).await.unwrap();
    let source = DatabaseSource::new(SourceConfig::Redis(redis_config(&original)));
    let DatabaseSource::Redis(redis) = &source else {
        unreachable!()
    };
    let dump = read_dump(redis.dump().await.unwrap().stream).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let previous = b"REDIS0010 the snapshot a server here loads today".to_vec();
    std::fs::write(data.path().join("dump.rdb"), &previous).unwrap();
    let target = RestoreTarget::Redis(RedisRestoreOptions {
        data_dir: data.path().to_path_buf(),
        dbfilename: "dump.rdb".into(),
        overwrite: true,
        bin_dir: None,
        databases: None,
    });
    let check = async |what: &str| {
        assert_eq!(
            std::fs::read(data.path().join("dump.rdb")).unwrap(),
            previous,
            "{what}"
        );
        assert_eq!(dir_listing(data.path()), ["dump.rdb"], "{what}");
    };
    let mut not_an_rdb = b"NOT AN RDB ".to_vec();
    not_an_rdb.extend_from_slice(&dump);
    every_failure(&dump, &not_an_rdb, &source, &target, check).await;

    // Without overwrite and nothing there, a failure leaves nothing.
    let empty = tempfile::tempdir().unwrap();
    let fresh = RestoreTarget::Redis(RedisRestoreOptions {
        data_dir: empty.path().to_path_buf(),
        dbfilename: "dump.rdb".into(),
        overwrite: false,
        bin_dir: None,
        databases: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    backup_bytes(&store, &small_options("short", None), dump.clone())
        .await
        .unwrap();
    restore(&store, "short", &source, &fresh, true, || {
        Damage::Shorten.apply(dir.path(), "short")
    })
    .await
    .unwrap_err();
    assert!(dir_listing(empty.path()).is_empty());
}

// ---------------------------------------------------------------------------------------
// `restore --to-file`, through the binary

#[path = "support/cli_process.rs"]
mod cli_process;

/// Names in `dir` other than `keep` (partial files would show here).
fn others(dir: &Path, keep: &str) -> Vec<String> {
    dir_listing(dir)
        .into_iter()
        .filter(|name| name != keep && name != "store")
        .collect()
}

#[tokio::test]
async fn restore_to_a_file_replaces_it_only_after_success() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store = local_store(&store_dir);
    let dump = pipeline::dump_bytes(3 * 1024 * 1024 + 17, 11);
    let out = dir.path().join("out.bin");
    std::fs::write(&out, b"previous").unwrap();
    let restore_args = |name: &str, to: &Path, overwrite: bool| {
        let mut args = vec![
            "restore".to_owned(),
            "--path".into(),
            store_dir.display().to_string(),
            "--prefix".into(),
            "team/app".into(),
            "--name".into(),
            name.into(),
            "--to-file".into(),
            to.display().to_string(),
            "--output".into(),
            "json".into(),
        ];
        if overwrite {
            args.push("--overwrite".into());
        }
        args
    };
    for damage in DAMAGES {
        let name = format!("{damage:?}").to_lowercase();
        backup_bytes(&store, &small_options(&name, None), dump.clone())
            .await
            .unwrap();
        damage.apply(&store_dir, &name);
        let outcome = cli_process::run(restore_args(&name, &out, true)).await;
        outcome.expect_code(i32::from(damage.exit_code()), &name);
        assert_eq!(std::fs::read(&out).unwrap(), b"previous", "{damage:?}");
        assert!(others(dir.path(), "out.bin").is_empty(), "{damage:?}");
        // Into a new file: none appears.
        let fresh = dir.path().join("fresh.bin");
        let outcome = cli_process::run(restore_args(&name, &fresh, false)).await;
        outcome.expect_code(i32::from(damage.exit_code()), &name);
        assert!(others(dir.path(), "out.bin").is_empty(), "{damage:?}");
    }

    backup_bytes(&store, &small_options("good", None), dump.clone())
        .await
        .unwrap();
    // Without --overwrite the existing file is refused, untouched.
    let outcome = cli_process::run(restore_args("good", &out, false)).await;
    outcome.expect_code(8, "existing file");
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
    let outcome = cli_process::run(restore_args("good", &out, true)).await;
    outcome.expect_code(0, "good overwrite");
    assert_eq!(std::fs::read(&out).unwrap(), dump);
    assert!(others(dir.path(), "out.bin").is_empty());
    let json = outcome.json();
    assert_eq!(json["passes"], 1, "{json}");
    assert_eq!(json["rawSize"], dump.len() as u64, "{json}");
    let manifest = store.read_manifest("good").await.unwrap();
    assert_eq!(json["chunks"], manifest.chunks.len() as u64, "{json}");

    // Stdout cannot be staged: two passes, and the bytes.
    let mut args = restore_args("good", Path::new("-"), false);
    args.truncate(args.len() - 2);
    let output = cli_process::command(args).output().await.unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(output.stdout == dump, "stdout differs from the dump");
}

/// Whether `pid` has a handler installed for SIGINT (bit 1 of `SigCgt` in /proc).
fn catches_sigint(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (2 - 1)) != 0)
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

/// Polls `condition` until it holds, failing after a minute.
async fn wait_until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !condition().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
