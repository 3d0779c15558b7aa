//! Store errors keep their kind (`StoreErrorKind`) through `BackupError`, against the real
//! servers from testkit: refused credentials are `Forbidden`, a store that does not answer is
//! `Unavailable`, a missing object is `NotFound`, on S3 (s3s-fs), Azure (Azurite), GCS
//! (fake-gcs-server, with the fault proxy for the statuses it never sends) and the local
//! store; and the runner's result JSON carries the kind (`storeKind`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/cli_process.rs"]
mod cli_process;
#[path = "common/pipeline.rs"]
mod pipeline;

use std::time::Instant;

use object_store::ObjectStoreExt;
use object_store::path::Path;
use pipeline::*;
use serde_json::json;
use vertice_backup::error::BackupError;
use vertice_backup::store::{BackupStore, StoreConfig, StoreErrorKind, StoreKind};
use vertice_testkit::services::{Azurite, FakeGcs, Fault, FaultProxy, HostHeader, S3Server};

/// The store kind of a failed call, with the error for the message.
fn kind_of<T: std::fmt::Debug>(outcome: Result<T, BackupError>, what: &str) -> StoreErrorKind {
    let error = outcome.expect_err(what);
    assert_eq!(error.exit_code(), 5, "{what}: {error}");
    error
        .store_kind()
        .unwrap_or_else(|| panic!("{what}: not a store error: {error:?}"))
}

/// An S3 store on `server` whose credentials file holds `access` and `secret`.
fn s3_with_keys(
    server: &S3Server,
    access: &str,
    secret: &str,
    dir: &std::path::Path,
) -> BackupStore {
    let credentials = dir.join(format!("s3-{access}"));
    std::fs::write(
        &credentials,
        format!("AWS_ACCESS_KEY_ID={access}\nAWS_SECRET_ACCESS_KEY={secret}\n"),
    )
    .unwrap();
    BackupStore::open(&StoreConfig {
        store: StoreKind::S3,
        bucket: Some("backups".into()),
        endpoint: Some(server.endpoint()),
        region: Some(server.region().into()),
        credentials_file: Some(credentials),
        prefix: "team/app".into(),
        ..StoreConfig::default()
    })
    .unwrap()
}

fn azure_with_key(server: &Azurite, key: &str, dir: &std::path::Path) -> BackupStore {
    let credentials = dir.join("azure-key");
    std::fs::write(&credentials, key).unwrap();
    BackupStore::open(&StoreConfig {
        store: StoreKind::Azure,
        bucket: Some("backups".into()),
        endpoint: Some(server.endpoint()),
        account: Some(server.account().into()),
        credentials_file: Some(credentials),
        prefix: "team".into(),
        ..StoreConfig::default()
    })
    .unwrap()
}

fn gcs_at(server: &FakeGcs, endpoint: &str, dir: &std::path::Path) -> BackupStore {
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

fn fault(method: &str, path_contains: &str, status: u16) -> Fault {
    Fault {
        method: method.into(),
        path_contains: path_contains.into(),
        status,
        times: usize::MAX,
    }
}

/// A local port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn refused_credentials_are_forbidden_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start().await.unwrap();
    s3.create_bucket("backups").unwrap();
    let wrong_secret = s3_with_keys(&s3, s3.access_key(), "not-the-secret-key-0000", dir.path());
    let unknown_key = s3_with_keys(&s3, "AKUNKNOWNKEY000000", s3.secret_key(), dir.path());
    for (what, store) in [
        ("s3, wrong secret", &wrong_secret),
        ("s3, unknown key", &unknown_key),
    ] {
        assert_eq!(
            kind_of(store.list_backup_names().await, what),
            StoreErrorKind::Forbidden,
            "{what}: listing"
        );
        assert_eq!(
            kind_of(store.exists("nightly").await, what),
            StoreErrorKind::Forbidden,
            "{what}: a HEAD"
        );
        let error = backup_bytes(store, &small_options("nightly", None), dump_bytes(1000, 1))
            .await
            .unwrap_err();
        assert_eq!(
            error.store_kind(),
            Some(StoreErrorKind::Forbidden),
            "{what}: {error}"
        );
    }
    // The right keys work: the refusal was the credentials', not the server's.
    assert!(
        s3_with_keys(&s3, s3.access_key(), s3.secret_key(), dir.path())
            .list_backup_names()
            .await
            .unwrap()
            .is_empty()
    );

    let azurite = Azurite::start().await.unwrap();
    azurite.create_container("backups").await.unwrap();
    // A well-formed account key that is not the account's.
    let wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWs=";
    let azure = azure_with_key(&azurite, wrong_key, dir.path());
    assert_eq!(
        kind_of(azure.list_backup_names().await, "azure, wrong key"),
        StoreErrorKind::Forbidden
    );

    // fake-gcs-server checks no credentials: the proxy answers as GCS does when it refuses.
    let gcs = FakeGcs::start().await.unwrap();
    gcs.create_bucket("backups").await.unwrap();
    for status in [401, 403] {
        let proxy = FaultProxy::start(&gcs.endpoint(), HostHeader::Upstream)
            .await
            .unwrap();
        proxy.inject(fault("GET", "/", status));
        proxy.inject(fault("POST", "/", status));
        let store = gcs_at(&gcs, &proxy.endpoint(), dir.path());
        assert_eq!(
            kind_of(store.list_backup_names().await, "gcs listing"),
            StoreErrorKind::Forbidden,
            "gcs {status}"
        );
        // Uploads go through our own JSON API client: its statuses keep their kind too.
        let error = backup_bytes(&store, &small_options("nightly", None), dump_bytes(1000, 2))
            .await
            .unwrap_err();
        assert_eq!(
            error.store_kind(),
            Some(StoreErrorKind::Forbidden),
            "gcs upload {status}: {error}"
        );
    }
}

