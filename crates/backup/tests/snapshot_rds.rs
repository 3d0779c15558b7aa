//! RDS snapshots as a backup's database part (issue 8 §2), against moto's real server: a run
//! records an `available` snapshot that moto has; a snapshot that fails or never becomes
//! available fails the run with its kind and leaves no manifest (moto makes every snapshot
//! `available` at once, so those states come from testkit's fault proxy rewriting moto's
//! answers); refused credentials are `Forbidden`; prune deletes the snapshots of the backups it
//! deletes, and only those we made.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/cli_process.rs"]
mod cli_process;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_rds::Client;
use aws_sdk_rds::config::{BehaviorVersion, Credentials, Region};
use chrono::Utc;
use tokio_util::sync::CancellationToken;
use vertice_backup::engine::{
    self, EncryptionSpec, LabelSelector, Progress, PruneOptions, RunOutcome, RunSpec, VerifyRun,
};
use vertice_backup::error::{BackupError, exit_code};
use vertice_backup::retention::RetentionPolicy;
use vertice_backup::snapshot::{
    SnapshotAccess, SnapshotConfig, SnapshotErrorKind, SnapshotProvider,
};
use vertice_backup::store::{BackupStore, StoreConfig, StoreKind};
use vertice_testkit::services::{FaultProxy, HostHeader, Moto, Rewrite};

const REGION: &str = "eu-west-1";

/// What one test works with: moto, a credentials file for it, a local store, a key.
struct Fixture {
    moto: &'static Moto,
    dir: tempfile::TempDir,
    credentials: PathBuf,
    store: BackupStore,
    rds: Client,
}

impl Fixture {
    async fn new() -> Self {
        let moto = Moto::shared().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("aws");
        write_credentials(&credentials, moto.access_key_id(), moto.secret_access_key());
        std::fs::write(dir.path().join("key"), [7u8; 32]).unwrap();
        let store = BackupStore::open(&StoreConfig {
            store: StoreKind::Local,
            path: Some(dir.path().join("store")),
            prefix: "team/app".into(),
            ..StoreConfig::default()
        })
        .unwrap();
        let rds = rds_client(
            &moto.endpoint(),
            moto.access_key_id(),
            moto.secret_access_key(),
        );
        Fixture {
            moto,
            dir,
            credentials,
            store,
            rds,
        }
    }

    /// A new PostgreSQL instance in moto; returns its identifier.
    async fn instance(&self, engine_version: &str) -> String {
        let id = format!("db-{:08x}", rand::random::<u32>());
        self.rds
            .create_db_instance()
            .db_instance_identifier(&id)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .engine_version(engine_version)
            .allocated_storage(20)
            .master_username("app")
            .master_user_password("not-a-real-password")
            .send()
            .await
            .unwrap();
        id
    }

    fn config(&self, instance_id: &str, endpoint: &str) -> SnapshotConfig {
        SnapshotConfig {
            provider: SnapshotProvider::Aws,
            instance_id: instance_id.to_owned(),
            region: REGION.to_owned(),
            credentials_file: self.credentials.clone(),
            endpoint: Some(endpoint.to_owned()),
            tags: BTreeMap::from([("team".to_owned(), "billing".to_owned())]),
            timeout_seconds: Some(60),
        }
    }

    fn spec(&self, name: &str, snapshot: SnapshotConfig) -> RunSpec {
        RunSpec {
            name: Some(name.to_owned()),
            snapshot: Some(snapshot),
            storage: StoreConfig {
                store: StoreKind::Local,
                path: Some(self.dir.path().join("store")),
                prefix: "team/app".into(),
                ..StoreConfig::default()
            },
            encryption: EncryptionSpec {
                key_file: Some(self.dir.path().join("key")),
                ..EncryptionSpec::default()
            },
            labels: BTreeMap::from([("backup.vertice.dev/policy-uid".into(), "uid-1".into())]),
            ..RunSpec::default()
        }
    }

    async fn run(&self, spec: &RunSpec) -> Result<RunOutcome, BackupError> {
        engine::run(spec, &Progress::new(), &CancellationToken::new()).await
    }

    /// The identifiers of the instance's manual snapshots, straight from moto (moto, like
    /// RDS, also keeps an automated `rds:…` one per instance, which is nobody's business here).
    async fn snapshots_of(&self, instance_id: &str) -> Vec<String> {
        self.rds
            .describe_db_snapshots()
            .db_instance_identifier(instance_id)
            .snapshot_type("manual")
            .send()
            .await
            .unwrap()
            .db_snapshots()
            .iter()
            .filter_map(|snapshot| snapshot.db_snapshot_identifier().map(str::to_owned))
            .collect()
    }
}

