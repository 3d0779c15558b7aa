//! Issue 8 §1 (operator side) and §3 against the real kube-apiserver, the kubelet stand-in
//! running the real `vertice-backup runner`, real PostgreSQL and the real S3 server (source
//! AND backup storage): a BackupRequest with a dump and a bucket copy succeeds only as one
//! backup — one manifest with both parts — and its status and metrics show the copy's counts
//! read from that manifest, run after run; a copy whose source
//! credentials are wrong fails with the store's error kind, leaves no manifest and does not
//! trip the breaker of the (healthy) backup storage.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/operator_env.rs"]
mod operator_env;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use operator_env::{BUCKET, Env, eventually, sample};
use serde_json::{Value, json};
use vertice_backup::api::BackupRequest;
use vertice_backup::api::backup_request::BackupResult;
use vertice_backup::api::run::{ErrorKind, RunPhase};
use vertice_backup::error::BackupError;

/// The bucket the runs copy from.
const SOURCE: &str = "uploads";
/// The folder copied: free-form, with a space and a non-ASCII letter.
const FOLDER: &str = "Documentos de 2024";

fn result(request: &BackupRequest) -> BackupResult {
    request
        .status
        .as_ref()
        .and_then(|status| status.result.clone())
        .unwrap_or_default()
}

/// Fills the source bucket through the S3 API; returns the bytes of the objects the copy
/// must take (inside the folder, not excluded).
async fn fill_source(env: &Env) -> u64 {
    env.s3.create_bucket(SOURCE).unwrap();
    let bucket = AmazonS3Builder::new()
        .with_endpoint(env.s3.endpoint())
        .with_region(env.s3.region())
        .with_bucket_name(SOURCE)
        .with_access_key_id(env.s3.access_key())
        .with_secret_access_key(env.s3.secret_key())
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap();
    let mut wanted = 0;
    for (key, size, copied) in [
        (format!("{FOLDER}/informe anual+final.txt"), 100, true),
        (format!("{FOLDER}/año/ñandú.pdf"), 2_000, true),
        (format!("{FOLDER}/a/b/c/d/e/f/deep.bin"), 5_000, true),
        (format!("{FOLDER}/thumbs/t.jpg"), 300, false),
        (format!("{FOLDER}/upload.tmp"), 40, false),
        ("elsewhere/outside.txt".to_owned(), 70, false),
    ] {
        let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        bucket
            .put(&Path::from(key.as_str()), PutPayload::from(bytes))
            .await
            .unwrap();
        if copied {
            wanted += size;
        }
    }
    wanted
}

fn object_store_part(credentials: &str) -> Value {
    json!({
        "source": {
            "store": "s3",
            "bucket": SOURCE,
            "endpoint": "ENDPOINT",
            "region": "REGION",
            "credentialsSecretRef": {"name": credentials},
        },
        "prefix": FOLDER,
        "exclude": ["**/thumbs/**", "*.tmp"],
    })
}

