//! The `vertice-backup` binary against a real local store and a real S3 server (s3s-fs): two
//! runs with one name, a backup dated a year ahead, nested prefixes, a run killed with SIGKILL,
//! a folder written into the bucket name, and a damaged chunk named by its object.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/cli_places.rs"]
mod cli_places;
#[path = "support/cli_process.rs"]
mod cli_process;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use cli_places::{OpenBackup, Place, arg, args, backup_file, bytes, listed, restored};
use cli_process::{command, files_under, names, run};
use tokio::io::AsyncWriteExt;

/// Two `backup --name nightly` runs at once: both hold their input open, so neither can finish
/// before the other has started. Exactly one completes (exit 0); the other exits 8 saying the
/// name is taken, and the surviving backup restores to the winner's bytes.
async fn two_runs_with_one_name(place: &Place, dir: &Path) {
    let mut first = OpenBackup::start(place, "team", Some("nightly"), bytes(3_000_000, 1)).await;
    let mut second = OpenBackup::start(place, "team", Some("nightly"), bytes(3_000_001, 2)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !first.exited() && !second.exited() {
        assert!(std::time::Instant::now() < deadline, "neither run stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (loser, winner) = if first.exited() {
        (first, second)
    } else {
        (second, first)
    };
    let (_, lost) = loser.finish().await;
    lost.expect_code(8, "the second run of one name");
    assert!(
        lost.stderr.contains("backup name \"nightly\" is taken"),
        "{}",
        lost.stderr
    );
    let (data, won) = winner.finish().await;
    won.expect_code(0, "the first run of one name");
    assert_eq!(listed(place, "team").await, ["nightly"]);
    assert!(
        restored(place, "team", "nightly", dir).await == data,
        "the surviving backup does not hold the winner's bytes"
    );
    // A third run, after the winner finished, is refused the same way and changes nothing.
    let late = dir.join("late");
    std::fs::write(&late, b"late").unwrap();
    backup_file(place, "team", "nightly", &late)
        .await
        .expect_code(8, "a run after the winner finished");
    assert!(restored(place, "team", "nightly", dir).await == data);
}

#[tokio::test]
async fn two_backups_with_one_name_local() {
    let dir = tempfile::tempdir().unwrap();
    let place = Place::Local(dir.path().join("store"));
    two_runs_with_one_name(&place, dir.path()).await;
}

#[tokio::test]
async fn two_backups_with_one_name_s3() {
    let dir = tempfile::tempdir().unwrap();
    let place = Place::s3(dir.path()).await;
    two_runs_with_one_name(&place, dir.path()).await;
}

/// Four default-named runs started together (the same second, most likely the same
/// millisecond): four backups with four names, sorted by time, each restoring its own bytes.
#[tokio::test]
async fn default_named_backups_started_together_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let place = Place::Local(dir.path().join("store"));
    let mut runs = Vec::new();
    for seed in 0..4u8 {
        runs.push(OpenBackup::start(&place, "team", None, bytes(200_000, seed)).await);
    }
    let mut written = Vec::new();
    for run in runs {
        let (data, outcome) = run.finish().await;
        outcome.expect_code(0, "a default-named backup");
        written.push(data);
    }
    let listed = listed(&place, "team").await;
    assert_eq!(listed.len(), 4, "{listed:?}");
    for name in &listed {
        assert!(name.starts_with("file-"), "{name}");
        let data = restored(&place, "team", name, dir.path()).await;
        assert!(written.contains(&data), "{name} holds bytes no run wrote");
    }
}

/// A backup whose manifest says it ended 365 days from now (an unencrypted manifest, edited
/// as a host with its clock a year ahead would have written it) beside three real ones:
/// `prune --keep-last 1` keeps it, flagged, and also keeps today's newest real backup; a
/// max-age prune keeps it too.
#[tokio::test]
async fn a_backup_dated_a_year_ahead_pushes_no_real_backup_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let place = Place::Local(root.clone());
    let input = dir.path().join("input");
    std::fs::write(&input, bytes(10_000, 3)).unwrap();
    for name in ["real-1", "real-2", "real-3", "future"] {
        backup_file(&place, "team", name, &input)
            .await
            .expect_code(0, name);
    }
    let manifest_key = "team/future/manifest.json";
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&place.object(manifest_key).unwrap()).unwrap();
    let ahead = chrono::Utc::now() + chrono::Duration::days(365);
    manifest["finishedAt"] = serde_json::json!(ahead);
    manifest["startedAt"] = serde_json::json!(ahead);
    place.write_object(manifest_key, &serde_json::to_vec(&manifest).unwrap());

    let prune = |extra: &[&str]| {
        let mut list = vec!["prune", "--output", "json"];
        list.extend(extra);
        args(&list, &place.flags("team"))
    };
    let dry = run(prune(&["--keep-last", "1", "--dry-run"])).await;
    dry.expect_code(0, "prune --dry-run");
    let plan = &dry.json()["plan"];
    assert_eq!(names(&plan["keep"]), ["future", "real-3"], "{plan}");
    assert_eq!(names(&plan["delete"]), ["real-2", "real-1"], "{plan}");
    let flagged = &plan["keep"][0]["reasons"][0];
    assert_eq!(flagged["rule"], "futureDated", "{plan}");
    assert!(
        flagged["aheadSeconds"].as_u64().unwrap() > 364 * 86_400,
        "{plan}"
    );
    let text = run(args(
        &["prune", "--keep-last", "1", "--dry-run"],
        &place.flags("team"),
    ))
    .await;
    assert!(
        text.stdout.contains("keep future: FUTURE-DATED"),
        "{}",
        text.stdout
    );

    run(prune(&["--keep-last", "1"]))
        .await
        .expect_code(0, "prune");
    assert_eq!(listed(&place, "team").await, ["future", "real-3"]);
    // maxAge never expires it, and the real newest stays as the last good backup.
    run(prune(&["--max-age-seconds", "1", "--min-keep", "0"]))
        .await
        .expect_code(0, "prune --max-age-seconds");
    assert_eq!(listed(&place, "team").await, ["future", "real-3"]);
}

