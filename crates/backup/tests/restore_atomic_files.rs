//! Items 1 and 2 of the engine-faults issue for file targets: a Redis `dump.rdb` and
//! `restore --to-file` (through the binary) are written beside the final name and moved into
//! place only after the whole dump was verified. A restore that fails for any reason — a
//! damaged or unreadable store (one and two passes), data that is not an RDB, a cancel —
//! leaves the previous file byte for byte and no partial file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/db_compare.rs"]
mod db_compare;
#[path = "common/pipeline.rs"]
mod pipeline;
#[path = "support/restore_faults.rs"]
mod restore_faults;

#[path = "support/cli_process.rs"]
mod cli_process;

use std::path::Path;

use db_compare::{read_dump, redis_config, seed_redis};
use pipeline::{backup_bytes, local_store};
use restore_faults::{DAMAGES, Damage, dir_listing, every_failure, restore, small_options};
use vertice_backup::source::redis::RedisRestoreOptions;
use vertice_backup::source::{DatabaseSource, RestoreTarget, SourceConfig};
use vertice_testkit::services::{Redis, RedisOptions};

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
