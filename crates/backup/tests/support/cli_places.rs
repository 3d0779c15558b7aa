//! Where the CLI store-safety tests write (a local directory or a bucket on a real S3 server),
//! and the `vertice-backup` runs they start there.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use vertice_testkit::services::S3Server;

use crate::cli_process::{Outcome, command, names, run};

pub fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// Where the tests write: a local directory, or a bucket on a running S3 server.
pub enum Place {
    Local(PathBuf),
    S3 {
        server: Box<S3Server>,
        credentials: PathBuf,
    },
}

impl Place {
    pub async fn s3(dir: &Path) -> Place {
        let server = S3Server::start().await.unwrap();
        server.create_bucket("backups").unwrap();
        let credentials = dir.join("s3-credentials");
        std::fs::write(&credentials, server.credentials_file()).unwrap();
        Place::S3 {
            server: Box::new(server),
            credentials,
        }
    }

    /// The store flags for `prefix`.
    pub fn flags(&self, prefix: &str) -> Vec<String> {
        let mut flags = match self {
            Place::Local(path) => vec!["--path".to_string(), arg(path)],
            Place::S3 {
                server,
                credentials,
            } => [
                "--store",
                "s3",
                "--bucket",
                "backups",
                "--endpoint",
                &server.endpoint(),
                "--region",
                server.region(),
                "--credentials-file",
                &arg(credentials),
            ]
            .map(String::from)
            .to_vec(),
        };
        flags.extend(["--prefix".to_string(), prefix.to_string()]);
        flags
    }

    /// The bytes of object `key` (relative to the store root or bucket), if it exists.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        let path = match self {
            Place::Local(root) => root.join(key),
            Place::S3 { server, .. } => server.object_path("backups", key),
        };
        std::fs::read(path).ok()
    }

    pub fn write_object(&self, key: &str, bytes: &[u8]) {
        let path = match self {
            Place::Local(root) => root.join(key),
            Place::S3 { server, .. } => server.object_path("backups", key),
        };
        std::fs::write(path, bytes).unwrap();
    }
}

pub fn args(head: &[&str], tail: &[String]) -> Vec<String> {
    head.iter()
        .map(|arg| arg.to_string())
        .chain(tail.iter().cloned())
        .collect()
}

pub async fn listed(place: &Place, prefix: &str) -> Vec<String> {
    let list = run(args(&["list", "--output", "json"], &place.flags(prefix))).await;
    list.expect_code(0, "list");
    names(&list.json())
}

pub async fn backup_file(place: &Place, prefix: &str, name: &str, file: &Path) -> Outcome {
    run(args(
        &[
            "backup",
            "--no-encryption",
            "--from-file",
            &arg(file),
            "--name",
            name,
        ],
        &place.flags(prefix),
    ))
    .await
}

pub async fn restored(place: &Place, prefix: &str, name: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join(format!("restored-{name}-{}", rand_suffix()));
    run(args(
        &[
            "restore",
            "--no-encryption",
            "--name",
            name,
            "--to-file",
            &arg(&out),
        ],
        &place.flags(prefix),
    ))
    .await
    .expect_code(0, "restore --to-file");
    std::fs::read(&out).unwrap()
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// `len` bytes that differ by `seed`.
pub fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2] ^ seed)
        .collect()
}

/// A `backup --from-file -` whose stdin stays open: it has read `head`, and waits for more.
pub struct OpenBackup {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    data: Vec<u8>,
}

impl OpenBackup {
    pub async fn start(place: &Place, prefix: &str, name: Option<&str>, data: Vec<u8>) -> Self {
        let mut list = vec!["backup", "--no-encryption", "--from-file", "-"];
        if let Some(name) = name {
            list.extend(["--name", name]);
        }
        let mut backup = command(args(&list, &place.flags(prefix)));
        backup.stdin(Stdio::piped());
        let mut child = backup.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // A run that lost the name exits and closes its end: the write may fail.
        let _ = stdin.write_all(&data[..data.len() / 2]).await;
        let _ = stdin.flush().await;
        OpenBackup {
            child,
            stdin: Some(stdin),
            data,
        }
    }

    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    pub async fn finish(mut self) -> (Vec<u8>, Outcome) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(&self.data[self.data.len() / 2..]).await;
            drop(stdin);
        }
        let output = tokio::time::timeout(Duration::from_secs(120), self.child.wait_with_output())
            .await
            .expect("the backup did not finish")
            .unwrap();
        let outcome = Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        (self.data, outcome)
    }
}