/// Prefix `team/app` holds `nightly-1` and `nightly-2`; prefix `team` holds `app` and `app2`.
/// `prune --prefix team --keep-last 1` deletes `app`'s own objects only: `team/app` still
/// lists both nightlies and they restore.
async fn nested_prefixes(place: &Place, dir: &Path) {
    let input = |name: &str, seed: u8| {
        let path = dir.join(name);
        std::fs::write(&path, bytes(150_000 + usize::from(seed), seed)).unwrap();
        path
    };
    for (prefix, name, seed) in [
        ("team/app", "nightly-1", 1),
        ("team/app", "nightly-2", 2),
        ("team", "app", 3),
        ("team", "app2", 4),
    ] {
        backup_file(place, prefix, name, &input(name, seed))
            .await
            .expect_code(0, name);
    }
    assert_eq!(listed(place, "team").await, ["app", "app2"]);
    let pruned = run(args(
        &["prune", "--keep-last", "1", "--output", "json"],
        &place.flags("team"),
    ))
    .await;
    pruned.expect_code(0, "prune --prefix team");
    let plan = pruned.json();
    assert_eq!(plan["plan"]["delete"][0]["name"], "app", "{plan}");
    assert_eq!(
        plan["plan"]["delete"].as_array().unwrap().len(),
        1,
        "{plan}"
    );
    assert_eq!(listed(place, "team").await, ["app2"]);
    assert!(place.object("team/app/manifest.json").is_none());
    assert!(place.object("team/app/data-000000.vbk").is_none());
    assert_eq!(listed(place, "team/app").await, ["nightly-1", "nightly-2"]);
    for (name, seed) in [("nightly-1", 1), ("nightly-2", 2)] {
        assert!(
            restored(place, "team/app", name, dir).await == bytes(150_000 + seed, seed as u8),
            "{name} was damaged by the prune of its parent prefix"
        );
    }
}

#[tokio::test]
async fn a_parent_prefix_prune_spares_nested_backups_local() {
    let dir = tempfile::tempdir().unwrap();
    let place = Place::Local(dir.path().join("store"));
    nested_prefixes(&place, dir.path()).await;
}

