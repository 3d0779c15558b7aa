//! `vertice-backup runner`, what the operator's Job runs: one spec (a YAML file with `--spec`,
//! or inline JSON in `VERTICE_BACKUP_SPEC`) drives a backup, restore, verify or drill of a real
//! PostgreSQL server through the real S3 server, and the result lands in `--result-file` (the
//! Job's termination message). Secrets are only referenced by the spec, and appear nowhere in
//! what the runner prints or writes; a spec that is wrong exits 3 and names what is wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/cli_process.rs"]
mod cli_process;

use std::path::{Path, PathBuf};

use cli_process::{Outcome, command, finish, seed_shop, write_key};
use serde_json::{Value, json};
use vertice_testkit::services::{Postgres, S3Server};

const ITEM_ROWS: u64 = 2500;

/// Runs `runner` with the spec in a file, writing the result to `result_file`.
async fn runner_with_file(spec: &Path, result_file: &Path, env: &[(&str, &str)]) -> Outcome {
    let mut runner = command([
        "runner".as_ref(),
        "--spec".as_ref(),
        spec.as_os_str(),
        "--result-file".as_ref(),
        result_file.as_os_str(),
    ]);
    runner.envs(env.iter().copied());
    finish(runner).await
}

/// Runs `runner` with the spec inline in `VERTICE_BACKUP_SPEC`.
async fn runner_with_env(spec: &str, result_file: &Path, env: &[(&str, &str)]) -> Outcome {
    let mut runner = command([
        "runner".as_ref(),
        "--result-file".as_ref(),
        result_file.as_os_str(),
    ]);
    runner.env("VERTICE_BACKUP_SPEC", spec);
    runner.envs(env.iter().copied());
    finish(runner).await
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("reading the result file {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("result file {text:?}: {error}"))
}

/// Everything the runner printed and wrote, for the "no secret anywhere" check.
fn assert_no_secret(outcome: &Outcome, result_file: &Path, secrets: &[&str]) {
    let written = std::fs::read_to_string(result_file).unwrap_or_default();
    for secret in secrets {
        assert!(
            !outcome.everything().contains(secret) && !written.contains(secret),
            "a secret leaked:\n{}\n{written}",
            outcome.everything()
        );
    }
}

/// The pieces of a spec for the test servers; secrets only as file or env references.
struct Fixture {
    server: Postgres,
    s3: S3Server,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `source` section; the password comes from `password`, a reference.
    fn source(&self, database: &str, password: Value) -> Value {
        json!({
            "engine": "postgres",
            "host": self.server.host(),
            "port": self.server.port(),
            "user": self.server.superuser(),
            "database": database,
            "password": password,
            "binDir": self.server.bin_dir(),
        })
    }

    /// The `storage` section for the S3 server, credentials from a file.
    fn storage(&self) -> Value {
        json!({
            "store": "s3",
            "bucket": "backups",
            "endpoint": self.s3.endpoint(),
            "region": self.s3.region(),
            "prefix": "team/shop",
            "credentialsFile": self.path("s3-credentials"),
        })
    }

    fn encryption(&self) -> Value {
        json!({"keyFile": self.path("backup.key")})
    }
}

#[tokio::test]
async fn backup_restore_verify_and_drill_through_s3() {
    let started = std::time::Instant::now();
    let (server, s3) = tokio::join!(Postgres::start(), S3Server::start());
    let (server, s3) = (server.unwrap(), s3.unwrap());
    eprintln!("postgres and s3s-fs started in {:?}", started.elapsed());
    s3.create_bucket("backups").unwrap();
    seed_shop(&server, ITEM_ROWS).await;
    let fixture = Fixture {
        server,
        s3,
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::write(
        fixture.path("s3-credentials"),
        fixture.s3.credentials_file(),
    )
    .unwrap();
    std::fs::write(
        fixture.path("db-password"),
        format!("{}\n", fixture.server.password()),
    )
    .unwrap();
    write_key(&fixture.path("backup.key"), 0x5a);
    let key_hex = std::fs::read_to_string(fixture.path("backup.key")).unwrap();
    let password = fixture.server.password().to_owned();
    let secrets = [password.as_str(), fixture.s3.secret_key(), key_hex.as_str()];
    let by_file = json!({"file": fixture.path("db-password")});
    let by_env = json!({"env": "SHOP_DB_PASSWORD"});
    let password_env = [("SHOP_DB_PASSWORD", password.as_str())];
    let result_file = fixture.path("result.json");

    // backup: a YAML spec file, the password from a file.
    let spec = json!({
        "action": "backup",
        "name": "nightly",
        "source": fixture.source("shop", by_file.clone()),
        "storage": fixture.storage(),
        "compression": "zstd",
        "compressionLevel": 5,
        "chunkSize": 65536,
        "encryption": fixture.encryption(),
        "labels": {"schedule": "nightly"},
    });
    let yaml = serde_yaml::to_string(&spec).unwrap();
    for secret in secrets {
        assert!(!yaml.contains(secret), "the spec itself holds a secret");
    }
    let spec_file = fixture.path("backup.yaml");
    std::fs::write(&spec_file, &yaml).unwrap();
    let backup = runner_with_file(&spec_file, &result_file, &[]).await;
    backup.expect_code(0, "runner backup");
    let result = backup.json();
    assert_eq!(read_json(&result_file), result, "the result file is stdout");
    assert_eq!(result["name"], "nightly");
    assert!(result["rawSize"].as_u64().unwrap() > 50_000, "{result}");
    assert!(result["storedSize"].as_u64().unwrap() > 0, "{result}");
    assert_eq!(result["counts"]["rows"]["public"]["items"], ITEM_ROWS);
    assert!(
        result["store"].as_str().unwrap().contains("s3://backups"),
        "{result}"
    );
    assert!(
        fixture
            .s3
            .object_path("backups", "team/shop/nightly/manifest.json")
            .is_file(),
        "the manifest is in the S3 server under the prefix"
    );
    assert!(fixture.s3.pending_multipart_uploads().unwrap().is_empty());
    assert_no_secret(&backup, &result_file, &secrets);

    // The same store through the plain CLI flags: the labels and the compression are recorded.
    let list = finish(command([
        "list".as_ref(),
        "--store".as_ref(),
        "s3".as_ref(),
        "--bucket".as_ref(),
        "backups".as_ref(),
        "--endpoint".as_ref(),
        fixture.s3.endpoint().as_ref(),
        "--region".as_ref(),
        fixture.s3.region().as_ref(),
        "--prefix".as_ref(),
        "team/shop".as_ref(),
        "--credentials-file".as_ref(),
        fixture.path("s3-credentials").as_os_str(),
        "--output".as_ref(),
        "json".as_ref(),
    ]))
    .await;
    list.expect_code(0, "list");
    let listed = list.json();
    assert_eq!(listed[0]["name"], "nightly", "{listed}");
    assert_eq!(listed[0]["labels"], json!({"schedule": "nightly"}));
    assert_eq!(listed[0]["compression"], "zstd");

    // restore: inline JSON in the environment, the password from an environment variable.
    let spec = json!({
        "action": "restore",
        "name": "nightly",
        "source": fixture.source("shop", by_env.clone()),
        "storage": fixture.storage(),
        "encryption": fixture.encryption(),
        "restore": {"targetDatabase": "shop_restored"},
    });
    let restore = runner_with_env(&spec.to_string(), &result_file, &password_env).await;
    restore.expect_code(0, "runner restore");
    let restored = read_json(&result_file);
    assert_eq!(restored, restore.json());
    assert_eq!(restored["target"]["database"], "shop_restored");
    assert_eq!(restored["rawSize"], result["rawSize"]);
    let rows = fixture
        .server
        .sql_in("shop_restored", "SELECT count(*), sum(id) FROM items")
        .await
        .unwrap();
    assert_eq!(
        rows.trim(),
        format!("{ITEM_ROWS}|{}", ITEM_ROWS * (ITEM_ROWS + 1) / 2)
    );
    assert_no_secret(&restore, &result_file, &secrets);

    // The same restore again: the database exists and the spec does not allow overwriting.
    let again = runner_with_env(&spec.to_string(), &result_file, &password_env).await;
    again.expect_code(8, "runner restore into an existing database");
    assert_eq!(read_json(&result_file)["error"]["kind"], "TargetExists");
    assert_eq!(read_json(&result_file)["error"]["exitCode"], 8);

    // verify: a YAML file again; the record it leaves is in the store.
    let spec = json!({
        "action": "verify",
        "name": "nightly",
        "storage": fixture.storage(),
        "encryption": fixture.encryption(),
    });
    std::fs::write(
        fixture.path("verify.yaml"),
        serde_yaml::to_string(&spec).unwrap(),
    )
    .unwrap();
    let verify = runner_with_file(&fixture.path("verify.yaml"), &result_file, &[]).await;
    verify.expect_code(0, "runner verify");
    let verified = read_json(&result_file);
    assert_eq!(verified["name"], "nightly");
    assert_eq!(verified["rawSize"], result["rawSize"]);
    assert_eq!(verified["chunks"], result["chunks"]);
    assert!(
        fixture
            .s3
            .object_path("backups", "team/shop/nightly/verification.json")
            .is_file(),
        "a passed verify is recorded for retention"
    );

    // drill: inline JSON; the counts restored match those taken at dump time.
    let spec = json!({
        "action": "drill",
        "name": "nightly",
        "source": fixture.source("postgres", by_env),
        "storage": fixture.storage(),
        "encryption": fixture.encryption(),
    });
    let drill = runner_with_env(&spec.to_string(), &result_file, &password_env).await;
    drill.expect_code(0, "runner drill");
    let drilled = read_json(&result_file);
    assert_eq!(drilled["expected"]["rows"]["public"]["items"], ITEM_ROWS);
    assert_eq!(drilled["restored"], drilled["expected"]);
    assert_eq!(drilled["differences"], json!([]));
    assert_no_secret(&drill, &result_file, &secrets);

    // The wrong key in the spec: integrity, 6, and the result file says so.
    write_key(&fixture.path("other.key"), 0x77);
    let spec = json!({
        "action": "verify",
        "name": "nightly",
        "storage": fixture.storage(),
        "encryption": {"keyFile": fixture.path("other.key")},
    });
    let wrong = runner_with_env(&spec.to_string(), &result_file, &[]).await;
    wrong.expect_code(6, "runner verify with the wrong key");
    assert_eq!(read_json(&result_file)["error"]["kind"], "WrongKey");
}

/// A spec the runner must refuse with exit 3, and what its message must say.
struct BadSpec {
    what: &'static str,
    spec: String,
    says: &'static str,
}

#[tokio::test]
async fn a_wrong_spec_exits_3_and_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let inline_password = "Inl1ned-Pa55word-never-shown";
    let local = json!({"store": "local", "path": store});
    let source =
        json!({"engine": "postgres", "host": "127.0.0.1", "user": "app", "database": "app"});
    let with = |extra: Value| {
        let mut spec =
            json!({"action": "backup", "storage": local, "encryption": {"disabled": true}});
        for (key, value) in extra.as_object().unwrap() {
            spec[key] = value.clone();
        }
        spec.to_string()
    };
    let mut inline_source = source.clone();
    inline_source["password"] = json!(inline_password);
    let mut numeric_source = source.clone();
    numeric_source["password"] = json!(90817263);
    let cases = [
        BadSpec {
            what: "an unknown top-level field",
            spec: with(json!({"retention": {"keepLast": 3}})),
            says: "unknown field `retention`",
        },
        BadSpec {
            what: "an action that does not exist",
            spec: with(json!({"action": "explode"})),
            says: "action: unknown variant `explode`, expected one of `backup`, `restore`",
        },
        BadSpec {
            what: "a misspelt storage field",
            spec: with(
                json!({"storage": {"store": "local", "path": store, "credentialFile": "/x"}}),
            ),
            says: "unknown field `credentialFile`",
        },
        BadSpec {
            what: "a store kind that does not exist",
            spec: with(json!({"storage": {"store": "ftp", "path": store}})),
            says: "unknown variant `ftp`",
        },
        BadSpec {
            what: "a misspelt encryption field",
            spec: with(json!({"encryption": {"keyfile": "/k"}})),
            says: "unknown field `keyfile`",
        },
        BadSpec {
            what: "a password inlined as a string",
            spec: with(json!({"source": inline_source})),
            says: "never inline",
        },
        BadSpec {
            what: "a password inlined as a number",
            spec: with(json!({"source": numeric_source})),
            says: "never inline",
        },
        BadSpec {
            what: "a restore without a backup name",
            spec: with(json!({"action": "restore", "source": source})),
            says: "the spec needs a name",
        },
        BadSpec {
            what: "a compression level out of range",
            spec: with(json!({"compressionLevel": 40, "source": source})),
            says: "zstd compression level must be 1–19, or a fast level from -7 to -1, not 40",
        },
    ];
    let result_file = dir.path().join("result.json");
    for case in &cases {
        // The same spec as inline JSON and as a file: the same answer, in both places.
        let spec_file = dir.path().join("spec.yaml");
        std::fs::write(&spec_file, &case.spec).unwrap();
        for inline in [true, false] {
            let outcome = if inline {
                runner_with_env(&case.spec, &result_file, &[]).await
            } else {
                runner_with_file(&spec_file, &result_file, &[]).await
            };
            outcome.expect_code(3, case.what);
            let error = outcome.json();
            assert_eq!(error["error"]["kind"], "Config", "{}: {error}", case.what);
            assert_eq!(error["error"]["exitCode"], 3, "{}: {error}", case.what);
            let message = error["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(case.says),
                "{}: the message should say {:?}: {message}",
                case.what,
                case.says
            );
            assert_eq!(
                read_json(&result_file),
                error,
                "{}: the result file holds the same error",
                case.what
            );
            assert_no_secret(&outcome, &result_file, &[inline_password, "90817263"]);
            std::fs::remove_file(&result_file).unwrap();
        }
    }

    // No spec at all, or one that is not there.
    let missing = runner_with_file(&dir.path().join("absent.yaml"), &result_file, &[]).await;
    missing.expect_code(3, "a spec file that does not exist");
    assert!(
        missing.stdout.contains("cannot read the spec"),
        "{}",
        missing.stdout
    );
    let none = finish(command(["runner"])).await;
    none.expect_code(3, "no spec");
    assert!(
        none.stdout
            .contains("give --spec or set VERTICE_BACKUP_SPEC"),
        "{}",
        none.stdout
    );
    assert!(
        cli_process::files_under(&store).is_empty(),
        "a refused spec wrote nothing"
    );
}
