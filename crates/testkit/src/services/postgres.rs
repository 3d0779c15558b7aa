//! A real PostgreSQL 15 server (Debian `postgresql`) in a temporary directory.
//!
//! `initdb` and `postgres` refuse to run as root, so under root they run as the `postgres` OS
//! user through `setpriv`, which execs (the PID we hold is the server's own, so stop and kill
//! reach it). The superuser has a password checked with SCRAM over TCP; the Unix socket in the
//! temporary directory trusts local connections.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::lifecycle::{ManagedProcess, lifecycle_methods, retry_restart, start_on_free_port};
use super::{HOST, chown, os_user_ids, percent_encode, random_secret, run_output, running_as_root};
use crate::tools::system_binary;

/// Where Debian puts the PostgreSQL 15 binaries (not on PATH).
const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The OS user the server runs as when the tests run as root.
const OS_USER: &str = "postgres";
/// How many times a restart tries: after a SIGKILL, the old backends notice the postmaster is
/// gone only after a moment, and until then a new postmaster refuses their shared memory.
const RESTART_ATTEMPTS: usize = 5;

/// How to start a [`Postgres`].
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Name of the superuser `initdb` creates.
    pub superuser: String,
    /// Its password; a random one when `None`.
    pub password: Option<String>,
    /// Extra server settings, passed as `-c name=value`.
    pub settings: Vec<(String, String)>,
    /// Extra environment of the server process, e.g. `LOCPATH` to give it locales the
    /// machine does not have installed.
    pub env: Vec<(String, String)>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            superuser: "postgres".to_owned(),
            password: None,
            settings: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// A running PostgreSQL server; stopped and its directory removed on drop.
pub struct Postgres {
    process: ManagedProcess,
    port: u16,
    superuser: String,
    password: String,
    settings: Vec<(String, String)>,
    env: Vec<(String, String)>,
    bin_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    os_user: Option<(u32, u32)>,
}

lifecycle_methods!(Postgres);

