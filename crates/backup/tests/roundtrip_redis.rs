//! A real Redis with a password and keys of every type in several logical databases, backed
//! up through the whole pipeline (RDB snapshot → chunks → zstd → AES-256-GCM → object store →
//! manifest) into the real S3 server and the local store, restored into a data directory that
//! a fresh server loads (same `DEBUG DIGEST`, same key count), verified and drilled (the key
//! count matches the manifest; a manifest whose count differs makes the drill say so), and a
//! backup of a server that is down that fails cleanly. The password is in no manifest and no
//! error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/db_compare.rs"]
mod db_compare;
#[path = "common/pipeline.rs"]
mod pipeline;

use std::path::Path;
use std::sync::Arc;

use db_compare::{redis_config, redis_digest, redis_key_count, redis_key_counts, seed_redis};
use pipeline::*;
use tokio_util::sync::CancellationToken;
use vertice_backup::backup::{BackupOptions, DumpInput, run_backup};
use vertice_backup::drill::run_drill;
use vertice_backup::error::BackupError;
use vertice_backup::keys::KeyRing;
use vertice_backup::manifest::Manifest;
use vertice_backup::progress::Progress;
use vertice_backup::restore::VerifiedBackup;
use vertice_backup::source::redis::RedisRestoreOptions;
use vertice_backup::source::{DatabaseSource, Engine, ObjectCounts, RestoreTarget, SourceConfig};
use vertice_backup::store::BackupStore;
use vertice_backup::verify::OpenedBackup;
use vertice_testkit::services::{Redis, RedisOptions, S3Server};

const PASSWORD: &str = "Redis-r0undtrip-pw-K9v";

/// A server with the password and `DEBUG` allowed (for `DEBUG DIGEST`), optionally loading an
/// RDB at start.
async fn server(load_rdb: Option<&Path>) -> Redis {
    Redis::start_with(RedisOptions {
        password: Some(PASSWORD.to_owned()),
        load_rdb: load_rdb.map(Path::to_path_buf),
        extra_args: vec!["--enable-debug-command".into(), "yes".into()],
        ..RedisOptions::default()
    })
    .await
    .unwrap_or_else(|error| {
        panic!("Redis is needed for these tests (Debian: apt-get install redis-server): {error:#}")
    })
}

/// Three logical databases; db 0 holds an incompressible 3 MB string so the snapshot spans
/// many chunks.
async fn seed(server: &Redis) {
    seed_redis(server, 0, 2_000, 3_000_000).await.unwrap();
    seed_redis(server, 3, 200, 10_000).await.unwrap();
    seed_redis(server, 15, 1, 10).await.unwrap();
}

