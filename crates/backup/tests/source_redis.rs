//! The Redis source against a real Redis 7 server from testkit: an RDB snapshot streamed by
//! `redis-cli --rdb -`, written into a data directory, loaded by a fresh server with the same
//! `DEBUG DIGEST` and key count; password and ACL logins; refusals, non-RDB data, and clean
//! errors (without the password) for a server that is down or a wrong password.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/db_compare.rs"]
mod db_compare;

use std::path::Path;

use db_compare::{
    read_dump, redis_config, redis_digest, redis_key_count, redis_key_counts, seed_redis,
    write_restore,
};
use vertice_backup::source::redis::{
    RedisRestoreOptions, RedisScratchServer, RedisSource, count_keys_in_data_dir,
};
use vertice_backup::source::{Engine, ObjectCounts, PasswordSource, Secret, SourceError};
use vertice_testkit::services::{Redis, RedisOptions};

const PASSWORD: &str = "Redis-s3cret-pw-7Qx";

/// `DEBUG DIGEST` of an empty dataset.
const EMPTY_DIGEST: &str = "0000000000000000000000000000000000000000";

/// A server with a password and `DEBUG` allowed (for `DEBUG DIGEST`), optionally loading an RDB.
async fn server(password: Option<&str>, load_rdb: Option<&Path>) -> Redis {
    Redis::start_with(RedisOptions {
        password: password.map(str::to_owned),
        load_rdb: load_rdb.map(Path::to_path_buf),
        extra_args: vec!["--enable-debug-command".into(), "yes".into()],
        ..RedisOptions::default()
    })
    .await
    .unwrap_or_else(|error| {
        panic!("Redis is needed for these tests (Debian: apt-get install redis-server): {error:#}")
    })
}

fn restore_options(data_dir: &Path, overwrite: bool) -> RedisRestoreOptions {
    RedisRestoreOptions {
        data_dir: data_dir.to_path_buf(),
        dbfilename: "dump.rdb".into(),
        overwrite,
        bin_dir: None,
        databases: None,
    }
}

/// File names in `dir` (to see that no partial file was left).
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_snapshot_loads_into_a_fresh_server_with_the_same_digest() {
    let original = server(Some(PASSWORD), None).await;
    seed_redis(&original, 0, 300, 200_000).await.unwrap();
    seed_redis(&original, 5, 20, 1_000).await.unwrap();
    let digest = redis_digest(&original).await.unwrap();
    let keys = redis_key_count(&original).await.unwrap();
    assert_ne!(digest, EMPTY_DIGEST);
    assert_eq!(keys, 2 * 9 + 6 * (300 + 20));

    let source = RedisSource::new(redis_config(&original));
    let info = source.info().await.unwrap();
    assert_eq!(info.engine, Engine::Redis);
    assert!(info.server_version.starts_with("7."), "{info:?}");
    assert!(
        info.tool_versions["redis-cli"].contains("redis-cli"),
        "{info:?}"
    );
    assert_eq!(source.count_keys().await.unwrap(), keys);

    let started = source.dump().await.unwrap();
    assert!(started.databases.is_empty());
    let dump = read_dump(started.stream).await.unwrap();
    assert_eq!(
        started.counts.await.unwrap(),
        ObjectCounts::RedisKeys(redis_key_counts(&original).await.unwrap())
    );
    assert!(dump.starts_with(b"REDIS"), "not an RDB");
    assert!(dump.len() > 200_000, "{} bytes", dump.len());
    assert!(
        !dump
            .windows(PASSWORD.len())
            .any(|window| window == PASSWORD.as_bytes())
    );

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let options = restore_options(&data_dir, false);
    write_restore(source.restore(&options).await.unwrap(), &dump)
        .await
        .unwrap();
    assert_eq!(std::fs::read(data_dir.join("dump.rdb")).unwrap(), dump);
    assert_eq!(file_names(&data_dir), ["dump.rdb"]);

    // The engine's own scratch server (what drills use) loads it…
    let mut scratch = RedisScratchServer::start(&data_dir, "dump.rdb", None)
        .await
        .unwrap();
    assert_eq!(scratch.count_keys().await.unwrap(), keys);
    assert_eq!(scratch.digest().await.unwrap(), digest);
    scratch.stop().await;
    assert_eq!(
        count_keys_in_data_dir(&options).await.unwrap(),
        ObjectCounts::RedisKeys(redis_key_counts(&original).await.unwrap())
    );

    // …and so does an ordinary server started on the file.
    let restored = server(Some(PASSWORD), Some(&data_dir.join("dump.rdb"))).await;
    assert_eq!(redis_digest(&restored).await.unwrap(), digest);
    assert_eq!(redis_key_count(&restored).await.unwrap(), keys);
    let ttl: i64 = restored
        .cli(&["TTL", "str:db0:10"])
        .await
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((3000..=3600).contains(&ttl), "TTL {ttl}");
    let groups = restored.cli(&["XINFO", "GROUPS", "events"]).await.unwrap();
    assert!(groups.contains("workers"), "{groups}");
    let pending = restored
        .cli(&["XPENDING", "events", "workers"])
        .await
        .unwrap();
    assert!(pending.starts_with('1'), "{pending}");

    // The digest is a real comparison: one changed byte changes it.
    restored.cli(&["APPEND", "str:db0:1", "."]).await.unwrap();
    assert_ne!(redis_digest(&restored).await.unwrap(), digest);
}