fn with_endpoint(env: &Env, mut part: Value) -> Value {
    part["source"]["endpoint"] = json!(env.s3.endpoint());
    part["source"]["region"] = json!(env.s3.region());
    part
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_and_a_bucket_copy_make_one_backup_with_the_copy_counts_in_status_and_metrics() {
    let mut env = Env::new("bucket-copy", true).await;
    let bytes = fill_source(&env).await;
    env.start_operator(&[], None).await;
    let part = with_endpoint(&env, object_store_part("s3"));

    env.inline_request(
        "first",
        json!({"objectStore": part, "projectId": "shop", "environment": "production"}),
        json!({}),
    )
    .await;
    let done = env.wait_phase("first", RunPhase::Succeeded).await;
    let first = result(&done);
    assert_eq!(first.object_count, Some(3), "{first:?}");
    assert_eq!(first.object_bytes, Some(bytes as i64), "{first:?}");
    assert_eq!(first.objects_copied, Some(3), "{first:?}");
    assert_eq!(first.objects_skipped, Some(0), "{first:?}");

    // The store's word: one manifest holding both parts.
    let manifest = env.manifest("first").await;
    assert!(
        manifest.raw_size > 10_000,
        "the dump part: {}",
        manifest.raw_size
    );
    let copy = manifest
        .bucket_copy
        .clone()
        .expect("the copy part in the manifest");
    assert_eq!(
        (
            copy.object_count,
            copy.total_bytes,
            copy.copied,
            copy.skipped
        ),
        (3, bytes, 3, 0)
    );
    assert!(copy.source.contains(SOURCE), "{}", copy.source);
    let (store, _dir) = env.store();
    let names = store.list_backup_names().await.unwrap();
    assert_eq!(names, vec!["first".to_owned()]);

    // A second run: its status shows what ITS manifest recorded. (Whether unchanged objects
    // are skipped is the engine's incremental rule, tested in `bucket_copy_incremental.rs`;
    // the S3 test server lists objects without ETags, so from it every object is copied.)
    env.inline_request(
        "second",
        json!({"objectStore": part, "projectId": "shop", "environment": "production"}),
        json!({}),
    )
    .await;
    let second = result(&env.wait_phase("second", RunPhase::Succeeded).await);
    let again = env.manifest("second").await.bucket_copy.unwrap();
    assert_eq!(again.object_count, 3);
    assert_eq!(again.copied + again.skipped, 3);
    let as_i64 = |value: u64| Some(value as i64);
    assert_eq!(
        (
            second.object_count,
            second.object_bytes,
            second.objects_copied,
            second.objects_skipped
        ),
        (
            as_i64(again.object_count),
            as_i64(again.total_bytes),
            as_i64(again.copied),
            as_i64(again.skipped)
        ),
        "{second:?}"
    );
    let mut names = store.list_backup_names().await.unwrap();
    names.sort();
    assert_eq!(names, vec!["first".to_owned(), "second".to_owned()]);

    // The counters add what each run's manifest recorded.
    let ns = env.name().to_owned();
    let series = |name: &str, backup: &str| {
        format!(
            r#"vertice_backup_{name}_total{{namespace="{ns}",backup="{backup}",project="shop",environment="production"}}"#
        )
    };
    let metrics = eventually("the object counters", || async {
        let metrics = env.metrics().await;
        sample(&metrics, &series("objects_skipped", "second"))
            .is_some()
            .then_some(metrics)
    })
    .await;
    for (name, backup, value) in [
        ("objects_copied", "first", 3),
        ("objects_skipped", "first", 0),
        ("objects_copied", "second", again.copied),
        ("objects_skipped", "second", again.skipped),
    ] {
        assert_eq!(
            sample(&metrics, &series(name, backup)),
            Some(value as f64),
            "{name} {backup}\n{metrics}"
        );
    }
    env.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_with_wrong_source_credentials_fails_as_a_storage_error_and_leaves_no_manifest() {
    let mut env = Env::new("bucket-copy-bad", true).await;
    fill_source(&env).await;
    env.secret(
        "wrong",
        &[
            ("AWS_ACCESS_KEY_ID", env.s3.access_key().to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "not-the-secret-key".to_owned()),
        ],
    )
    .await;
    env.start_operator(&[], None).await;

    // A copy alone and a dump plus a copy: both parts must succeed for a backup.
    for (name, with_dump) in [("copy-only", false), ("dump-and-copy", true)] {
        let mut spec = json!({
            "objectStore": with_endpoint(&env, object_store_part("wrong")),
            "storage": env.storage(),
            "encryption": env.encryption(),
        });
        if with_dump {
            spec["target"] = env.target(env.pg.port(), "db");
        }
        env.create_request(name, spec, json!({})).await;
        let failed = env.wait_phase(name, RunPhase::Failed).await;
        let failure = result(&failed);
        assert_eq!(
            failure.error_kind,
            Some(ErrorKind::StorageFailed),
            "{failure:?}"
        );
        assert_eq!(failure.object_count, None, "{failure:?}");
        let message = failure.error_message.unwrap_or_default();
        assert!(!message.contains("not-the-secret-key"), "{message}");
        let (store, _dir) = env.store();
        match store.read_manifest(name).await {
            Err(BackupError::NotFound(_)) => {}
            other => panic!("{name}: expected no manifest, got {other:?}"),
        }
    }

    // The backup storage is healthy: a failed SOURCE did not trip its breaker, so the next
    // run to it starts and succeeds instead of failing fast.
    env.inline_request(
        "after",
        json!({"objectStore": with_endpoint(&env, object_store_part("s3"))}),
        json!({}),
    )
    .await;
    let after = result(&env.wait_phase("after", RunPhase::Succeeded).await);
    assert_eq!(after.objects_copied, Some(3), "{after:?}");
    let _ = BUCKET;
    env.stop_operator().await;
}