#[tokio::test]
async fn a_parent_prefix_prune_spares_nested_backups_s3() {
    let dir = tempfile::tempdir().unwrap();
    let place = Place::s3(dir.path()).await;
    nested_prefixes(&place, dir.path()).await;
}

/// A backup killed with SIGKILL mid-upload leaves its reservation and its staged upload (33 MB
/// here) in its folder. `list` shows no backup; `prune` keeps the folder while it is younger
/// than the grace (default 24 h), its dry run with grace 0 lists it, and `prune` with grace 0
/// reclaims every byte of it while a finished backup beside it stays.
#[tokio::test]
async fn a_backup_killed_mid_upload_is_reclaimed_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let place = Place::Local(root.clone());
    let input = dir.path().join("kept");
    std::fs::write(&input, bytes(50_000, 9)).unwrap();
    backup_file(&place, "team", "kept", &input)
        .await
        .expect_code(0, "kept");

    let mut backup = command(args(
        &[
            "backup",
            "--no-encryption",
            "--from-file",
            "-",
            "--name",
            "killed",
            "--compression",
            "none",
            "--chunk-size",
            "1048576",
        ],
        &place.flags("team"),
    ));
    backup.stdin(Stdio::piped());
    let mut child = backup.spawn().unwrap();
    let pid = child.id().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes(40 * 1024 * 1024, 7)).await.unwrap();
    stdin.flush().await.unwrap();
    let folder = root.join("team/killed");
    let staged_bytes = || -> u64 {
        files_under(&folder)
            .iter()
            .filter(|file| file.to_string_lossy().contains(".vbk#"))
            .map(|file| std::fs::metadata(file).map_or(0, |meta| meta.len()))
            .sum()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while staged_bytes() < 32 * 1024 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never staged 32 MiB: {:?}",
            files_under(&folder)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), None, "SIGKILL ends it without an exit code");
    drop(stdin);
    let left = files_under(&folder);
    assert!(
        left.iter().any(|file| file.ends_with("reservation.json")) && staged_bytes() > 0,
        "{left:?}"
    );
    assert_eq!(listed(&place, "team").await, ["kept"]);

    let prune = |extra: &[&str]| {
        let mut list = vec!["prune", "--output", "json"];
        list.extend(extra);
        args(&list, &place.flags("team"))
    };
    // Default grace: too young to touch.
    let young = run(prune(&[])).await;
    young.expect_code(0, "prune");
    let partial = &young.json()["partial"];
    assert_eq!(partial[0]["name"], "killed", "{partial}");
    assert_eq!(partial[0]["reclaim"], false, "{partial}");
    assert!(partial[0]["bytes"].as_u64().unwrap() >= 32 * 1024 * 1024);
    assert_eq!(files_under(&folder), left, "a young folder was touched");

    let dry = run(prune(&["--partial-grace-seconds", "0", "--dry-run"])).await;
    dry.expect_code(0, "prune --dry-run");
    assert_eq!(dry.json()["partial"][0]["reclaim"], true);
    let dry_text = run(args(
        &["prune", "--partial-grace-seconds", "0", "--dry-run"],
        &place.flags("team"),
    ))
    .await;
    assert!(
        dry_text.stdout.contains("would reclaim killed"),
        "{}",
        dry_text.stdout
    );
    assert_eq!(files_under(&folder), left, "a dry run deleted something");

    run(prune(&["--partial-grace-seconds", "0"]))
        .await
        .expect_code(0, "prune --partial-grace-seconds 0");
    assert!(
        files_under(&folder).is_empty(),
        "left after reclaim: {:?}",
        files_under(&folder)
    );
    assert_eq!(listed(&place, "team").await, ["kept"]);
    assert!(restored(&place, "team", "kept", dir.path()).await == bytes(50_000, 9));
}

