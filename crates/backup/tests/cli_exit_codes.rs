//! The `vertice-backup` binary as a user runs it: every data-path subcommand against a real
//! PostgreSQL server (testkit) and real stores, asserting the documented exit code, the result
//! JSON a script reads, and an error message that says what to do — never one holding a secret.
//!
//! Exit codes (see `src/cli/mod.rs`): 0 ok · 1 internal · 2 usage · 3 invalid configuration ·
//! 4 database · 5 object store · 6 integrity · 7 not found · 8 refused to overwrite ·
//! 9 drill counts differ · 130 cancelled.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[path = "support/cli_process.rs"]
mod cli_process;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cli_process::{
    Outcome, command, files_under, finish, names, postgres_flags, run, seed_shop, write_key,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;
use vertice_testkit::ports::free_port;
use vertice_testkit::services::Postgres;

/// Rows seeded into `shop.items`; the drill and the restore check them.
const ITEM_ROWS: u64 = 3000;

/// One PostgreSQL server for the whole file (starting one costs seconds); each test uses its
/// own store directory and its own restore database names.
static POSTGRES: OnceCell<Postgres> = OnceCell::const_new();

async fn postgres() -> &'static Postgres {
    POSTGRES
        .get_or_init(|| async {
            let server = Postgres::start().await.unwrap();
            seed_shop(&server, ITEM_ROWS).await;
            server
        })
        .await
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// `--output json` added to `args`.
fn json_args(args: &[String]) -> Vec<String> {
    let mut args = args.to_vec();
    args.extend(["--output".to_string(), "json".to_string()]);
    args
}

/// A failure the user must be able to act on.
struct Scenario {
    what: &'static str,
    args: Vec<String>,
    code: i32,
    kind: &'static str,
    message: &'static str,
}

impl Scenario {
    /// Runs the scenario as text (the message on stderr, nothing on stdout) and as JSON (one
    /// `{"error": …}` document on stdout with the same exit code).
    async fn check(&self) {
        let text = run(&self.args).await;
        text.expect_code(self.code, self.what);
        assert!(
            text.stderr.starts_with("error: ") && text.stderr.contains(self.message),
            "{}: stderr should say {:?}, got {:?}",
            self.what,
            self.message,
            text.stderr
        );
        assert!(
            text.stdout.is_empty(),
            "{}: a failure prints no result: {:?}",
            self.what,
            text.stdout
        );

        let json = run(json_args(&self.args)).await;
        json.expect_code(self.code, self.what);
        let error = &json.json()["error"];
        assert_eq!(error["kind"], self.kind, "{}: {error}", self.what);
        assert_eq!(error["exitCode"], self.code, "{}: {error}", self.what);
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|message| message.contains(self.message)),
            "{}: the JSON message should say {:?}: {error}",
            self.what,
            self.message
        );
    }
}

async fn database_exists(server: &Postgres, name: &str) -> bool {
    let found = server
        .sql(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
        ))
        .await
        .unwrap();
    found.trim() == "1"
}

