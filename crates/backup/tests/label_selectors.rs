//! Listing and retention filtered by manifest labels: two policies that share one prefix on
//! the real S3 server never count or prune each other's backups — through the CLI
//! (`list --selector`, `prune --selector`) and through the engine API the operator calls
//! (`engine::prune` with `LabelSelector::equal_to` its policy UID).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/cli_process.rs"]
mod cli_process;

use std::collections::{BTreeMap, BTreeSet};

use cli_process::{command, finish};
use tokio_util::sync::CancellationToken;
use vertice_backup::engine::{self, LabelSelector, ListEntry, PruneOptions};
use vertice_backup::retention::RetentionPolicy;
use vertice_backup::store::{BackupStore, StoreConfig, StoreKind};
use vertice_testkit::services::S3Server;

const POLICY_UID: &str = "backup.vertice.dev/policy-uid";

struct Bucket {
    flags: Vec<String>,
    config: StoreConfig,
    dir: tempfile::TempDir,
}

fn bucket(s3: &S3Server) -> Bucket {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("s3");
    std::fs::write(
        &credentials,
        format!("{}\n{}\n", s3.access_key(), s3.secret_key()),
    )
    .unwrap();
    let flags = [
        "--store",
        "s3",
        "--bucket",
        "backups",
        "--endpoint",
        &s3.endpoint(),
        "--region",
        s3.region(),
        "--credentials-file",
        &credentials.display().to_string(),
        "--prefix",
        "shared/prefix",
    ]
    .map(String::from)
    .to_vec();
    let config = StoreConfig {
        store: StoreKind::S3,
        bucket: Some("backups".into()),
        endpoint: Some(s3.endpoint()),
        region: Some(s3.region().into()),
        credentials_file: Some(credentials),
        prefix: "shared/prefix".into(),
        ..StoreConfig::default()
    };
    Bucket { flags, config, dir }
}

/// Backs up a small file as `name` with `labels` through the CLI.
async fn backup(bucket: &Bucket, name: &str, labels: &[&str]) {
    let file = bucket.dir.path().join("dump");
    std::fs::write(&file, format!("dump of {name}\n").repeat(100)).unwrap();
    let mut args: Vec<String> = ["backup", "--no-encryption", "--name", name, "--from-file"]
        .map(String::from)
        .to_vec();
    args.push(file.display().to_string());
    args.extend(bucket.flags.iter().cloned());
    for label in labels {
        args.extend(["--label".to_string(), label.to_string()]);
    }
    finish(command(&args)).await.expect_code(0, name);
}

/// `vertice-backup <subcommand> … --output json` → its JSON.
async fn json(bucket: &Bucket, subcommand: &[&str]) -> serde_json::Value {
    let mut args: Vec<String> = subcommand.iter().map(|arg| arg.to_string()).collect();
    args.extend(bucket.flags.iter().cloned());
    args.extend(["--output".to_string(), "json".to_string()]);
    let outcome = finish(command(&args)).await;
    outcome.expect_code(0, &subcommand.join(" "));
    outcome.json()
}

fn names(listing: &serde_json::Value) -> BTreeSet<String> {
    cli_process::names(listing).into_iter().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| name.to_string()).collect()
}