impl Postgres {
    /// Starts a server with a superuser `postgres` and a random password.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(PostgresOptions::default()).await
    }

    /// Starts a server as `options` say.
    pub async fn start_with(options: PostgresOptions) -> anyhow::Result<Self> {
        let initdb = system_binary("initdb", &[BIN_DIR], "postgresql")?;
        let postgres = system_binary("postgres", &[BIN_DIR], "postgresql")?;
        system_binary("psql", &[BIN_DIR], "postgresql-client")?;
        let bin_dir = postgres
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(BIN_DIR));
        let os_user = if running_as_root() {
            Some(os_user_ids(OS_USER)?)
        } else {
            None
        };

        // SIGTERM is a "smart" shutdown that waits for every client to disconnect; SIGINT is
        // the fast one, which disconnects them.
        let process = ManagedProcess::new("postgres", "postgres")?.with_stop_signal("INT");
        let dir = process.dir().to_path_buf();
        chown(&dir, os_user)?;
        let data_dir = dir.join("data");
        let password = options.password.unwrap_or_else(|| random_secret(24));

        // initdb reads the password from a file so it never shows on a command line.
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).context("writing the password file")?;
        chown(&pwfile, os_user)?;
        let mut command = as_os_user(&initdb, os_user.is_some());
        command
            .current_dir(&dir)
            .env("LC_ALL", "C")
            .arg("-D")
            .arg(&data_dir)
            .arg(format!("--username={}", options.superuser))
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]);
        run_output(command, "initdb").await?;
        let _ = std::fs::remove_file(&pwfile);

        let mut server = Self {
            process,
            port: 0,
            superuser: options.superuser,
            password,
            settings: options.settings,
            env: options.env,
            bin_dir,
            socket_dir: dir,
            data_dir,
            os_user,
        };
        start_on_free_port(async |port| {
            server.port = port;
            server.spawn_and_wait().await
        })
        .await?;
        Ok(server)
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let mut command = as_os_user(&self.bin_dir.join("postgres"), self.os_user.is_some());
        command
            .current_dir(self.process.dir())
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .envs(self.env.iter().map(|(name, value)| (name, value)));
        let mut settings = vec![
            ("listen_addresses".to_owned(), HOST.to_owned()),
            (
                "unix_socket_directories".to_owned(),
                self.socket_dir.display().to_string(),
            ),
            // Durability is not what these tests check; speed is welcome.
            ("fsync".to_owned(), "off".to_owned()),
            ("synchronous_commit".to_owned(), "off".to_owned()),
            ("full_page_writes".to_owned(), "off".to_owned()),
        ];
        settings.extend(self.settings.iter().cloned());
        for (name, value) in settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        let process = self
            .process
            .spawn_ready(command, "SELECT 1 over TCP", || async {
                let probe = self.psql_command_raw(&["-c", "SELECT 1"]);
                Ok(run_output(probe, "psql").await.is_ok())
            })
            .await?;
        self.process.adopt(process);
        Ok(())
    }

    /// The address it listens on (`127.0.0.1`).
    pub fn host(&self) -> &str {
        HOST
    }

    /// Its TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding its Unix socket (`.s.PGSQL.<port>`); local connections there are
    /// trusted without a password.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The superuser's name.
    pub fn superuser(&self) -> &str {
        &self.superuser
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The data directory (PGDATA).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory of the matching client tools (`psql`, `pg_dump`, `pg_restore`, …).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// A `postgresql://` URL for `database` with the superuser's credentials (alphanumeric
    /// generated passwords need no escaping; a custom one is percent-encoded).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql://{}:{}@{HOST}:{}/{}",
            percent_encode(&self.superuser),
            percent_encode(&self.password),
            self.port,
            percent_encode(database)
        )
    }

    /// A client tool from the server's bin dir (`pg_dump`, `pg_restore`, `pg_dumpall`, …)
    /// preconfigured through libpq environment variables: TCP to this server as the superuser,
    /// password in `PGPASSWORD` (never on argv), database `postgres`.
    pub fn client_command(&self, tool: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(tool));
        command
            .env("PGHOST", HOST)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.superuser)
            .env("PGPASSWORD", &self.password)
            .env("PGDATABASE", "postgres")
            .env("PGCONNECT_TIMEOUT", "5")
            // Keep the machine's ~/.pgpass and service files out of it.
            .env_remove("PGSERVICE")
            .env_remove("PGPASSFILE");
        command
    }

    /// `psql` preconfigured as in [`Self::client_command`], with `-X` (no ~/.psqlrc) and
    /// `ON_ERROR_STOP`.
    pub fn psql_command(&self) -> Command {
        let mut command = self.client_command("psql");
        command.args(["-X", "-v", "ON_ERROR_STOP=1"]);
        command
    }

    fn psql_command_raw(&self, args: &[&str]) -> Command {
        let mut command = self.psql_command();
        command.args(args);
        command
    }

    /// Runs `sql` in database `postgres` through the real `psql` and returns its unaligned,
    /// tuples-only output (`|` between columns, one row a line).
    pub async fn sql(&self, sql: &str) -> anyhow::Result<String> {
        self.sql_in("postgres", sql).await
    }

    /// Runs `sql` in `database` through the real `psql` (see [`Self::sql`]).
    pub async fn sql_in(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        let mut command = self.psql_command();
        command
            .env("PGDATABASE", database)
            .args(["-q", "-A", "-t", "-c", sql]);
        run_output(command, "psql").await
    }

    /// Creates a database owned by the superuser (`name` is quoted as an identifier).
    pub async fn create_database(&self, name: &str) -> anyhow::Result<()> {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        self.sql(&format!("CREATE DATABASE {quoted}")).await?;
        Ok(())
    }

    /// Starts the server again on the same port and data directory (after `stop` or `kill`).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.process.stop();
        retry_restart(RESTART_ATTEMPTS, async || self.spawn_and_wait().await)
            .await
            .context("restarting postgres")
    }
}

/// `program` run as the `postgres` OS user when `switch` (we are root). `setpriv` execs, so the
/// child's PID is the server's.
fn as_os_user(program: &Path, switch: bool) -> Command {
    if switch {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid",
                OS_USER,
                "--regid",
                OS_USER,
                "--init-groups",
                "--",
            ])
            .arg(program)
            // root's HOME is not readable by postgres; libpq/initdb look there.
            .env("HOME", "/tmp");
        command
    } else {
        Command::new(program)
    }
}