#[tokio::test]
async fn a_postgres_backup_through_every_command() {
    let server = postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let store = path_arg(&dir.path().join("store"));
    let key = dir.path().join("backup.key");
    let wrong_key = dir.path().join("other.key");
    write_key(&key, 0x11);
    write_key(&wrong_key, 0x22);
    let key = path_arg(&key);
    let wrong_key = path_arg(&wrong_key);
    let source = postgres_flags(server, "shop", &dir.path().join("pw"));
    // `<command> --path <store> --name <name> --encryption-key-file <key> <more…> <tail…>`
    let on_store = |command: &str, name: &str, key: &str, more: &[&str], tail: &[String]| {
        [
            command,
            "--path",
            &store,
            "--name",
            name,
            "--encryption-key-file",
            key,
        ]
        .iter()
        .chain(more)
        .map(|arg| arg.to_string())
        .chain(tail.iter().cloned())
        .collect::<Vec<String>>()
    };

    // backup → 0, and the JSON a script reads: name, sizes, chunks, key, counts.
    let backup_args = on_store(
        "backup",
        "nightly",
        &key,
        &["--chunk-size", "65536"],
        &source,
    );
    let backup = run(json_args(&backup_args)).await;
    backup.expect_code(0, "backup");
    let result = backup.json();
    assert_eq!(result["name"], "nightly", "{result}");
    let raw_size = result["rawSize"].as_u64().unwrap();
    let stored_size = result["storedSize"].as_u64().unwrap();
    assert!(raw_size > 100_000, "a dump of {ITEM_ROWS} rows: {result}");
    assert!(
        stored_size > 0 && stored_size < raw_size,
        "compressed: {result}"
    );
    assert!(result["chunks"].as_u64().unwrap() >= 2, "{result}");
    assert!(result["objects"].as_u64().unwrap() >= 1, "{result}");
    assert!(result["keyId"].is_string(), "encrypted: {result}");
    assert_eq!(result["counts"]["rows"]["public"]["items"], ITEM_ROWS);
    assert!(result["store"].as_str().unwrap().contains(&store));

    // list → the backup with the same sizes.
    let list = run(["list", "--path", &store, "--output", "json"]).await;
    list.expect_code(0, "list");
    let listed = list.json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "nightly");
    assert_eq!(listed[0]["engine"], "postgres");
    assert_eq!(listed[0]["rawSize"], raw_size);
    assert_eq!(listed[0]["storedSize"], stored_size);
    let text_list = run(["list", "--path", &store]).await;
    text_list.expect_code(0, "list as text");
    assert!(
        text_list.stdout.starts_with("nightly\t"),
        "{}",
        text_list.stdout
    );

    // verify → 0, every chunk checked.
    let verify = run(json_args(&on_store("verify", "nightly", &key, &[], &[]))).await;
    verify.expect_code(0, "verify");
    let verified = verify.json();
    assert_eq!(verified["name"], "nightly");
    assert_eq!(verified["rawSize"], raw_size);
    assert_eq!(verified["chunks"], result["chunks"]);

    // restore into a new database → 0, and the rows are there.
    let restore_into = |target: &str| {
        on_store(
            "restore",
            "nightly",
            &key,
            &["--target-database", target],
            &source,
        )
    };
    let restore = run(json_args(&restore_into("shop_copy"))).await;
    restore.expect_code(0, "restore");
    let restored = restore.json();
    assert_eq!(restored["name"], "nightly");
    assert_eq!(restored["rawSize"], raw_size);
    assert_eq!(restored["target"]["database"], "shop_copy");
    let rows = server
        .sql_in("shop_copy", "SELECT count(*), sum(id) FROM items")
        .await
        .unwrap();
    assert_eq!(
        rows.trim(),
        format!("{ITEM_ROWS}|{}", ITEM_ROWS * (ITEM_ROWS + 1) / 2)
    );

    // What the user gets wrong, or what is not there: each its own code and message.
    let scenarios = [
        Scenario {
            what: "restore into a database that exists, without --overwrite",
            args: restore_into("shop_copy"),
            code: 8,
            kind: "TargetExists",
            message: "already exists; pass --overwrite",
        },
        Scenario {
            what: "a backup under a name that exists",
            args: backup_args.clone(),
            code: 8,
            kind: "AlreadyExists",
            message: "backup \"nightly\" already exists",
        },
        Scenario {
            what: "restore of a backup that is not in the store",
            args: on_store("restore", "weekly", &key, &[], &source),
            code: 7,
            kind: "NotFound",
            message: "backup \"weekly\" not found",
        },
        Scenario {
            what: "verify with a key that did not make the backup",
            args: on_store("verify", "nightly", &wrong_key, &[], &[]),
            code: 6,
            kind: "WrongKey",
            message: "wrong encryption key",
        },
    ];
    for scenario in &scenarios {
        scenario.check().await;
    }
    assert_eq!(
        server
            .sql_in("shop_copy", "SELECT count(*) FROM items")
            .await
            .unwrap()
            .trim(),
        ITEM_ROWS.to_string(),
        "the refused restore left the existing database alone"
    );

    // With --overwrite the same restore replaces it.
    server
        .sql_in("shop_copy", "DELETE FROM items WHERE id > 10")
        .await
        .unwrap();
    let mut overwrite = restore_into("shop_copy");
    overwrite.push("--overwrite".into());
    run(&overwrite).await.expect_code(0, "restore --overwrite");
    assert_eq!(
        server
            .sql_in("shop_copy", "SELECT count(*) FROM items")
            .await
            .unwrap()
            .trim(),
        ITEM_ROWS.to_string()
    );

    // drill → 0, with the dump-time and restored counts side by side.
    let drill = run(json_args(&on_store("drill", "nightly", &key, &[], &source))).await;
    drill.expect_code(0, "drill");
    let drilled = drill.json();
    assert_eq!(drilled["expected"]["rows"]["public"]["items"], ITEM_ROWS);
    assert_eq!(drilled["restored"], drilled["expected"], "{drilled}");
    assert_eq!(drilled["differences"], serde_json::json!([]));
    let scratch = drilled["scratchTarget"].as_str().unwrap();
    assert!(scratch.starts_with("vertice_drill_"), "{drilled}");
    assert!(
        !database_exists(server, scratch).await,
        "the drill's scratch database {scratch} was left behind"
    );

    // One flipped byte in a data object: verify and restore refuse with 6, nothing restored.
    let object = dir.path().join("store/nightly/data-000000.vbk");
    let mut bytes = std::fs::read(&object).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&object, &bytes).unwrap();
    let corrupted = [
        Scenario {
            what: "verify of a corrupted backup",
            args: on_store("verify", "nightly", &key, &[], &[]),
            code: 6,
            kind: "Integrity",
            message: "integrity check failed",
        },
        Scenario {
            what: "restore of a corrupted backup",
            args: restore_into("shop_from_corrupted"),
            code: 6,
            kind: "Integrity",
            message: "integrity check failed",
        },
    ];
    for scenario in &corrupted {
        scenario.check().await;
    }
    assert!(
        !database_exists(server, "shop_from_corrupted").await,
        "a restore that failed verification must not create its database"
    );
}