fn rds_client(endpoint: &str, access: &str, secret: &str) -> Client {
    let config = aws_sdk_rds::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(access, secret, None, None, "test"))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

fn write_credentials(path: &Path, access: &str, secret: &str) {
    std::fs::write(
        path,
        format!("AWS_ACCESS_KEY_ID={access}\nAWS_SECRET_ACCESS_KEY={secret}\n"),
    )
    .unwrap();
}

fn backup_manifest(outcome: RunOutcome) -> vertice_backup::manifest::Manifest {
    match outcome {
        RunOutcome::Backup(report) => report.manifest,
        other => panic!("not a backup outcome: {other:?}"),
    }
}

fn snapshot_kind(error: &BackupError) -> Option<SnapshotErrorKind> {
    error.snapshot_kind()
}

#[tokio::test]
async fn a_snapshot_run_records_an_available_snapshot_that_moto_has() {
    let fixture = Fixture::new().await;
    let instance = fixture.instance("15.4").await;
    let spec = fixture.spec(
        "nightly-1",
        fixture.config(&instance, &fixture.moto.endpoint()),
    );
    let manifest = backup_manifest(fixture.run(&spec).await.unwrap());

    let record = manifest
        .snapshot
        .clone()
        .expect("the manifest records the snapshot");
    let described = fixture
        .rds
        .describe_db_snapshots()
        .db_snapshot_identifier(&record.snapshot_id)
        .send()
        .await
        .unwrap();
    let snapshot = &described.db_snapshots()[0];
    assert_eq!(snapshot.db_snapshot_arn(), Some(record.arn.as_str()));
    assert!(record.arn.starts_with("arn:aws:rds:"), "{}", record.arn);
    assert_eq!(snapshot.status(), Some("available"));
    assert_eq!(snapshot.db_instance_identifier(), Some(instance.as_str()));
    assert_eq!(record.instance_id, instance);
    assert_eq!(record.engine, "postgres");
    assert_eq!(record.engine_version, "15.4");
    assert_eq!(record.region, REGION);
    assert!(
        record.snapshot_id.starts_with("vertice-nightly-1-"),
        "{}",
        record.snapshot_id
    );

    // Tagged with the user's tags, the run's labels and the owner tags.
    let tags: BTreeMap<String, String> = fixture
        .rds
        .list_tags_for_resource()
        .resource_name(&record.arn)
        .send()
        .await
        .unwrap()
        .tag_list()
        .iter()
        .map(|tag| {
            (
                tag.key().unwrap().to_owned(),
                tag.value().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(tags["team"], "billing");
    assert_eq!(tags["backup.vertice.dev/policy-uid"], "uid-1");
    assert_eq!(tags["vertice.dev/backup"], "nightly-1");
    assert_eq!(tags["app.kubernetes.io/managed-by"], "vertice-backup");

    // The stored manifest says the same (and is sealed with it), and the backup verifies.
    let stored = fixture.store.read_manifest("nightly-1").await.unwrap();
    assert_eq!(stored.snapshot, Some(record));
    assert!(stored.seal.is_some());
    engine::verify(
        &fixture.store,
        &VerifyRun {
            name: "nightly-1".into(),
            encryption: spec.encryption.clone(),
            parallelism: None,
            record: false,
        },
        &Progress::new(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
}

/// A fault proxy in front of moto that rewrites the snapshot status of the answers to
/// `CreateDBSnapshot` and `DescribeDBSnapshots` to `created` and `described`.
async fn status_proxy(moto: &Moto, created: &str, described: &str) -> FaultProxy {
    let proxy = FaultProxy::start(&moto.endpoint(), HostHeader::AsSent)
        .await
        .unwrap();
    for (action, status) in [
        ("CreateDBSnapshot", created),
        ("DescribeDBSnapshots", described),
    ] {
        proxy.rewrite(Rewrite {
            body_contains: format!("Action={action}&"),
            from: "<Status>available</Status>".into(),
            to: format!("<Status>{status}</Status>"),
        });
    }
    proxy
}

#[tokio::test]
async fn a_snapshot_that_fails_fails_the_run_and_leaves_no_manifest_and_no_snapshot() {
    let fixture = Fixture::new().await;
    // Failed at once, and failed after a while of `creating`.
    for (created, described) in [("failed", "failed"), ("creating", "failed")] {
        let instance = fixture.instance("16.2").await;
        let proxy = status_proxy(fixture.moto, created, described).await;
        let name = format!("failing-{created}");
        let spec = fixture.spec(&name, fixture.config(&instance, &proxy.endpoint()));
        let error = fixture.run(&spec).await.unwrap_err();
        assert_eq!(
            snapshot_kind(&error),
            Some(SnapshotErrorKind::Failed),
            "{error}"
        );
        assert_eq!(error.exit_code(), exit_code::DATABASE);
        assert!(!error.is_transient());
        assert!(
            !fixture.store.exists(&name).await.unwrap(),
            "{name}: no manifest"
        );
        assert!(
            fixture.snapshots_of(&instance).await.is_empty(),
            "{name}: the failed snapshot is deleted"
        );
    }
}

#[tokio::test]
async fn a_snapshot_that_never_becomes_available_times_out_within_the_bound() {
    let fixture = Fixture::new().await;
    let instance = fixture.instance("15.4").await;
    let proxy = status_proxy(fixture.moto, "creating", "creating").await;
    for timeout in [1, 3] {
        let mut config = fixture.config(&instance, &proxy.endpoint());
        config.timeout_seconds = Some(timeout);
        let name = format!("slow-{timeout}");
        let spec = fixture.spec(&name, config);
        let started = Instant::now();
        let error = fixture.run(&spec).await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(
            snapshot_kind(&error),
            Some(SnapshotErrorKind::TimedOut),
            "{error}"
        );
        assert!(
            took >= Duration::from_secs(timeout) && took < Duration::from_secs(timeout + 10),
            "timeout {timeout} s, took {took:?}"
        );
        assert!(!fixture.store.exists(&name).await.unwrap());
    }
    // moto really has them `available`, so the runs could delete what they left.
    assert!(fixture.snapshots_of(&instance).await.is_empty());
}

#[tokio::test]
async fn refused_credentials_are_forbidden_and_never_quoted() {
    let fixture = Fixture::new().await;
    let instance = fixture.instance("15.4").await;
    let wrong = fixture.dir.path().join("wrong");
    // An unknown key, and the right key with a wrong secret.
    for (access, secret) in [
        (
            "AKIAUNKNOWNKEY000000",
            "an-unknown-secret-value-0000000000000000",
        ),
        (
            fixture.moto.access_key_id(),
            "a-wrong-secret-value-000000000000000000000",
        ),
    ] {
        write_credentials(&wrong, access, secret);
        let mut config = fixture.config(&instance, &fixture.moto.endpoint());
        config.credentials_file = wrong.clone();
        let error = fixture
            .run(&fixture.spec("refused", config))
            .await
            .unwrap_err();
        assert_eq!(
            snapshot_kind(&error),
            Some(SnapshotErrorKind::Forbidden),
            "{error}"
        );
        assert_eq!(error.exit_code(), exit_code::DATABASE);
        assert!(!error.to_string().contains(secret), "{error}");
        assert!(!fixture.store.exists("refused").await.unwrap());
    }
    assert!(fixture.snapshots_of(&instance).await.is_empty());

    // A missing instance is NotFound; a missing credentials file is the user's config.
    let error = fixture
        .run(&fixture.spec(
            "missing",
            fixture.config("no-such-db", &fixture.moto.endpoint()),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        snapshot_kind(&error),
        Some(SnapshotErrorKind::NotFound),
        "{error}"
    );
    let mut config = fixture.config(&instance, &fixture.moto.endpoint());
    config.credentials_file = fixture.dir.path().join("absent");
    let error = fixture
        .run(&fixture.spec("nokeys", config))
        .await
        .unwrap_err();
    assert_eq!(error.exit_code(), exit_code::CONFIG, "{error}");
}

#[tokio::test]
async fn prune_deletes_the_snapshots_of_pruned_backups_and_keeps_the_others() {
    let fixture = Fixture::new().await;
    let instance = fixture.instance("15.4").await;
    let mut records = BTreeMap::new();
    for name in ["s-1", "s-2", "s-3", "s-4"] {
        let spec = fixture.spec(name, fixture.config(&instance, &fixture.moto.endpoint()));
        let manifest = backup_manifest(fixture.run(&spec).await.unwrap());
        records.insert(name, manifest.snapshot.unwrap());
    }
    // s-1's snapshot loses our owner tag (as if someone took it over): never deleted by us.
    fixture
        .rds
        .remove_tags_from_resource()
        .resource_name(&records["s-1"].arn)
        .tag_keys("app.kubernetes.io/managed-by")
        .send()
        .await
        .unwrap();
    // s-2's snapshot was deleted by hand: not an error.
    fixture
        .rds
        .delete_db_snapshot()
        .db_snapshot_identifier(&records["s-2"].snapshot_id)
        .send()
        .await
        .unwrap();

    let options = |snapshots: Option<SnapshotAccess>| PruneOptions {
        policy: RetentionPolicy {
            keep_last: Some(1),
            min_keep: 1,
            ..RetentionPolicy::default()
        },
        partial_grace: Duration::from_secs(3600),
        dry_run: false,
        snapshots,
    };
    let never = CancellationToken::new();
    let all = LabelSelector::default();

    // Without snapshot credentials nothing that holds a snapshot is deleted.
    let error = engine::prune(&fixture.store, &options(None), &all, Utc::now(), &never)
        .await
        .unwrap_err();
    assert_eq!(error.exit_code(), exit_code::CONFIG, "{error}");
    assert_eq!(fixture.store.list_backup_names().await.unwrap().len(), 4);

    let access = SnapshotAccess {
        credentials_file: fixture.credentials.clone(),
        endpoint: None, // the one each manifest records
    };
    let outcome = engine::prune(
        &fixture.store,
        &options(Some(access)),
        &all,
        Utc::now(),
        &never,
    )
    .await
    .unwrap();
    assert_eq!(outcome.plan.delete.len(), 3, "{:?}", outcome.plan);
    assert_eq!(fixture.store.list_backup_names().await.unwrap(), ["s-4"]);
    let left = fixture.snapshots_of(&instance).await;
    let mut expected = vec![
        records["s-1"].snapshot_id.clone(),
        records["s-4"].snapshot_id.clone(),
    ];
    expected.sort();
    let mut left_sorted = left.clone();
    left_sorted.sort();
    assert_eq!(
        left_sorted, expected,
        "s-3's snapshot is deleted, s-1's (not ours) and s-4's stay"
    );
}

#[tokio::test]
async fn the_cli_takes_snapshots_and_prune_deletes_the_pruned_ones() {
    let fixture = Fixture::new().await;
    let instance = fixture.instance("15.4").await;
    let root = fixture.dir.path().join("cli-store");
    let key = fixture.dir.path().join("cli-key");
    cli_process::write_key(&key, 3);
    let store = |extra: &[&str]| {
        let mut args: Vec<String> = ["--path", root.to_str().unwrap(), "--output", "json"]
            .map(String::from)
            .to_vec();
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        args
    };
    let credentials = fixture.credentials.to_str().unwrap().to_owned();
    let endpoint = fixture.moto.endpoint();
    let mut ids = Vec::new();
    for name in ["cli-1", "cli-2"] {
        let mut args = vec!["backup".to_owned()];
        args.extend(store(&[
            "--name",
            name,
            "--rds-snapshot",
            &instance,
            "--rds-region",
            REGION,
            "--rds-credentials-file",
            &credentials,
            "--rds-endpoint",
            &endpoint,
            "--rds-tag",
            "team=billing",
            "--encryption-key-file",
            key.to_str().unwrap(),
        ]));
        let outcome = cli_process::run(&args).await;
        outcome.expect_code(0, name);
        let json = outcome.json();
        let arn = json["snapshot"]["arn"].as_str().unwrap().to_owned();
        assert!(arn.contains(":snapshot:vertice-"), "{json}");
        assert!(
            !outcome
                .everything()
                .contains(fixture.moto.secret_access_key())
        );
        ids.push(json["snapshot"]["snapshotId"].as_str().unwrap().to_owned());
    }

    // Without snapshot credentials prune refuses (exit 3) and deletes nothing.
    let mut prune = vec!["prune".to_owned()];
    prune.extend(store(&["--keep-last", "1"]));
    cli_process::run(&prune)
        .await
        .expect_code(3, "prune without credentials");
    assert_eq!(fixture.snapshots_of(&instance).await.len(), 2);

    prune.extend(["--rds-credentials-file".to_owned(), credentials.clone()]);
    cli_process::run(&prune).await.expect_code(0, "prune");
    assert_eq!(fixture.snapshots_of(&instance).await, [ids[1].clone()]);

    // A snapshot flag without its region and credentials is a usage error.
    let mut incomplete = vec!["backup".to_owned()];
    incomplete.extend(store(&[
        "--rds-snapshot",
        &instance,
        "--encryption-key-file",
        key.to_str().unwrap(),
    ]));
    cli_process::run(&incomplete)
        .await
        .expect_code(2, "--rds-snapshot alone");
}