async fn back_up(server: &Redis, store: &BackupStore, name: &str) -> Manifest {
    let source = DatabaseSource::new(SourceConfig::Redis(redis_config(server)));
    let started = source.dump().await.unwrap();
    let mut options = BackupOptions::new(name, Some(key(5)));
    options.chunk_size = 256 * 1024;
    run_backup(
        store,
        &options,
        DumpInput::from_started(started),
        Progress::new(),
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

async fn verified(store: &BackupStore, name: &str) -> VerifiedBackup {
    let progress = Progress::default();
    let opened = OpenedBackup::open(store, name, &KeyRing::new(vec![key(5)]), 2)
        .await
        .unwrap();
    VerifiedBackup::verify(opened, &progress).await.unwrap()
}

async fn round_trip(original: &Redis, store: &BackupStore, name: &str) {
    let digest = redis_digest(original).await.unwrap();
    let keys = redis_key_count(original).await.unwrap();
    let counts = redis_key_counts(original).await.unwrap();
    let manifest = back_up(original, store, name).await;

    // The manifest: the whole server (no database list), the dump-time key count, the tools,
    // and never the password.
    assert!(manifest.databases.is_empty());
    assert_eq!(manifest.counts, Some(ObjectCounts::RedisKeys(counts)));
    let info = manifest.source.as_ref().unwrap();
    assert_eq!(info.engine, Engine::Redis);
    assert!(info.tool_versions.contains_key("redis-cli"), "{info:?}");
    assert!(manifest.raw_size > 3_000_000, "{}", manifest.raw_size);
    assert!(
        manifest.chunks.len() > 10,
        "{} chunks",
        manifest.chunks.len()
    );
    let stored_manifest = store.read_manifest(name).await.unwrap();
    assert_eq!(stored_manifest, manifest);
    let manifest_text = String::from_utf8(manifest.to_json().unwrap()).unwrap();
    assert!(!manifest_text.contains(PASSWORD));

    let progress = Arc::new(Progress::default());
    let opened = OpenedBackup::open(store, name, &KeyRing::new(vec![key(5)]), 2)
        .await
        .unwrap();
    let report = opened.verify(&progress).await.unwrap();
    assert_eq!(report.raw_size, manifest.raw_size);
    assert_eq!(report.chunks, manifest.chunks.len() as u64);

    // Restore into a data directory, then start a fresh server on it.
    let verified = verified(store, name).await;
    let source = DatabaseSource::new(SourceConfig::Redis(redis_config(original)));
    let dir = tempfile::tempdir().unwrap();
    let target = RestoreTarget::Redis(RedisRestoreOptions {
        data_dir: dir.path().to_path_buf(),
        dbfilename: "dump.rdb".into(),
        overwrite: false,
        bin_dir: None,
        databases: None,
    });
    let stream = source.restore(&target).await.unwrap();
    let restore = verified.restore_into(stream, &progress).await.unwrap();
    assert_eq!(restore.raw_size, manifest.raw_size);
    let restored = server(Some(&dir.path().join("dump.rdb"))).await;
    assert_eq!(redis_key_count(&restored).await.unwrap(), keys);
    assert_eq!(redis_digest(&restored).await.unwrap(), digest);
    // The digest comparison can fail: one deleted key in db 3 changes it.
    restored
        .cli(&["-n", "3", "DEL", "set:db3:7"])
        .await
        .unwrap();
    assert_ne!(redis_digest(&restored).await.unwrap(), digest);

    // A second restore into the same directory is refused.
    let error = source.restore(&target).await.map(|_| ()).unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");

    // The drill loads the snapshot into a scratch server, finds the manifest's count and
    // removes its directory.
    let drill = run_drill(&verified, &source, &progress).await.unwrap();
    assert!(drill.differences.is_empty(), "{:?}", drill.differences);
    assert_eq!(drill.restored, ObjectCounts::RedisKeys(counts));
    assert!(drill.restore.restore_seconds > 0.0);
    assert!(!Path::new(&drill.scratch_target).exists());
}

#[tokio::test]
async fn redis_through_s3_and_local_store() {
    let original = server(None).await;
    seed(&original).await;

    let s3 = S3Server::start().await.unwrap();
    s3.create_bucket("redis-backups").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let in_s3 = s3_store(&s3, "redis-backups", dir.path());
    round_trip(&original, &in_s3, "redis-s3").await;
    round_trip(&original, &local_store(dir.path()), "redis-local").await;
}

/// Polls `condition` until it holds, failing after `seconds`.
async fn wait_for(what: &str, seconds: u64, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !condition().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Item 9: keys with a TTL that expire between the dump and the drill are what a healthy
/// backup holds, not a loss. 100 keys with a TTL (50 with `EX 3`, which expire before the
/// server even takes the snapshot — it waits `repl-diskless-sync-delay`, 5 s — and 50 with
/// `EX 10`, which are in the snapshot and expire before the drill) and 10 without, in two
/// databases, drilled only after the source itself has dropped every expiring key: the drill
/// passes and counts the snapshot's expiring keys too. The same backup with a manifest
/// claiming a key without expiry more — or fewer expiring keys than the snapshot holds —
/// fails.
#[tokio::test]
async fn a_drill_after_keys_expired_passes_and_still_catches_missing_keys() {
    let mut original = server(None).await;
    // One script per database, so all keys are set well within their seconds.
    for db in ["0", "7"] {
        original
            .cli(&[
                "-n",
                db,
                "EVAL",
                "for i = 1, 25 do redis.call('SET', 'short:' .. i, 'v', 'EX', 3); \
                 redis.call('SET', 'long:' .. i, 'v', 'EX', 10) end",
                "0",
            ])
            .await
            .unwrap();
    }
    original
        .cli(&[
            "EVAL",
            "for i = 1, 10 do redis.call('SET', 'kept:' .. i, 'v') end",
            "0",
        ])
        .await
        .unwrap();
    let counts = redis_key_counts(&original).await.unwrap();
    assert_eq!((counts.keys, counts.expiring), (110, 100));
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let mut manifest = back_up(&original, &store, "expiring").await;
    assert_eq!(manifest.counts, Some(ObjectCounts::RedisKeys(counts)));
    wait_for("the source's keys with a TTL to expire", 60, async || {
        redis_key_count(&original).await.unwrap() == 10
    })
    .await;
    let source = DatabaseSource::new(SourceConfig::Redis(redis_config(&original)));
    original.kill();

    let drill = run_drill(
        &verified(&store, "expiring").await,
        &source,
        &Progress::default(),
    )
    .await
    .unwrap();
    assert!(drill.differences.is_empty(), "{:?}", drill.differences);
    let ObjectCounts::RedisKeys(restored) = drill.restored else {
        panic!("{:?}", drill.restored)
    };
    // All 10 without expiry; the 50 `EX 10` keys although they have expired by now (a
    // primary would drop them while loading); of the `EX 3` ones, those the source had not
    // removed yet when it took the snapshot.
    assert_eq!(restored.keys - restored.expiring, 10, "{restored:?}");
    assert!((50..=100).contains(&restored.expiring), "{restored:?}");
    let in_snapshot = restored.expiring;

    // Keys really missing: the manifest says one more key without expiry than the snapshot
    // holds (as if one was lost), or fewer expiring keys than it holds (as if keys appeared).
    for (claimed, expected) in [
        (
            vertice_backup::source::RedisKeyCounts {
                keys: 111,
                expiring: 100,
            },
            "keys without an expiry: 11 at dump time, 10 restored".to_owned(),
        ),
        (
            vertice_backup::source::RedisKeyCounts {
                keys: 110,
                expiring: 101,
            },
            "keys without an expiry: 9 at dump time, 10 restored".to_owned(),
        ),
        (
            vertice_backup::source::RedisKeyCounts {
                keys: 10 + in_snapshot - 1,
                expiring: in_snapshot - 1,
            },
            format!(
                "keys with an expiry: {} at dump time, {in_snapshot} restored",
                in_snapshot - 1
            ),
        ),
    ] {
        manifest.counts = Some(ObjectCounts::RedisKeys(claimed));
        reseal(&mut manifest, &key(5));
        store.write_manifest(&manifest).await.unwrap();
        let drill = run_drill(
            &verified(&store, "expiring").await,
            &source,
            &Progress::default(),
        )
        .await
        .unwrap();
        assert_eq!(drill.differences, [expected], "{claimed:?}");
    }
}

/// The scratch server a drill loads the snapshot into is set up like the source where the
/// source's settings decide what loads: a server with `databases 64` and keys in db 40 and
/// 63 is recorded as such, and its snapshot loads in the drill (a default server refuses a
/// snapshot with more databases than its 16).
#[tokio::test]
async fn a_drill_loads_a_snapshot_of_a_server_with_more_databases() {
    let mut original = Redis::start_with(RedisOptions {
        password: Some(PASSWORD.to_owned()),
        extra_args: vec!["--databases".into(), "64".into()],
        ..RedisOptions::default()
    })
    .await
    .unwrap();
    for db in ["0", "40", "63"] {
        original.cli(&["-n", db, "SET", "k", db]).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let manifest = back_up(&original, &store, "wide").await;
    let info = manifest.source.as_ref().unwrap();
    assert_eq!(
        info.settings.get("databases").map(String::as_str),
        Some("64")
    );
    let source = DatabaseSource::new(SourceConfig::Redis(redis_config(&original)));
    original.kill();
    let drill = run_drill(
        &verified(&store, "wide").await,
        &source,
        &Progress::default(),
    )
    .await
    .unwrap();
    assert!(drill.differences.is_empty(), "{:?}", drill.differences);
    assert_eq!(
        drill.restored,
        ObjectCounts::RedisKeys(vertice_backup::source::RedisKeyCounts {
            keys: 3,
            expiring: 0
        })
    );
}

/// A drill compares with the manifest's count: a manifest that records one key more (sealed
/// again with the key, as only its holder could) makes the drill report it. The drill
/// needs no source server — it loads the snapshot into a scratch server of its own — so it
/// runs here after the original server is gone.
#[tokio::test]
async fn a_drill_reports_a_key_count_that_differs_without_the_source_server() {
    let mut original = server(None).await;
    seed_redis(&original, 0, 50, 1_000).await.unwrap();
    let keys = redis_key_count(&original).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let mut manifest = back_up(&original, &store, "counted").await;
    assert_eq!(
        manifest.counts,
        Some(ObjectCounts::RedisKeys(
            redis_key_counts(&original).await.unwrap()
        ))
    );
    // A plain key count, as older manifests hold, is compared exactly.
    manifest.counts = Some(ObjectCounts::Keys(keys + 1));
    reseal(&mut manifest, &key(5));
    store.write_manifest(&manifest).await.unwrap();
    let source = DatabaseSource::new(SourceConfig::Redis(redis_config(&original)));
    original.kill();

    let verified = verified(&store, "counted").await;
    let drill = run_drill(&verified, &source, &Progress::default())
        .await
        .unwrap();
    assert_eq!(
        drill.differences,
        [format!("keys: {} at dump time, {keys} restored", keys + 1)]
    );
    assert!(!Path::new(&drill.scratch_target).exists());
}

#[tokio::test]
async fn a_server_that_is_down_fails_the_backup_cleanly() {
    let mut original = server(None).await;
    let config = redis_config(&original);
    original.kill();
    let dir = tempfile::tempdir().unwrap();
    let store = local_store(dir.path());
    let source = DatabaseSource::new(SourceConfig::Redis(config));
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
    assert!(!error.to_string().contains(PASSWORD), "{error}");
    assert!(!format!("{error:?}").contains(PASSWORD), "{error:?}");
    assert!(!store.exists("down").await.unwrap());
    assert!(store.list_backup_names().await.unwrap().is_empty());
}