#[tokio::test]
async fn usage_and_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = path_arg(&dir.path().join("store"));
    let input = dir.path().join("input");
    std::fs::write(&input, b"some bytes").unwrap();
    let input = path_arg(&input);
    let short_key = dir.path().join("short.key");
    std::fs::write(&short_key, b"too short").unwrap();
    let args = |list: &[&str]| list.iter().map(|arg| arg.to_string()).collect::<Vec<_>>();

    // clap's own usage errors: exit 2 and a pointer to --help, nothing on stdout.
    for (what, bad) in [
        (
            "an unknown flag",
            args(&["backup", "--path", &store, "--bogus-flag"]),
        ),
        (
            "a missing required flag",
            args(&["restore", "--path", &store]),
        ),
        ("an unknown subcommand", args(&["backpu"])),
        (
            "an --output that does not exist",
            args(&["list", "--path", &store, "--output", "yaml"]),
        ),
    ] {
        let outcome = run(&bad).await;
        outcome.expect_code(2, what);
        assert!(
            outcome.stderr.starts_with("error: ") && outcome.stderr.contains("--help"),
            "{what}: {}",
            outcome.stderr
        );
        assert!(outcome.stdout.is_empty(), "{what}: {}", outcome.stdout);
    }
    let unknown = run(args(&["backup", "--path", &store, "--bogus-flag"])).await;
    assert!(
        unknown.stderr.contains("--bogus-flag"),
        "{}",
        unknown.stderr
    );

    let file_backup = |extra: &[&str]| {
        let mut all = args(&["backup", "--name", "x", "--from-file", &input]);
        all.extend(args(extra));
        all
    };
    let scenarios = [
        Scenario {
            what: "an s3 store without a bucket",
            args: file_backup(&["--store", "s3", "--no-encryption"]),
            code: 3,
            kind: "Config",
            message: "the s3 store needs --bucket",
        },
        Scenario {
            what: "a local store without a path",
            args: file_backup(&["--no-encryption"]),
            code: 3,
            kind: "Config",
            message: "the local store needs --path",
        },
        Scenario {
            what: "a zstd level out of range",
            args: file_backup(&[
                "--path",
                &store,
                "--no-encryption",
                "--compression-level",
                "25",
            ]),
            code: 3,
            kind: "Config",
            message: "zstd compression level must be 1–19, or a fast level from -7 to -1, not 25",
        },
        Scenario {
            what: "an unknown compression",
            args: file_backup(&["--path", &store, "--no-encryption", "--compression", "lz4"]),
            code: 3,
            kind: "Config",
            message: "unknown compression \"lz4\"",
        },
        Scenario {
            what: "no key and no --no-encryption",
            args: file_backup(&["--path", &store]),
            code: 3,
            kind: "Config",
            message: "backups are encrypted: give --encryption-key-file",
        },
        Scenario {
            what: "a key file that holds no key",
            args: file_backup(&[
                "--path",
                &store,
                "--encryption-key-file",
                &path_arg(&short_key),
            ]),
            code: 3,
            kind: "Config",
            message: "an encryption key must be 32 raw bytes",
        },
        Scenario {
            what: "nothing to back up",
            args: args(&["backup", "--path", &store, "--no-encryption", "--name", "x"]),
            code: 3,
            kind: "Config",
            message: "name a database",
        },
        Scenario {
            what: "a label without a value",
            args: file_backup(&["--path", &store, "--no-encryption", "--label", "team"]),
            code: 3,
            kind: "Config",
            message: "a label is key=value",
        },
    ];
    for scenario in &scenarios {
        scenario.check().await;
    }
    assert!(
        files_under(&dir.path().join("store")).is_empty(),
        "a refused backup wrote nothing"
    );
}

