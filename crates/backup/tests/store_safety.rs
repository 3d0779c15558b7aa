//! What a store must never do to a backup, on every store the suite runs (local filesystem,
//! s3s-fs, Azurite, fake-gcs-server): let two runs share a name, delete a backup in a folder
//! below the one it deletes, or keep an interrupted run's objects forever.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "common/pipeline.rs"]
mod pipeline;

use std::time::Duration;

use chrono::Utc;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use pipeline::*;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use vertice_backup::backup::{BackupOptions, DumpInput, run_backup};
use vertice_backup::error::BackupError;
use vertice_backup::keys::KeyRing;
use vertice_backup::manifest::Manifest;
use vertice_backup::progress::Progress;
use vertice_backup::prune::{PruneOptions, prune};
use vertice_backup::retention::RetentionPolicy;
use vertice_backup::store::{BackupStore, StoreConfig, StoreKind};
use vertice_testkit::services::{Azurite, FakeGcs, S3Server};

/// The stores under test, each with the prefix `prefix`; the servers live as long as this.
struct Stores {
    _s3: S3Server,
    _azurite: Azurite,
    _gcs: FakeGcs,
    _dir: tempfile::TempDir,
    configs: Vec<StoreConfig>,
}

impl Stores {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let s3 = S3Server::start().await.unwrap();
        s3.create_bucket("backups").unwrap();
        let s3_credentials = dir.path().join("s3-credentials");
        std::fs::write(&s3_credentials, s3.credentials_file()).unwrap();
        let azurite = Azurite::start().await.unwrap();
        azurite.create_container("backups").await.unwrap();
        let azure_key = dir.path().join("azure-key");
        std::fs::write(&azure_key, azurite.account_key()).unwrap();
        let gcs = FakeGcs::start().await.unwrap();
        gcs.create_bucket("backups").await.unwrap();
        let gcs_key = dir.path().join("gcs.json");
        std::fs::write(&gcs_key, gcs.service_account_key()).unwrap();
        let configs = vec![
            StoreConfig {
                store: StoreKind::Local,
                path: Some(dir.path().join("local")),
                ..StoreConfig::default()
            },
            StoreConfig {
                store: StoreKind::S3,
                bucket: Some("backups".into()),
                endpoint: Some(s3.endpoint()),
                region: Some(s3.region().into()),
                credentials_file: Some(s3_credentials),
                ..StoreConfig::default()
            },
            StoreConfig {
                store: StoreKind::Azure,
                bucket: Some("backups".into()),
                endpoint: Some(azurite.endpoint()),
                account: Some(azurite.account().into()),
                credentials_file: Some(azure_key),
                ..StoreConfig::default()
            },
            StoreConfig {
                store: StoreKind::Gcs,
                bucket: Some("backups".into()),
                endpoint: Some(gcs.endpoint()),
                credentials_file: Some(gcs_key),
                ..StoreConfig::default()
            },
        ];
        Stores {
            _s3: s3,
            _azurite: azurite,
            _gcs: gcs,
            _dir: dir,
            configs,
        }
    }

    /// Every store, opened with `prefix`.
    fn open(&self, prefix: &str) -> Vec<BackupStore> {
        self.configs
            .iter()
            .map(|config| {
                BackupStore::open(&StoreConfig {
                    prefix: prefix.into(),
                    ..config.clone()
                })
                .unwrap()
            })
            .collect()
    }
}

fn options(name: &str) -> BackupOptions {
    let mut options = small_options(name, Some(key(9)));
    options.chunk_size = 256 * 1024;
    options
}

/// Every object path under `prefix` (all of the bucket when empty), sorted.
async fn objects_under(store: &BackupStore, prefix: &str) -> Vec<String> {
    let prefix = (!prefix.is_empty()).then(|| Path::from(prefix));
    let mut paths: Vec<String> = store
        .object_store()
        .list(prefix.as_ref())
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    paths.sort();
    paths
}

async fn restored(store: &BackupStore, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    restore_bytes(store, name, &KeyRing::new(vec![key(9)]), &mut out)
        .await
        .unwrap_or_else(|error| panic!("{}: restoring {name}: {error}", store.description()));
    out
}

/// One run of backup `name` fed through a pipe: the first MiB now, the rest when asked.
struct OpenRun {
    data: Vec<u8>,
    writer: tokio::io::DuplexStream,
    task: tokio::task::JoinHandle<Result<Manifest, BackupError>>,
    fed: usize,
}

impl OpenRun {
    async fn start(store: &BackupStore, name: &str, seed: u64) -> Self {
        Self::start_with_head(store, name, seed, 1024 * 1024).await
    }

