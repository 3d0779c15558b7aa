//! The CLI's bucket copy: `backup --objects-spec` (flags overriding the file) and
//! `restore --objects-to-spec`, through the real binary against the real S3 server, with the
//! documented exit codes (8 when a restore would overwrite objects).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/buckets.rs"]
mod buckets;
#[path = "support/cli_process.rs"]
mod cli_process;

use std::collections::BTreeMap;

use buckets::*;
use cli_process::{command, finish};

#[tokio::test]
async fn backup_and_restore_objects_from_the_command_line() {
    let cloud = Cloud::start(Kind::S3).await;
    cloud.create_bucket("uploads").await;
    cloud.create_bucket("backups").await;
    let dir = tempfile::tempdir().unwrap();
    let source = cloud.config("uploads", "", dir.path());
    let store = cloud.config("backups", "team", dir.path());
    let objects: BTreeMap<String, Vec<u8>> = (0..6u64)
        .map(|i| (format!("media/a b+{i}.jpg"), bytes_for(i, 200)))
        .chain([("media/x.tmp".to_string(), b"skip".to_vec())])
        .collect();
    put_all(&bucket(&source), &objects).await;
    let spec = dir.path().join("objects.yaml");
    std::fs::write(
        &spec,
        serde_json::to_string(&serde_json::json!({ "source": source, "prefix": "wrong/" }))
            .unwrap(),
    )
    .unwrap();
    let target = dir.path().join("target.yaml");
    std::fs::write(&target, serde_json::to_string(&source).unwrap()).unwrap();
    let store_flags: Vec<String> = [
        "--store",
        "s3",
        "--bucket",
        "backups",
        "--endpoint",
        store.endpoint.as_deref().unwrap(),
        "--region",
        store.region.as_deref().unwrap(),
        "--credentials-file",
        store.credentials_file.as_ref().unwrap().to_str().unwrap(),
        "--prefix",
        "team",
        "--output",
        "json",
    ]
    .map(String::from)
    .to_vec();

    let mut backup = vec![
        "backup",
        "--name",
        "docs",
        "--no-encryption",
        "--objects-spec",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    backup.push(spec.display().to_string());
    backup.extend(["--objects-prefix", "media", "--objects-exclude", "*.tmp"].map(String::from));
    backup.extend(store_flags.clone());
    let outcome = finish(command(&backup)).await;
    outcome.expect_code(0, "backup --objects-spec");
    let json = outcome.json();
    assert_eq!(json["bucketCopy"]["objectCount"], 6, "{json}");
    assert_eq!(json["bucketCopy"]["copied"], 6, "{json}");

    let mut restore = vec!["restore", "--name", "docs", "--objects-to-spec"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    restore.push(target.display().to_string());
    restore.extend(store_flags.clone());
    let outcome = finish(command(&restore)).await;
    outcome.expect_code(0, "restore --objects-to-spec");
    assert_eq!(outcome.json()["prefix"], "restored/docs");
    let restored = read_all(&bucket(&source), "restored/docs").await;
    assert_eq!(restored.len(), 6);
    for (key, bytes) in &objects {
        if let Some(name) = key
            .strip_prefix("media/")
            .filter(|name| !name.ends_with(".tmp"))
        {
            assert!(restored.get(name) == Some(bytes), "{key}");
        }
    }
    // Again: the objects exist, so it refuses with exit 8; --overwrite replaces them.
    finish(command(&restore))
        .await
        .expect_code(8, "restore onto existing objects");
    restore.push("--overwrite".into());
    finish(command(&restore))
        .await
        .expect_code(0, "restore --overwrite");
}