#[tokio::test]
async fn a_database_that_is_down_or_refuses_the_login_exits_4_without_the_password() {
    let server = postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let store = path_arg(&dir.path().join("store"));
    let secret = "Pw-9f3Kq-never-printed";
    // Nothing listens on a port that was just free: the server is down.
    let down_port = free_port().unwrap().to_string();
    let mut down = command([
        "backup",
        "--path",
        &store,
        "--no-encryption",
        "--name",
        "down",
        "--engine",
        "postgres",
        "--host",
        "127.0.0.1",
        "--port",
        &down_port,
        "--user",
        "postgres",
        "--database",
        "shop",
        "--password-env",
        "SHOP_DB_PASSWORD",
    ]);
    down.env("SHOP_DB_PASSWORD", secret);
    let outcome = finish(down).await;
    outcome.expect_code(4, "database down");
    assert!(
        outcome
            .stderr
            .contains("cannot connect to the Postgres server"),
        "{}",
        outcome.stderr
    );
    assert!(
        !outcome.everything().contains(secret),
        "the password leaked: {}",
        outcome.everything()
    );

    // The real server, a wrong password from a file: the login is refused, same code.
    let password_file = dir.path().join("wrong-pw");
    let mut flags = postgres_flags(server, "shop", &password_file);
    std::fs::write(&password_file, format!("{secret}\n")).unwrap();
    let mut args = vec![
        "backup".to_string(),
        "--path".into(),
        store.clone(),
        "--no-encryption".into(),
        "--name".into(),
        "refused".into(),
    ];
    args.append(&mut flags);
    for json in [false, true] {
        let outcome = if json {
            run(json_args(&args)).await
        } else {
            run(&args).await
        };
        outcome.expect_code(4, "wrong password");
        assert!(
            outcome
                .everything()
                .contains("password authentication failed"),
            "the message should say why: {}",
            outcome.everything()
        );
        assert!(
            !outcome.everything().contains(secret),
            "the password leaked: {}",
            outcome.everything()
        );
        if json {
            assert_eq!(outcome.json()["error"]["kind"], "Database");
        }
    }
    let listed = run(["list", "--path", &store, "--output", "json"]).await;
    listed.expect_code(0, "list");
    assert_eq!(listed.json(), serde_json::json!([]), "no backup was made");
}

