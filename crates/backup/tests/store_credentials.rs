//! Explicit credentials (`credentials: explicit` / `--credentials explicit` /
//! `BackupStore::open_explicit`): a store opened that way never uses the process's own cloud
//! identity. Each test gives the `vertice-backup` process VALID credentials in its
//! environment, shows the default (`environment`) mode uses them, and that explicit mode does
//! not: the real server (s3s-fs, Azurite) refuses the anonymous request, or (fake-gcs-server,
//! which checks no credentials) an unusable environment is never even read.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/cli_process.rs"]
mod cli_process;

use std::path::Path;

use cli_process::{Outcome, command, finish};
use serde_json::json;
use vertice_testkit::services::{Azurite, FakeGcs, S3Server};

/// `vertice-backup list --output json` with `flags` and `env`.
async fn list(flags: &[String], env: &[(&str, &str)]) -> Outcome {
    let mut list = command(
        ["list", "--output", "json"]
            .iter()
            .map(|s| s.to_string())
            .chain(flags.iter().cloned()),
    );
    list.envs(env.iter().copied());
    finish(list).await
}

fn flags(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

#[tokio::test]
async fn explicit_s3_credentials_never_come_from_the_environment() {
    let s3 = S3Server::start().await.unwrap();
    s3.create_bucket("backups").unwrap();
    let endpoint = s3.endpoint();
    let env = [
        ("AWS_ACCESS_KEY_ID", s3.access_key()),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_key()),
        ("AWS_REGION", s3.region()),
    ];
    let store = flags(&[
        "--store",
        "s3",
        "--bucket",
        "backups",
        "--endpoint",
        &endpoint,
    ]);

    // The environment's credentials are valid: the default mode lists the (empty) bucket.
    let default = list(&store, &env).await;
    default.expect_code(0, "environment credentials");
    assert_eq!(default.json(), json!([]));
    let named = list(
        &[store.clone(), flags(&["--credentials", "environment"])].concat(),
        &env,
    )
    .await;
    named.expect_code(0, "--credentials environment");

    // Explicit mode with no credentials file: unsigned, and the server refuses it.
    let explicit = list(
        &[store.clone(), flags(&["--credentials", "explicit"])].concat(),
        &env,
    )
    .await;
    explicit.expect_code(5, "explicit, no credentials");
    assert_eq!(
        explicit.json()["error"]["storeKind"],
        "Forbidden",
        "{}",
        explicit.stdout
    );

    // Explicit mode with a credentials file uses exactly that file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s3");
    std::fs::write(&file, format!("{}\n{}\n", s3.access_key(), s3.secret_key())).unwrap();
    let with_file = [
        store.clone(),
        flags(&[
            "--credentials",
            "explicit",
            "--credentials-file",
            &file.display().to_string(),
        ]),
    ]
    .concat();
    list(&with_file, &[])
        .await
        .expect_code(0, "explicit, credentials file");

    // The runner (the operator's Job) honours `storage.credentials` the same way.
    let result_file = dir.path().join("result.json");
    for (credentials, code, kind) in [("environment", 7, "NotFound"), ("explicit", 5, "Store")] {
        let spec = json!({"action": "verify", "name": "nightly", "encryption": {"disabled": true},
            "storage": {"store": "s3", "bucket": "backups", "endpoint": endpoint,
                        "credentials": credentials}});
        let mut runner = command([
            "runner".as_ref(),
            "--result-file".as_ref(),
            result_file.as_os_str(),
        ]);
        runner.env("VERTICE_BACKUP_SPEC", spec.to_string());
        runner.envs(env.iter().copied());
        let outcome = finish(runner).await;
        outcome.expect_code(code, credentials);
        let result = read_json(&result_file);
        assert_eq!(result["error"]["kind"], kind, "{credentials}: {result}");
        if credentials == "explicit" {
            assert_eq!(result["error"]["storeKind"], "Forbidden", "{result}");
        }
    }
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn explicit_azure_credentials_never_come_from_the_environment() {
    let azurite = Azurite::start().await.unwrap();
    azurite.create_container("backups").await.unwrap();
    let endpoint = azurite.endpoint();
    let env = [
        ("AZURE_STORAGE_ACCOUNT_NAME", azurite.account()),
        ("AZURE_STORAGE_ACCOUNT_KEY", azurite.account_key()),
    ];
    let store = flags(&[
        "--store",
        "azure",
        "--bucket",
        "backups",
        "--endpoint",
        &endpoint,
        "--account",
        azurite.account(),
    ]);
    list(&store, &env)
        .await
        .expect_code(0, "environment credentials");
    let explicit = list(
        &[store.clone(), flags(&["--credentials", "explicit"])].concat(),
        &env,
    )
    .await;
    explicit.expect_code(5, "explicit, no key: anonymous, refused");
    // Explicit mode takes the account from the config only.
    let no_account = flags(&[
        "--store",
        "azure",
        "--bucket",
        "backups",
        "--endpoint",
        &endpoint,
        "--credentials",
        "explicit",
    ]);
    let outcome = list(&no_account, &env).await;
    outcome.expect_code(3, "explicit, no --account");
    assert!(outcome.stdout.contains("--account"), "{}", outcome.stdout);
}

#[tokio::test]
async fn explicit_gcs_credentials_never_read_the_environment() {
    let gcs = FakeGcs::start().await.unwrap();
    gcs.create_bucket("backups").await.unwrap();
    let endpoint = gcs.endpoint();
    // A service account the environment names but nobody can read.
    let env = [(
        "GOOGLE_SERVICE_ACCOUNT",
        "/nonexistent/service-account.json",
    )];
    let store = flags(&[
        "--store",
        "gcs",
        "--bucket",
        "backups",
        "--endpoint",
        &endpoint,
    ]);
    let default = list(&store, &env).await;
    default.expect_code(3, "environment mode reads GOOGLE_SERVICE_ACCOUNT");
    assert!(
        default.stdout.contains("/nonexistent"),
        "{}",
        default.stdout
    );
    let explicit = list(
        &[store.clone(), flags(&["--credentials", "explicit"])].concat(),
        &env,
    )
    .await;
    explicit.expect_code(0, "explicit mode ignores it");
    assert_eq!(explicit.json(), json!([]));
}