#[tokio::test]
async fn missing_objects_are_not_found_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start().await.unwrap();
    s3.create_bucket("backups").unwrap();
    let azurite = Azurite::start().await.unwrap();
    azurite.create_container("backups").await.unwrap();
    let gcs = FakeGcs::start().await.unwrap();
    gcs.create_bucket("backups").await.unwrap();
    let stores = [
        ("local", local_store(&dir.path().join("local"))),
        ("s3", s3_store(&s3, "backups", dir.path())),
        (
            "azure",
            azure_with_key(&azurite, azurite.account_key(), dir.path()),
        ),
        ("gcs", gcs_at(&gcs, &gcs.endpoint(), dir.path())),
    ];
    for (what, store) in &stores {
        let missing = Path::from("team/app/nightly/data-000000.vbk");
        let error = store.object_store().get(&missing).await.unwrap_err();
        assert_eq!(
            BackupError::from(error).store_kind(),
            Some(StoreErrorKind::NotFound),
            "{what}"
        );
        // A missing backup stays the engine's own NotFound (exit 7), not a store failure.
        let error = store.read_manifest("nightly").await.unwrap_err();
        assert!(matches!(error, BackupError::NotFound(_)), "{what}: {error}");
    }
    // A bucket that does not exist is not found too.
    let no_bucket = BackupStore::open(&StoreConfig {
        bucket: Some("no-such-bucket".into()),
        ..s3_config(&s3, dir.path())
    })
    .unwrap();
    assert_eq!(
        kind_of(no_bucket.list_backup_names().await, "s3, no bucket"),
        StoreErrorKind::NotFound
    );
}

fn s3_config(server: &S3Server, dir: &std::path::Path) -> StoreConfig {
    let credentials = dir.join("s3-good");
    std::fs::write(
        &credentials,
        format!("{}\n{}\n", server.access_key(), server.secret_key()),
    )
    .unwrap();
    StoreConfig {
        store: StoreKind::S3,
        bucket: Some("backups".into()),
        endpoint: Some(server.endpoint()),
        region: Some(server.region().into()),
        credentials_file: Some(credentials),
        prefix: "team/app".into(),
        ..StoreConfig::default()
    }
}

#[tokio::test]
async fn a_store_that_does_not_answer_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = S3Server::start().await.unwrap();
    s3.create_bucket("backups").unwrap();
    let store = s3_store(&s3, "backups", dir.path());
    store.list_backup_names().await.unwrap();
    s3.kill();
    let nothing_there = BackupStore::open(&StoreConfig {
        endpoint: Some(format!("http://127.0.0.1:{}", closed_port())),
        ..s3_config(&s3, dir.path())
    })
    .unwrap();
    for (what, store) in [("s3 killed", &store), ("nothing listening", &nothing_there)] {
        let started = Instant::now();
        assert_eq!(
            kind_of(store.list_backup_names().await, what),
            StoreErrorKind::Unavailable,
            "{what}"
        );
        eprintln!("{what}: unavailable after {:?}", started.elapsed());
    }
    let error = store.exists("nightly").await.unwrap_err();
    assert!(error.is_transient(), "{error}");

    // GCS answering 503 for good, to our JSON upload client and to object_store's reads.
    let gcs = FakeGcs::start().await.unwrap();
    gcs.create_bucket("backups").await.unwrap();
    let proxy = FaultProxy::start(&gcs.endpoint(), HostHeader::Upstream)
        .await
        .unwrap();
    proxy.inject(fault("POST", "/", 503));
    proxy.inject(fault("PUT", "/", 503));
    let store = gcs_at(&gcs, &proxy.endpoint(), dir.path());
    let error = backup_bytes(&store, &small_options("nightly", None), dump_bytes(1000, 3))
        .await
        .unwrap_err();
    assert_eq!(
        error.store_kind(),
        Some(StoreErrorKind::Unavailable),
        "{error}"
    );
}

/// The runner's result JSON (the Job's termination message) names the store error's kind.
#[tokio::test]
async fn the_runner_result_carries_the_store_kind() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start().await.unwrap();
    s3.create_bucket("backups").unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, format!("{}\nnot-the-secret\n", s3.access_key())).unwrap();
    let result_file = dir.path().join("result.json");
    let storage = |endpoint: String, credentials: &std::path::Path| {
        json!({"store": "s3", "bucket": "backups", "endpoint": endpoint,
               "region": s3.region(), "credentialsFile": credentials, "prefix": "team"})
    };
    for (what, storage, kind) in [
        (
            "wrong credentials",
            storage(s3.endpoint(), &wrong),
            "Forbidden",
        ),
        (
            "nothing listening",
            storage(format!("http://127.0.0.1:{}", closed_port()), &wrong),
            "Unavailable",
        ),
    ] {
        let spec = json!({"action": "verify", "name": "nightly", "storage": storage,
                          "encryption": {"disabled": true}});
        let mut runner = cli_process::command([
            "runner".as_ref(),
            "--result-file".as_ref(),
            result_file.as_os_str(),
        ]);
        runner.env("VERTICE_BACKUP_SPEC", spec.to_string());
        let outcome = cli_process::finish(runner).await;
        outcome.expect_code(5, what);
        let result: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&result_file).unwrap()).unwrap();
        assert_eq!(result["error"]["kind"], "Store", "{what}: {result}");
        assert_eq!(result["error"]["storeKind"], kind, "{what}: {result}");
        assert!(
            !result.to_string().contains("not-the-secret"),
            "{what}: a secret leaked: {result}"
        );
    }
}