#[tokio::test]
async fn an_object_store_nobody_answers_exits_5_without_the_secret_key() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::write(&input, vec![7u8; 200_000]).unwrap();
    let secret_key = "S3cretKey-0123456789-never-printed";
    let credentials = dir.path().join("s3-credentials");
    std::fs::write(
        &credentials,
        format!("AWS_ACCESS_KEY_ID=AKTEST\nAWS_SECRET_ACCESS_KEY={secret_key}\n"),
    )
    .unwrap();
    let endpoint = format!("http://127.0.0.1:{}", free_port().unwrap());
    let args = [
        "backup",
        "--store",
        "s3",
        "--bucket",
        "backups",
        "--endpoint",
        &endpoint,
        "--region",
        "us-east-1",
        "--credentials-file",
        &path_arg(&credentials),
        "--no-encryption",
        "--from-file",
        &path_arg(&input),
        "--name",
        "unreachable",
    ]
    .map(String::from)
    .to_vec();
    let started = std::time::Instant::now();
    Scenario {
        what: "an S3 endpoint where nothing listens",
        args: args.clone(),
        code: 5,
        kind: "Store",
        message: "object store",
    }
    .check()
    .await;
    let outcome = run(&args).await;
    assert!(
        outcome.stderr.contains(&endpoint),
        "the message should name where it tried: {}",
        outcome.stderr
    );
    assert!(
        !outcome.everything().contains(secret_key),
        "the secret key leaked: {}",
        outcome.everything()
    );
    eprintln!(
        "three runs against a dead S3 endpoint took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn prune_dry_run_explains_and_prune_deletes_exactly_that() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store = path_arg(&store_dir);
    let input = dir.path().join("input");
    std::fs::write(&input, b"a small file to back up\n".repeat(1000)).unwrap();
    let created = ["b1", "b2", "b3", "b4"];
    for name in created {
        run([
            "backup",
            "--path",
            &store,
            "--no-encryption",
            "--from-file",
            &path_arg(&input),
            "--name",
            name,
        ])
        .await
        .expect_code(0, name);
    }
    let listed_names = || async {
        let list = run(["list", "--path", &store, "--output", "json"]).await;
        list.expect_code(0, "list");
        names(&list.json())
    };
    assert_eq!(listed_names().await, created);

    // The plan: keep the two newest (rank 1 and 2), delete the others because no rule selects
    // them — newest first, as retention sorts them.
    let dry = run([
        "prune",
        "--path",
        &store,
        "--keep-last",
        "2",
        "--dry-run",
        "--output",
        "json",
    ])
    .await;
    dry.expect_code(0, "prune --dry-run");
    let plan = dry.json();
    assert_eq!(plan["dryRun"], true);
    assert_eq!(names(&plan["plan"]["delete"]), ["b2", "b1"], "{plan}");
    assert_eq!(names(&plan["plan"]["keep"]), ["b4", "b3"], "{plan}");
    for verdict in plan["plan"]["delete"].as_array().unwrap() {
        assert_eq!(
            verdict["reasons"],
            serde_json::json!([{"rule": "notSelected"}]),
            "{plan}"
        );
    }
    assert_eq!(
        plan["plan"]["keep"][0]["reasons"][0],
        serde_json::json!({"rule": "last", "rank": 1}),
        "{plan}"
    );
    let dry_text = run(["prune", "--path", &store, "--keep-last", "2", "--dry-run"]).await;
    dry_text.expect_code(0, "prune --dry-run as text");
    for line in [
        "would delete b1: ",
        "would delete b2: ",
        "keep b4: ",
        "keep b3: ",
    ] {
        assert!(dry_text.stdout.contains(line), "{}", dry_text.stdout);
    }
    assert_eq!(listed_names().await, created, "a dry run deletes nothing");

    // The real prune deletes exactly the planned two, manifests and data.
    let pruned = run([
        "prune",
        "--path",
        &store,
        "--keep-last",
        "2",
        "--output",
        "json",
    ])
    .await;
    pruned.expect_code(0, "prune");
    let pruned = pruned.json();
    assert_eq!(pruned["dryRun"], false);
    assert_eq!(names(&pruned["plan"]["delete"]), ["b2", "b1"]);
    assert_eq!(listed_names().await, ["b3", "b4"]);
    let left: Vec<PathBuf> = files_under(&store_dir);
    assert!(
        left.iter()
            .all(|file| !file.starts_with(store_dir.join("b1"))
                && !file.starts_with(store_dir.join("b2"))),
        "objects of pruned backups are left: {left:?}"
    );
    assert!(
        left.iter()
            .any(|file| file.starts_with(store_dir.join("b3"))),
        "{left:?}"
    );
}

