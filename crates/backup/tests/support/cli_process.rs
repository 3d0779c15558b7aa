//! Runs the real `vertice-backup` binary as a child process, the way a user's shell or the
//! operator's Job does, and keeps its exit code, stdout and stderr for the assertions.
//!
//! Include it from a test file with
//! `#[path = "support/cli_process.rs"] mod cli_process;`.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;

/// The flags naming `database` on `server`, with the password read from `password_file`.
pub fn postgres_flags(
    server: &vertice_testkit::services::Postgres,
    database: &str,
    password_file: &Path,
) -> Vec<String> {
    std::fs::write(password_file, format!("{}\n", server.password())).unwrap();
    [
        "--engine",
        "postgres",
        "--host",
        server.host(),
        "--port",
        &server.port().to_string(),
        "--user",
        server.superuser(),
        "--database",
        database,
        "--password-file",
        &password_file.display().to_string(),
        "--bin-dir",
        &server.bin_dir().display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// Creates database `shop` on `server` with a table `items` of `rows` rows (ids 1..=rows), the
/// data the CLI tests back up, restore and drill.
pub async fn seed_shop(server: &vertice_testkit::services::Postgres, rows: u64) {
    server.create_database("shop").await.unwrap();
    server
        .sql_in(
            "shop",
            &format!(
                "CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
                 INSERT INTO items SELECT i, 'item ' || md5(i::text)
                   FROM generate_series(1, {rows}) i;"
            ),
        )
        .await
        .unwrap();
}

/// The binary Cargo built for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_vertice-backup");

/// Environment variables the binary (or the libraries it uses) would read on their own: removed
/// from every child, so a developer's shell cannot change what a test sees.
const AMBIENT_VARS: &[&str] = &[
    "VERTICE_BACKUP_SPEC",
    "VERTICE_BACKUP_KEY_FILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
];

/// A finished run of the binary.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code; `None` when a signal killed it.
    pub code: Option<i32>,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl Outcome {
    /// Fails unless the run exited with `code`, showing both streams.
    pub fn expect_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: expected exit code {code}\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Stdout as the one JSON document `--output json` promises.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|error| {
            panic!(
                "stdout is not one JSON document ({error})\nstdout: {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Both streams, for "this never appears anywhere" checks.
    pub fn everything(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// The `name` of each entry of a JSON array the binary printed: a `list`, or the `keep` or
/// `delete` side of a prune plan. Panics on anything else.
pub fn names(entries: &serde_json::Value) -> Vec<String> {
    entries
        .as_array()
        .unwrap_or_else(|| panic!("not a JSON array: {entries}"))
        .iter()
        .map(|entry| {
            entry["name"]
                .as_str()
                .unwrap_or_else(|| panic!("an entry without a name: {entry}"))
                .to_string()
        })
        .collect()
}

/// A command for the binary with a clean environment for its own variables.
pub fn command<I, S>(args: I) -> tokio::process::Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in AMBIENT_VARS {
        command.env_remove(var);
    }
    command
}

/// Runs `command` to the end.
pub async fn finish(mut command: tokio::process::Command) -> Outcome {
    let output = command.output().await.expect("starting vertice-backup");
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the binary with `args`.
pub async fn run<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    finish(command(args)).await
}

/// Writes a key-encryption key file (64 hex digits of `byte`), as a mounted Secret would hold.
pub fn write_key(path: &Path, byte: u8) {
    std::fs::write(path, format!("{byte:02x}").repeat(32)).expect("writing a key file");
}

/// Every path under `dir` that is a file (not a directory), sorted.
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