#[tokio::test]
async fn two_policies_sharing_a_prefix_never_prune_each_other() {
    let s3 = S3Server::start().await.unwrap();
    s3.create_bucket("backups").unwrap();
    let bucket = bucket(&s3);
    for round in 1..=3 {
        backup(
            &bucket,
            &format!("a-{round}"),
            &[&format!("{POLICY_UID}=uid-a"), "tier=gold"],
        )
        .await;
        backup(
            &bucket,
            &format!("b-{round}"),
            &[&format!("{POLICY_UID}=uid-b")],
        )
        .await;
    }
    backup(&bucket, "manual", &[]).await;

    // Listing by label.
    let a = format!("{POLICY_UID}=uid-a");
    let b = format!("{POLICY_UID}=uid-b");
    assert_eq!(
        names(&json(&bucket, &["list", "--selector", &a]).await),
        set(&["a-1", "a-2", "a-3"])
    );
    assert_eq!(
        names(&json(&bucket, &["list", "--selector", &b]).await),
        set(&["b-1", "b-2", "b-3"])
    );
    assert_eq!(
        names(
            &json(
                &bucket,
                &["list", "--selector", "!tier", "--selector", POLICY_UID]
            )
            .await
        ),
        set(&["b-1", "b-2", "b-3"])
    );
    assert_eq!(
        names(
            &json(
                &bucket,
                &["list", "--selector", &format!("{POLICY_UID}!=uid-a,!tier")]
            )
            .await
        ),
        set(&["b-1", "b-2", "b-3", "manual"])
    );
    assert_eq!(names(&json(&bucket, &["list"]).await).len(), 7);

    // A dry run without a selector would count all seven backups as one policy's.
    let unfiltered = json(&bucket, &["prune", "--keep-last", "1", "--dry-run"]).await;
    assert_eq!(
        unfiltered["plan"]["delete"].as_array().unwrap().len(),
        6,
        "{unfiltered}"
    );

    // Policy A keeps its newest one; B's and the manual backup are not touched.
    let pruned = json(&bucket, &["prune", "--keep-last", "1", "--selector", &a]).await;
    assert_eq!(pruned["notSelected"], 4, "{pruned}");
    assert_eq!(
        names(&pruned["plan"]["delete"]),
        set(&["a-1", "a-2"]),
        "{pruned}"
    );
    assert_eq!(
        names(&json(&bucket, &["list"]).await),
        set(&["a-3", "b-1", "b-2", "b-3", "manual"])
    );

    // The engine API, as the operator calls it for policy B.
    let store = BackupStore::open(&bucket.config).unwrap();
    let selector = LabelSelector::equal_to(&BTreeMap::from([(
        POLICY_UID.to_string(),
        "uid-b".to_string(),
    )]));
    let options = PruneOptions {
        policy: RetentionPolicy {
            keep_last: Some(2),
            min_keep: 1,
            ..RetentionPolicy::default()
        },
        partial_grace: std::time::Duration::from_secs(3600),
        snapshots: None,
        dry_run: false,
    };
    let outcome = engine::prune(
        &store,
        &options,
        &selector,
        chrono::Utc::now(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let deleted: BTreeSet<String> = outcome
        .plan
        .delete
        .iter()
        .map(|verdict| verdict.name.clone())
        .collect();
    assert_eq!(deleted, set(&["b-1"]));
    assert_eq!(outcome.not_selected, 2);
    let listed: BTreeSet<String> = engine::list(&store, &LabelSelector::default())
        .await
        .unwrap()
        .into_iter()
        .map(|entry| match entry {
            ListEntry::Backup(listing) => listing.name,
            ListEntry::Unreadable { name, error } => panic!("{name}: {error}"),
        })
        .collect();
    assert_eq!(listed, set(&["a-3", "b-2", "b-3", "manual"]));
}

#[tokio::test]
async fn a_malformed_selector_is_a_config_error() {
    let s3 = S3Server::start().await.unwrap();
    s3.create_bucket("backups").unwrap();
    let bucket = bucket(&s3);
    for (subcommand, selector) in [
        ("list", "=x"),
        ("prune", "a=b=c"),
        ("list", "!"),
        ("prune", "k v=1"),
    ] {
        let mut args = vec![subcommand.to_string(), "--selector".into(), selector.into()];
        args.extend(bucket.flags.iter().cloned());
        let outcome = finish(command(&args)).await;
        outcome.expect_code(3, selector);
        assert!(
            outcome.stderr.contains("invalid label selector"),
            "{selector}: {}",
            outcome.stderr
        );
    }
}