#[tokio::test]
async fn restore_refuses_an_existing_snapshot_and_rejects_what_is_not_one() {
    let original = server(None, None).await;
    seed_redis(&original, 0, 5, 100).await.unwrap();
    let source = RedisSource::new(redis_config(&original));
    let dump = read_dump(source.dump().await.unwrap().stream)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("dump.rdb");
    std::fs::write(&target, b"old").unwrap();
    let refused = source.restore(&restore_options(dir.path(), false)).await;
    assert!(
        matches!(&refused, Err(SourceError::TargetExists { target }) if target.ends_with("dump.rdb")),
        "{:?}",
        refused.err()
    );

    // Not an RDB: an error, the old file stays, no partial file is left.
    let error = write_restore(
        source
            .restore(&restore_options(dir.path(), true))
            .await
            .unwrap(),
        b"SET a b\r\n",
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("not an RDB"), "{error}");
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
    assert_eq!(file_names(dir.path()), ["dump.rdb"]);

    // With overwrite, a real snapshot replaces the file.
    write_restore(
        source
            .restore(&restore_options(dir.path(), true))
            .await
            .unwrap(),
        &dump,
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), dump);

    // A snapshot that is cut short has the header but does not load: the scratch server's
    // failure is an error (a drill fails), not a count of zero keys.
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join("dump.rdb"), &dump[..dump.len() / 2]).unwrap();
    let error = count_keys_in_data_dir(&restore_options(broken.path(), false))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SourceError::Tool { tool, .. } if tool == "redis-server"),
        "{error}"
    );
}

#[tokio::test]
async fn an_acl_user_can_take_a_snapshot() {
    let original = server(Some(PASSWORD), None).await;
    seed_redis(&original, 0, 10, 100).await.unwrap();
    let user_password = "Backup-user-pw-4Rt";
    original
        .cli(&[
            "ACL",
            "SETUSER",
            "backup",
            "on",
            &format!(">{user_password}"),
            "~*",
            "&*",
            "+@all",
        ])
        .await
        .unwrap();
    let mut config = redis_config(&original);
    config.username = Some("backup".into());
    config.password = PasswordSource::Value(Secret::new(user_password));
    let started = RedisSource::new(config).dump().await.unwrap();
    let dump = read_dump(started.stream).await.unwrap();
    assert!(dump.starts_with(b"REDIS"));
    assert_eq!(
        started.counts.await.unwrap(),
        ObjectCounts::RedisKeys(redis_key_counts(&original).await.unwrap())
    );
}

#[tokio::test]
async fn a_wrong_password_or_a_server_that_is_down_is_a_clean_connect_error() {
    let mut original = server(Some(PASSWORD), None).await;
    let wrong = "Wr0ng-redis-pa55-Zq";
    let mut config = redis_config(&original);
    config.password = PasswordSource::Value(Secret::new(wrong));
    let error = RedisSource::new(config).dump().await.err().unwrap();
    assert!(
        matches!(
            error,
            SourceError::Connect {
                engine: Engine::Redis,
                ..
            }
        ),
        "{error}"
    );
    assert!(!error.to_string().contains(wrong), "{error}");

    let mut config = redis_config(&original);
    config.password = PasswordSource::None;
    let error = RedisSource::new(config).dump().await.err().unwrap();
    assert!(matches!(error, SourceError::Connect { .. }), "{error}");

    let source = RedisSource::new(redis_config(&original));
    original.kill();
    let error = source.dump().await.err().unwrap();
    assert!(matches!(error, SourceError::Connect { .. }), "{error}");
    assert!(!error.to_string().contains(PASSWORD), "{error}");
}