/// `--bucket bkt/team` (and other names each cloud refuses) exit 3 before any request, and the
/// message says to use `--prefix`.
#[tokio::test]
async fn a_folder_in_the_bucket_name_exits_3_pointing_at_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::write(&input, b"x").unwrap();
    for store in ["s3", "gcs", "azure"] {
        for command in ["backup", "list", "prune", "verify"] {
            let mut list = vec![command, "--store", store, "--bucket", "bkt/team"];
            // Nothing listens here: a request would fail with exit 5, not 3.
            list.extend(["--endpoint", "http://127.0.0.1:9", "--output", "json"]);
            match command {
                "backup" => list.extend([
                    "--no-encryption",
                    "--from-file",
                    input.to_str().unwrap(),
                    "--name",
                    "x",
                ]),
                "verify" => list.extend(["--no-encryption", "--name", "x"]),
                _ => {}
            }
            let outcome = run(&list).await;
            outcome.expect_code(3, &format!("{store} {command}"));
            let message = outcome.json()["error"]["message"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                message.contains("--bucket bkt --prefix team"),
                "{store} {command}: {message}"
            );
        }
        for bad in [
            "Bkt",
            "b",
            "bkt..x",
            "bkt name",
            "-bkt",
            "bkt/",
            "bkt\\team",
        ] {
            let outcome = run([
                "list",
                "--store",
                store,
                &format!("--bucket={bad}"),
                "--endpoint",
                "http://127.0.0.1:9",
            ])
            .await;
            outcome.expect_code(3, &format!("{store} --bucket {bad:?}"));
            assert!(
                outcome.stderr.contains("bucket name") || outcome.stderr.contains("container name")
            );
        }
    }
}

/// One flipped byte: verify names the chunk, the data object's path in the store and the byte
/// range, on the local store and on S3.
async fn damaged_chunk_named_by_its_object(place: &Place, dir: &Path) {
    let input = dir.join("input");
    std::fs::write(&input, bytes(600_000, 5)).unwrap();
    run(args(
        &[
            "backup",
            "--no-encryption",
            "--from-file",
            &arg(&input),
            "--name",
            "nightly",
            "--chunk-size",
            "65536",
            "--compression",
            "none",
        ],
        &place.flags("team/db"),
    ))
    .await
    .expect_code(0, "backup");
    let key = "team/db/nightly/data-000000.vbk";
    let mut object = place.object(key).unwrap();
    // Past the 32-byte header and the first chunks: chunk 3 (each stores 65536 bytes).
    object[32 + 3 * 65536 + 10] ^= 0x40;
    place.write_object(key, &object);
    let verify = run(args(
        &["verify", "--no-encryption", "--name", "nightly"],
        &place.flags("team/db"),
    ))
    .await;
    verify.expect_code(6, "verify of a damaged chunk");
    assert!(verify.stderr.contains("chunk 3"), "{}", verify.stderr);
    assert!(
        verify
            .stderr
            .contains("of data object team/db/nightly/data-000000.vbk"),
        "the message should name the object file: {}",
        verify.stderr
    );
    assert!(
        verify
            .stderr
            .contains(&format!("bytes {}..{}", 32 + 3 * 65536, 32 + 4 * 65536)),
        "{}",
        verify.stderr
    );
}

#[tokio::test]
async fn verify_names_the_object_of_a_damaged_chunk_local() {
    let dir = tempfile::tempdir().unwrap();
    let place = Place::Local(dir.path().join("store"));
    damaged_chunk_named_by_its_object(&place, dir.path()).await;
}

#[tokio::test]
async fn verify_names_the_object_of_a_damaged_chunk_s3() {
    let dir = tempfile::tempdir().unwrap();
    let place = Place::s3(dir.path()).await;
    damaged_chunk_named_by_its_object(&place, dir.path()).await;
}

/// `--help` states the name and prefix rules.
#[tokio::test]
async fn help_states_the_name_and_prefix_rules() {
    let help = run(["backup", "--help"]).await;
    help.expect_code(0, "backup --help");
    let text: String = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    let rule = "1–200 characters of A–Z a–z 0–9 . _ -";
    assert_eq!(
        text.matches(rule).count(),
        2,
        "the rule for --name and for each --prefix segment:\n{}",
        help.stdout
    );
    for words in [
        "not starting with . or -",
        "segments",
        "A folder inside it is --prefix",
    ] {
        assert!(text.contains(words), "{words:?} missing:\n{}", help.stdout);
    }
}