/// Whether `pid` has a handler installed for SIGINT (bit 1 of `SigCgt` in /proc): before that,
/// SIGINT would kill the process instead of cancelling the backup.
fn catches_sigint(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (2 - 1)) != 0)
}

/// The `read` system call's number, as `/proc/<pid>/task/<tid>/syscall` shows it.
#[cfg(target_arch = "aarch64")]
const READ_SYSCALL: &str = "63";
#[cfg(not(target_arch = "aarch64"))]
const READ_SYSCALL: &str = "0";

/// Whether a thread of `pid` is blocked reading its stdin (fd 0): it has consumed everything
/// written so far and waits for more, the state a slow dump leaves it in.
fn waits_on_stdin(pid: u32) -> bool {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    threads.flatten().any(|thread| {
        let syscall = std::fs::read_to_string(thread.path().join("syscall")).unwrap_or_default();
        let wchan = std::fs::read_to_string(thread.path().join("wchan")).unwrap_or_default();
        syscall.starts_with(&format!("{READ_SYSCALL} 0x0 ")) || wchan.ends_with("pipe_read")
    })
}

#[tokio::test]
async fn sigint_cancels_a_running_backup_and_leaves_no_backup() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store = path_arg(&store_dir);
    let mut backup = command([
        "backup",
        "--path",
        &store,
        "--no-encryption",
        "--from-file",
        "-",
        "--name",
        "interrupted",
        "--chunk-size",
        "65536",
    ]);
    backup.stdin(std::process::Stdio::piped());
    let mut child = backup.spawn().unwrap();
    let pid = child.id().unwrap();
    // A dump that is still running: some data, and the pipe stays open.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&vec![42u8; 1024 * 1024]).await.unwrap();
    stdin.flush().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(catches_sigint(pid) && waits_on_stdin(pid)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the backup never installed its SIGINT handler or never waited for more input"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    // The pipe is still open: the process must not wait for it to end.
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("the cancelled backup did not exit while its stdin stayed open")
        .unwrap();
    drop(stdin);
    let outcome = Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    outcome.expect_code(130, "SIGINT");
    assert!(outcome.stderr.contains("cancelled"), "{}", outcome.stderr);
    assert!(
        files_under(&store_dir).is_empty(),
        "a cancelled backup leaves nothing: {:?}",
        files_under(&store_dir)
    );
    let list = run(["list", "--path", &store, "--output", "json"]).await;
    list.expect_code(0, "list");
    assert_eq!(list.json(), serde_json::json!([]));
}