    /// Starts the run and feeds it the first `head` bytes.
    async fn start_with_head(store: &BackupStore, name: &str, seed: u64, head: usize) -> Self {
        let data = dump_bytes(3 * 1024 * 1024 + seed as usize, seed);
        let (mut writer, reader) = tokio::io::duplex(64 * 1024);
        let store = store.clone();
        let options = options(name);
        let task = tokio::spawn(async move {
            run_backup(
                &store,
                &options,
                DumpInput::plain(reader),
                Progress::new(),
                CancellationToken::new(),
            )
            .await
        });
        let feeding =
            tokio::time::timeout(Duration::from_secs(30), writer.write_all(&data[..head])).await;
        // A run that lost the name stops reading: its pipe may fill or close.
        drop(feeding);
        OpenRun {
            data,
            writer,
            task,
            fed: head,
        }
    }

    async fn finish(mut self) -> (Vec<u8>, Result<Manifest, BackupError>) {
        let _ = self.writer.write_all(&self.data[self.fed..]).await;
        drop(self.writer);
        let outcome = self.task.await.unwrap();
        (self.data, outcome)
    }
}

/// Two runs of one name at once, on every store: exactly one completes; the other fails with
/// `NameReserved` (exit code 8) before writing anything, and the winner's backup restores to
/// the winner's bytes. A third run after the winner finished is refused too.
#[tokio::test]
async fn two_runs_with_one_name_on_every_store() {
    let stores = Stores::start().await;
    for store in stores.open("team/app") {
        let where_ = store.description().to_string();
        let first = OpenRun::start(&store, "nightly", 1).await;
        let second = OpenRun::start(&store, "nightly", 2).await;
        // The loser fails at once, while both pipes are still open.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !first.task.is_finished() && !second.task.is_finished() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{where_}: neither run stopped"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (loser, winner) = if first.task.is_finished() {
            (first, second)
        } else {
            (second, first)
        };
        let (_, lost) = loser.finish().await;
        let error = lost.expect_err(&format!("{where_}: both runs of one name completed"));
        assert!(
            matches!(error, BackupError::NameReserved { .. }),
            "{where_}: {error}"
        );
        assert_eq!(error.exit_code(), 8, "{where_}");
        assert!(error.to_string().contains("is taken"), "{where_}: {error}");

        let (data, won) = winner.finish().await;
        let manifest = won.unwrap_or_else(|error| panic!("{where_}: the winner failed: {error}"));
        assert_eq!(manifest.raw_size, data.len() as u64, "{where_}");
        assert_eq!(store.list_backup_names().await.unwrap(), ["nightly"]);
        assert!(
            restored(&store, "nightly").await == data,
            "{where_}: the surviving backup does not hold the winner's bytes"
        );

        // Once complete, the name stays taken, and the refused run deletes nothing.
        let again = backup_bytes(&store, &options("nightly"), dump_bytes(1000, 3))
            .await
            .unwrap_err();
        assert_eq!(again.exit_code(), 8, "{where_}: {again}");
        assert!(restored(&store, "nightly").await == data, "{where_}");
    }
}

