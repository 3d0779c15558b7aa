//! Round trips and failures through the real object-store servers from testkit: an S3 server
//! (s3s-fs), Azurite (Azure Blob) and fake-gcs-server (GCS). Each test fails, with install
//! instructions, when its server is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "common/pipeline.rs"]
mod pipeline;

use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutPayload};
use pipeline::*;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use vertice_backup::backup::{BackupOptions, DumpInput, run_backup};
use vertice_backup::error::BackupError;
use vertice_backup::keys::KeyRing;
use vertice_backup::manifest::Manifest;
use vertice_backup::progress::Progress;
use vertice_backup::store::{BackupStore, StoreConfig, StoreKind};
use vertice_testkit::services::{Azurite, FakeGcs, Fault, FaultProxy, HostHeader, S3Server};

/// Twelve MiB of dump, streamed through a pipe, after which the dump tool dies: the stream
/// just ends and its completion reports the failure.
fn twelve_mib_then_the_dump_fails() -> DumpInput {
    let (mut writer, reader) = tokio::io::duplex(1024 * 1024);
    tokio::spawn(async move {
        for seed in 0..12 {
            if writer
                .write_all(&dump_bytes(1024 * 1024, seed))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    failing_dump(reader)
}

#[tokio::test]
async fn s3_round_trip_and_corruption() {
    let server = S3Server::start().await.unwrap();
    server.create_bucket("backups").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = s3_store(&server, "backups", dir.path());
    let data = dump_bytes(12 * 1024 * 1024 + 77, 11);
    let mut options = small_options("nightly", Some(key(1)));
    options.chunk_size = 1024 * 1024;
    options.upload.max_object_size = 64 * 1024 * 1024;
    let manifest = backup_bytes(&store, &options, data.clone()).await.unwrap();
    assert_eq!(manifest.objects.len(), 1);
    assert!(
        manifest.objects[0].size > 5 * 1024 * 1024,
        "the object should need several multipart parts"
    );
    assert_eq!(store.list_backup_names().await.unwrap(), ["nightly"]);
    let keys = KeyRing::new(vec![key(1)]);
    let mut restored = Vec::new();
    restore_bytes(&store, "nightly", &keys, &mut restored)
        .await
        .unwrap();
    assert!(restored == data, "restored bytes differ");
    assert!(server.pending_multipart_uploads().unwrap().is_empty());

    // A flipped byte in the stored object.
    let path = server.object_path("backups", "team/app/nightly/data-000000.vbk");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let mut sink = Vec::new();
    let error = restore_bytes(&store, "nightly", &keys, &mut sink)
        .await
        .unwrap_err();
    assert!(matches!(error, BackupError::Integrity(_)), "{error}");
    assert!(sink.is_empty());
}

#[tokio::test]
async fn s3_failed_source_aborts_the_multipart_upload() {
    let server = S3Server::start().await.unwrap();
    server.create_bucket("backups").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = s3_store(&server, "backups", dir.path());
    let input = twelve_mib_then_the_dump_fails();
    let mut options = small_options("failed", Some(key(1)));
    options.chunk_size = 1024 * 1024;
    options.upload.max_object_size = 1 << 40;
    let error = backup_input(&store, &options, input).await.unwrap_err();
    assert!(matches!(error, BackupError::Source(_)), "{error}");
    assert!(store.list_backup_names().await.unwrap().is_empty());
    assert!(
        server.pending_multipart_uploads().unwrap().is_empty(),
        "the multipart upload was not aborted"
    );
}

#[tokio::test]
async fn s3_server_killed_mid_upload_leaves_no_backup() {
    let mut server = S3Server::start().await.unwrap();
    server.create_bucket("backups").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = s3_store(&server, "backups", dir.path());
    let (mut writer, reader) = tokio::io::duplex(1024 * 1024);
    let feeder = tokio::spawn(async move {
        for seed in 0..200 {
            if writer
                .write_all(&dump_bytes(1024 * 1024, seed))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut options = small_options("killed", Some(key(1)));
    options.chunk_size = 1024 * 1024;
    options.upload.max_object_size = 1 << 40;
    let backup = tokio::spawn({
        let store = store.clone();
        async move {
            run_backup(
                &store,
                &options,
                DumpInput::plain(reader),
                Progress::new(),
                CancellationToken::new(),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    let outcome = tokio::time::timeout(Duration::from_secs(300), backup)
        .await
        .expect("the backup hangs after the store died")
        .unwrap();
    feeder.abort();
    let error = outcome.unwrap_err();
    assert!(matches!(error, BackupError::Store(_)), "{error}");
    assert_eq!(error.exit_code(), 5);
    server.restart().await.unwrap();
    assert!(!store.exists("killed").await.unwrap());
    assert!(store.list_backup_names().await.unwrap().is_empty());
}

#[tokio::test]
async fn azurite_round_trip() {
    let server = Azurite::start().await.unwrap();
    server.create_container("backups").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = azure_store_at(&server, &server.endpoint(), dir.path());
    let data = dump_bytes(7 * 1024 * 1024, 12);
    let mut options = small_options("azure-1", Some(key(3)));
    options.chunk_size = 1024 * 1024;
    options.upload.max_object_size = 2 * 1024 * 1024;
    let manifest = backup_bytes(&store, &options, data.clone()).await.unwrap();
    assert!(manifest.objects.len() >= 2);
    assert_eq!(store.list_backup_names().await.unwrap(), ["azure-1"]);
    let mut restored = Vec::new();
    restore_bytes(
        &store,
        "azure-1",
        &KeyRing::new(vec![key(3)]),
        &mut restored,
    )
    .await
    .unwrap();
    assert!(restored == data, "restored bytes differ");
    let error = restore_bytes(
        &store,
        "azure-1",
        &KeyRing::new(vec![key(4)]),
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, BackupError::WrongKey(_)));
}

/// fake-gcs-server implements only GCS's JSON API, while object_store writes through the XML
/// API (`PUT /bucket/object`, XML multipart uploads; fake-gcs-server#331). So the GCS store
/// reads, lists and deletes through object_store but writes through the JSON API itself:
/// single-request multipart uploads (which carry `ifGenerationMatch=0` for "never overwrite")
/// and resumable sessions for data objects. Real GCS serves the JSON API too, so this is the
/// production path, not an emulator detour. The parts are not multiples of 256 KiB, so the
/// session must carry bytes from one part to the next.
#[tokio::test]
async fn fake_gcs_round_trip() {
    let server = FakeGcs::start().await.unwrap();
    server.create_bucket("backups").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = gcs_store(&server, dir.path());
    let data = dump_bytes(20 * 1024 * 1024 + 3, 13);
    let mut options = small_options("gcs-1", Some(key(5)));
    options.chunk_size = 1024 * 1024;
    options.upload.part_size = 5 * 1024 * 1024 + 1000;
    options.upload.max_object_size = 8 * 1024 * 1024;
    let manifest = backup_bytes(&store, &options, data.clone()).await.unwrap();
    assert!(manifest.objects.len() >= 2, "{:?}", manifest.objects);
    assert!(
        manifest.objects[0].size > options.upload.part_size as u64,
        "the first object should need several parts"
    );
    // Read back through the emulator's own download API, not through the store.
    for (index, object) in manifest.objects.iter().enumerate() {
        let path = store.data_path("gcs-1", index as u32).unwrap();
        let stored = server
            .download_object("backups", path.as_ref())
            .await
            .unwrap();
        assert_eq!(stored.len() as u64, object.size, "{}", object.name);
    }
    assert_eq!(store.list_backup_names().await.unwrap(), ["gcs-1"]);
    let mut restored = Vec::new();
    restore_bytes(&store, "gcs-1", &KeyRing::new(vec![key(5)]), &mut restored)
        .await
        .unwrap();
    assert!(restored == data, "restored bytes differ");

    // "Never overwrite" refuses an existing object and leaves it as it was.
    let manifest_path = store.manifest_path("gcs-1").unwrap();
    let before = server
        .download_object("backups", manifest_path.as_ref())
        .await
        .unwrap();
    let error = store
        .object_store()
        .put_opts(
            &manifest_path,
            PutPayload::from_static(b"{}"),
            PutMode::Create.into(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, object_store::Error::AlreadyExists { .. }),
        "{error}"
    );
    let after = server
        .download_object("backups", manifest_path.as_ref())
        .await
        .unwrap();
    assert!(after == before, "the manifest was overwritten");
    // ... and creates a new one.
    let fresh = Path::from("team/notes/created.txt");
    store
        .object_store()
        .put_opts(
            &fresh,
            PutPayload::from_static(b"new"),
            PutMode::Create.into(),
        )
        .await
        .unwrap();
    assert_eq!(
        server
            .download_object("backups", fresh.as_ref())
            .await
            .unwrap(),
        b"new"
    );
    let error = backup_bytes(&store, &options, data).await.unwrap_err();
    assert!(matches!(error, BackupError::AlreadyExists(_)), "{error}");
}

/// A backup whose dump fails after some data objects are written leaves nothing behind on
/// GCS: the finished objects are deleted, and the open resumable session is cancelled
/// instead of finished, so it never becomes an object.
#[tokio::test]
async fn fake_gcs_failed_backup_leaves_no_objects() {
    let server = FakeGcs::start().await.unwrap();
    server.create_bucket("backups").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = gcs_store(&server, dir.path());
    let input = twelve_mib_then_the_dump_fails();
    let mut options = small_options("failed", Some(key(1)));
    options.chunk_size = 1024 * 1024;
    options.upload.max_object_size = 4 * 1024 * 1024;
    let error = backup_input(&store, &options, input).await.unwrap_err();
    assert!(matches!(error, BackupError::Source(_)), "{error}");
    assert!(store.list_backup_names().await.unwrap().is_empty());
    let left: Vec<_> = store
        .object_store()
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert!(left.is_empty(), "objects left behind: {left:?}");
}

fn gcs_store(server: &FakeGcs, dir: &std::path::Path) -> BackupStore {
    gcs_store_at(server, &server.endpoint(), dir)
}

/// A store on `server`'s bucket `backups`, reached at `endpoint` (the server's, or a proxy's).
fn gcs_store_at(server: &FakeGcs, endpoint: &str, dir: &std::path::Path) -> BackupStore {
    let credentials = dir.join("gcs.json");
    let key = server
        .service_account_key()
        .replace(&server.endpoint(), endpoint);
    std::fs::write(&credentials, key).unwrap();
    BackupStore::open(&StoreConfig {
        store: StoreKind::Gcs,
        bucket: Some("backups".into()),
        endpoint: Some(endpoint.to_string()),
        credentials_file: Some(credentials),
        prefix: "team".into(),
        ..StoreConfig::default()
    })
    .unwrap()
}

/// S3 answers `503 SlowDown` now and then; object_store retries such answers. Behind the
/// fault proxy, two failed part uploads and a failed multipart completion do not stop the
/// backup, and no multipart upload is left open.
#[tokio::test]
async fn s3_transient_errors_are_retried() {
    let server = S3Server::start().await.unwrap();
    server.create_bucket("backups").unwrap();
    let proxy = FaultProxy::start(&server.endpoint(), HostHeader::AsSent)
        .await
        .unwrap();
    proxy.inject(fault("PUT", "partNumber=", 503, 2));
    proxy.inject(fault("POST", "uploadId=", 503, 1));
    let dir = tempfile::tempdir().unwrap();
    let store = s3_store_at(&server, &proxy.endpoint(), "backups", dir.path());
    let options = options_for_faults("slowdown", 64 * 1024 * 1024);
    round_trip_through_faults(&store, &proxy, &options, 12 * 1024 * 1024, 3).await;
    assert!(server.pending_multipart_uploads().unwrap().is_empty());
}

/// A store on Azurite's container `backups`, reached at `endpoint` (Azurite's, or a proxy's).
fn azure_store_at(server: &Azurite, endpoint: &str, dir: &std::path::Path) -> BackupStore {
    let credentials = dir.join("azure-key");
    std::fs::write(&credentials, server.account_key()).unwrap();
    BackupStore::open(&StoreConfig {
        store: StoreKind::Azure,
        bucket: Some("backups".into()),
        endpoint: Some(endpoint.to_string()),
        account: Some(server.account().into()),
        credentials_file: Some(credentials),
        prefix: "team".into(),
        ..StoreConfig::default()
    })
    .unwrap()
}

/// Azure Blob answers `503 ServerBusy` now and then: two failed block uploads and a failed
/// block-list commit, behind the fault proxy, do not stop the backup.
#[tokio::test]
async fn azurite_transient_errors_are_retried() {
    let server = Azurite::start().await.unwrap();
    server.create_container("backups").await.unwrap();
    // The proxy forwards paths as they are; the account is the endpoint's path.
    let origin = format!("http://127.0.0.1:{}", server.port());
    let proxy = FaultProxy::start(&origin, HostHeader::Upstream)
        .await
        .unwrap();
    proxy.inject(fault("PUT", "comp=block&", 503, 2));
    proxy.inject(fault("PUT", "comp=blocklist", 503, 1));
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("{}/{}", proxy.endpoint(), server.account());
    let store = azure_store_at(&server, &endpoint, dir.path());
    let options = options_for_faults("busy", 64 * 1024 * 1024);
    round_trip_through_faults(&store, &proxy, &options, 7 * 1024 * 1024, 3).await;
}

/// 1 MiB chunks in data objects of at most `max_object_size` bytes, encrypted with `key(6)`.
fn options_for_faults(name: &str, max_object_size: u64) -> BackupOptions {
    let mut options = small_options(name, Some(key(6)));
    options.chunk_size = 1024 * 1024;
    options.upload.max_object_size = max_object_size;
    options
}

/// Backs up `size` bytes through a store behind `proxy`, checks that the backup met exactly
/// `faults` injected failures and still completed, and restores the bytes whole.
async fn round_trip_through_faults(
    store: &BackupStore,
    proxy: &FaultProxy,
    options: &BackupOptions,
    size: usize,
    faults: usize,
) -> Manifest {
    let data = dump_bytes(size, size as u64);
    let manifest = backup_bytes(store, options, data.clone()).await.unwrap();
    let injected = proxy.injected();
    assert_eq!(injected.len(), faults, "{injected:#?}");
    let mut restored = Vec::new();
    restore_bytes(
        store,
        &options.name,
        &KeyRing::new(vec![key(6)]),
        &mut restored,
    )
    .await
    .unwrap();
    assert!(restored == data, "restored bytes differ");
    manifest
}

fn fault(method: &str, path_contains: &str, status: u16, times: usize) -> Fault {
    Fault {
        method: method.into(),
        path_contains: path_contains.into(),
        status,
        times,
    }
}

/// Real GCS answers 503 or 429 now and then; fake-gcs-server never does, so a proxy in front
/// of it fails chosen requests: two requests of a resumable session (a part, then the status
/// query that follows it) and the manifest's one-request upload. The backup completes, every
/// injected fault was met, and the data comes back whole.
#[tokio::test]
async fn fake_gcs_transient_errors_are_retried() {
    let server = FakeGcs::start().await.unwrap();
    server.create_bucket("backups").await.unwrap();
    let proxy = FaultProxy::start(&server.endpoint(), HostHeader::Upstream)
        .await
        .unwrap();
    proxy.inject(fault("PUT", "upload_id=", 503, 2));
    proxy.inject(fault("POST", "uploadType=multipart", 429, 1));
    let dir = tempfile::tempdir().unwrap();
    let store = gcs_store_at(&server, &proxy.endpoint(), dir.path());
    let options = options_for_faults("flaky", 4 * 1024 * 1024);
    let manifest = round_trip_through_faults(&store, &proxy, &options, 10 * 1024 * 1024, 3).await;
    assert!(manifest.objects.len() >= 2, "{:?}", manifest.objects);
}

/// A GCS that keeps failing a session's parts: the backup gives up after its retries with a
/// store error (exit code 5), and nothing is left in the bucket — read directly from the
/// server, past the proxy.
#[tokio::test]
async fn fake_gcs_failing_for_good_leaves_no_backup() {
    let server = FakeGcs::start().await.unwrap();
    server.create_bucket("backups").await.unwrap();
    let proxy = FaultProxy::start(&server.endpoint(), HostHeader::Upstream)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = gcs_store_at(&server, &proxy.endpoint(), dir.path());
    proxy.inject(fault("PUT", "upload_id=", 503, usize::MAX));

    let error = backup_bytes(
        &store,
        &options_for_faults("doomed", 4 * 1024 * 1024),
        dump_bytes(10 * 1024 * 1024, 15),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, BackupError::Store(_)), "{error}");
    assert_eq!(error.exit_code(), 5);
    assert!(proxy.injected().len() >= 4, "{:#?}", proxy.injected());
    let direct = gcs_store(&server, dir.path());
    let left: Vec<_> = direct
        .object_store()
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert!(left.is_empty(), "objects left behind: {left:?}");
}