/// Prefix `team/app` holds `nightly-1` and `nightly-2`; prefix `team` holds `app` (older) and
/// `app2`. Pruning `team` to one backup deletes `app`'s own objects and nothing below them:
/// both backups under `team/app` still list and restore. Deleting `app2` the same way, and a
/// backup whose folder holds a deeper folder, leaves the deeper ones whole.
#[tokio::test]
async fn a_parent_prefix_prune_deletes_only_its_own_backup_on_every_store() {
    let stores = Stores::start().await;
    for (team, team_app) in stores.open("team").into_iter().zip(stores.open("team/app")) {
        let where_ = team.description().to_string();
        let nested_1 = dump_bytes(300_000, 11);
        let nested_2 = dump_bytes(300_001, 12);
        backup_bytes(&team_app, &options("nightly-1"), nested_1.clone())
            .await
            .unwrap();
        backup_bytes(&team_app, &options("nightly-2"), nested_2.clone())
            .await
            .unwrap();
        backup_bytes(&team, &options("app"), dump_bytes(1000, 13))
            .await
            .unwrap();
        backup_bytes(&team, &options("app2"), dump_bytes(1000, 14))
            .await
            .unwrap();
        team.write_verification("app", &serde_json::json!({"kind": "verify"}))
            .await
            .unwrap();
        assert_eq!(
            team.list_backup_names().await.unwrap(),
            ["app", "app2"],
            "{where_}: backups of a deeper prefix are not this prefix's"
        );

        let outcome = prune(
            &team,
            &PruneOptions {
                policy: RetentionPolicy {
                    keep_last: Some(1),
                    ..RetentionPolicy::default()
                },
                partial_grace: Duration::from_secs(3600),
                dry_run: false,
                snapshots: None,
            },
            Utc::now(),
        )
        .await
        .unwrap();
        let deleted: Vec<_> = outcome
            .plan
            .delete
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(deleted, ["app"], "{where_}");
        assert!(
            outcome.partial.is_empty(),
            "{where_}: {:?}",
            outcome.partial
        );
        assert_eq!(
            team.list_backup_names().await.unwrap(),
            ["app2"],
            "{where_}"
        );
        let left_in_app: Vec<_> = objects_under(&team, "team/app")
            .await
            .into_iter()
            .filter(|path| path.split('/').count() == 3)
            .collect();
        assert!(
            left_in_app.is_empty(),
            "{where_}: objects of the deleted backup are left: {left_in_app:?}"
        );
        assert_eq!(
            team_app.list_backup_names().await.unwrap(),
            ["nightly-1", "nightly-2"],
            "{where_}: the prune of `team` reached into `team/app`"
        );
        assert!(
            restored(&team_app, "nightly-1").await == nested_1,
            "{where_}"
        );
        assert!(
            restored(&team_app, "nightly-2").await == nested_2,
            "{where_}"
        );

        // Deleting the nested backups through their own prefix leaves the parent's alone.
        team_app.delete_backup("nightly-1").await.unwrap();
        assert_eq!(team_app.list_backup_names().await.unwrap(), ["nightly-2"]);
        assert_eq!(team.list_backup_names().await.unwrap(), ["app2"]);
        assert!(
            restored(&team, "app2").await == dump_bytes(1000, 14),
            "{where_}"
        );
    }
}

/// A run killed mid-upload (its task dropped: no cleanup runs) leaves its reservation and its
/// finished data objects. Prune lists the folder and keeps it while it is younger than the
/// grace period — its writer may still be running — and reclaims exactly its objects once
/// "now" is past the grace; a finished backup beside it is untouched.
#[tokio::test]
async fn an_interrupted_run_is_reclaimed_after_the_grace_on_every_store() {
    let stores = Stores::start().await;
    for store in stores.open("team/app") {
        let where_ = store.description().to_string();
        let kept = dump_bytes(200_000, 21);
        backup_bytes(&store, &options("finished"), kept.clone())
            .await
            .unwrap();
        // All but the last bytes: several objects finish, the pipe stays open.
        let run = OpenRun::start_with_head(&store, "killed", 22, 3 * 1024 * 1024).await;
        let first_object = store.data_path("killed", 0).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while store.object_store().head(&first_object).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{where_}: no data object was finished"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        run.task.abort();
        let _ = run.task.await;
        drop(run.writer);
        let left = objects_under(&store, "team/app/killed").await;
        assert!(left.len() >= 2, "{where_}: {left:?}");
        assert_eq!(store.list_backup_names().await.unwrap(), ["finished"]);

        let grace = Duration::from_secs(3600);
        let options = |dry_run| PruneOptions {
            policy: RetentionPolicy::default(),
            partial_grace: grace,
            dry_run,
            snapshots: None,
        };
        let young = prune(&store, &options(false), Utc::now()).await.unwrap();
        assert_eq!(young.partial.len(), 1, "{where_}: {:?}", young.partial);
        assert_eq!(young.partial[0].name, "killed");
        assert!(
            !young.partial[0].reclaim,
            "{where_}: reclaimed inside the grace"
        );
        assert_eq!(objects_under(&store, "team/app/killed").await, left);

        let later = Utc::now() + chrono::Duration::from_std(grace).unwrap();
        let dry = prune(&store, &options(true), later).await.unwrap();
        assert!(dry.partial[0].reclaim, "{where_}");
        assert!(dry.partial[0].objects >= 2 && dry.partial[0].bytes > 0);
        assert!(
            dry.text().contains("would reclaim killed"),
            "{}",
            dry.text()
        );
        assert_eq!(objects_under(&store, "team/app/killed").await, left);

        let done = prune(&store, &options(false), later).await.unwrap();
        assert!(done.plan.delete.is_empty(), "{where_}");
        assert!(
            objects_under(&store, "team/app/killed").await.is_empty(),
            "{where_}: the interrupted run's objects are left"
        );
        assert_eq!(store.list_backup_names().await.unwrap(), ["finished"]);
        assert!(restored(&store, "finished").await == kept, "{where_}");
        // The name is free again.
        backup_bytes(&store, &options_named("killed"), dump_bytes(1000, 23))
            .await
            .unwrap();
    }
}

fn options_named(name: &str) -> BackupOptions {
    options(name)
}
