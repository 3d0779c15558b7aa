//! A real MariaDB 10.11 server (Debian `mariadb-server`) in a temporary directory.
//!
//! Both `mariadb-install-db` and `mariadbd` run with `--no-defaults`, so nothing from
//! /etc/mysql leaks in. Under root, `mariadbd --user=mysql` drops privileges itself (same PID).
//! `root` gets a password and may connect over TCP from anywhere; clients get their credentials
//! from an option file (`--defaults-file`), never from argv.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::lifecycle::{ManagedProcess, lifecycle_methods, retry_restart, start_on_free_port};
use super::{HOST, chown, os_user_ids, random_secret, run_output, running_as_root};
use crate::tools::system_binary;

/// The OS user the server runs as when the tests run as root.
const OS_USER: &str = "mysql";
/// How many times a restart tries: a server killed a moment ago may not come back at the
/// first attempt.
const RESTART_ATTEMPTS: usize = 3;

/// How to start a [`MariaDb`].
#[derive(Clone, Debug, Default)]
pub struct MariaDbOptions {
    /// The password of `root`; a random one when `None`.
    pub password: Option<String>,
    /// Extra server options, each a whole argument such as `--max-connections=50`.
    pub extra_args: Vec<String>,
}

/// A running MariaDB server; stopped and its directory removed on drop.
pub struct MariaDb {
    process: ManagedProcess,
    port: u16,
    password: String,
    extra_args: Vec<String>,
    mariadbd: PathBuf,
    data_dir: PathBuf,
    socket: PathBuf,
    defaults_file: PathBuf,
    os_user: bool,
}

lifecycle_methods!(MariaDb);

impl MariaDb {
    /// Starts a server whose `root` has a random password.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(MariaDbOptions::default()).await
    }

    /// Starts a server as `options` say.
    pub async fn start_with(options: MariaDbOptions) -> anyhow::Result<Self> {
        let install_db = system_binary("mariadb-install-db", &[], "mariadb-server")?;
        let mariadbd = system_binary("mariadbd", &["/usr/sbin"], "mariadb-server")?;
        system_binary("mariadb", &[], "mariadb-client")?;
        let os_user = if running_as_root() {
            Some(os_user_ids(OS_USER)?)
        } else {
            None
        };

        let process = ManagedProcess::new("mariadb", "mariadb")?;
        let dir = process.dir().to_path_buf();
        chown(&dir, os_user)?;
        let data_dir = dir.join("data");
        let tmp_dir = dir.join("tmp");
        std::fs::create_dir(&tmp_dir).context("creating the tmp dir")?;
        chown(&tmp_dir, os_user)?;

        let mut command = Command::new(install_db);
        command
            .current_dir(&dir)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data_dir.display()))
            // Passed on to the bootstrap server. Without it, installs running at the same time
            // share /tmp, where their temporary tables get the same names: one removes the
            // other's and that install fails (8 of 18 concurrent installs here, sometimes with
            // SIGSEGV in ha_maria::drop_table); with a private tmpdir, 18 of 18 succeeded.
            .arg(format!("--tmpdir={}", tmp_dir.display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ]);
        if os_user.is_some() {
            command.arg(format!("--user={OS_USER}"));
        }
        run_output(command, "mariadb-install-db").await?;

        let password = options.password.unwrap_or_else(|| random_secret(24));
        let mut server = Self {
            process,
            port: 0,
            password,
            extra_args: options.extra_args,
            mariadbd,
            socket: dir.join("mysqld.sock"),
            defaults_file: dir.join("client.cnf"),
            data_dir,
            os_user: os_user.is_some(),
        };
        start_on_free_port(async |port| {
            server.port = port;
            server.spawn_and_wait(true).await
        })
        .await?;
        server.set_up_root().await?;
        Ok(server)
    }

    /// Starts mariadbd and waits until it answers: over the socket without a password the
    /// first time (root has none yet), over TCP with the password after that.
    async fn spawn_and_wait(&mut self, first_start: bool) -> anyhow::Result<()> {
        self.write_defaults_file()?;
        let dir = self.process.dir();
        let mut command = Command::new(&self.mariadbd);
        command
            .current_dir(dir)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir.display()))
            .arg(format!("--socket={}", self.socket.display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--bind-address={HOST}"))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg(format!("--tmpdir={}", dir.join("tmp").display()))
            .args([
                "--skip-name-resolve",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
                // No fsync per commit (speed), but each commit reaches the OS, so a killed
                // server ("database down" tests) keeps what it acknowledged.
                "--innodb-flush-log-at-trx-commit=2",
                "--innodb-buffer-pool-size=64M",
                "--skip-log-bin",
            ])
            .args(&self.extra_args);
        if self.os_user {
            command.arg(format!("--user={OS_USER}"));
        }
        let process = if first_start {
            self.process
                .spawn_ready(command, "SELECT 1 over the socket", || async {
                    let mut probe = Command::new("mariadb");
                    probe
                        .arg("--no-defaults")
                        .arg(format!("--socket={}", self.socket.display()))
                        .args(["--user=root", "-e", "SELECT 1"]);
                    Ok(run_output(probe, "mariadb").await.is_ok())
                })
                .await?
        } else {
            self.process
                .spawn_ready(command, "SELECT 1 over TCP", || async {
                    Ok(self.sql("SELECT 1").await.is_ok())
                })
                .await?
        };
        self.process.adopt(process);
        Ok(())
    }

    /// Gives `root` its password and lets it in over TCP (`root@'%'`); drops the
    /// host-specific root accounts that would shadow `%` for 127.0.0.1.
    async fn set_up_root(&self) -> anyhow::Result<()> {
        let password = sql_string(&self.password);
        let sql = format!(
            "DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1'; \
             CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY {password}; \
             ALTER USER 'root'@'%' IDENTIFIED BY {password}; \
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION; \
             ALTER USER 'root'@'localhost' IDENTIFIED BY {password}; \
             FLUSH PRIVILEGES;"
        );
        let mut command = Command::new("mariadb");
        command
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["--user=root", "--batch"]);
        // The password is in the SQL: send it on stdin rather than argv.
        let mut command = tokio::process::Command::from(command);
        command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().context("starting mariadb")?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            stdin.write_all(sql.as_bytes()).await?;
        }
        let output = child.wait_with_output().await?;
        if !output.status.success() {
            bail!(
                "setting up root on mariadb failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        // Prove the TCP path the tests use.
        self.sql("SELECT 1")
            .await
            .context("connecting to mariadb over TCP as root")?;
        Ok(())
    }

    fn write_defaults_file(&self) -> anyhow::Result<()> {
        let text = format!(
            "[client]\nuser=root\npassword=\"{}\"\nhost={HOST}\nport={}\nprotocol=tcp\n",
            self.password.replace('\\', "\\\\").replace('"', "\\\""),
            self.port
        );
        std::fs::write(&self.defaults_file, text).context("writing the client option file")?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.defaults_file, std::fs::Permissions::from_mode(0o600))?;
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

    /// Its Unix socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The admin user (`root`, all privileges, from any host).
    pub fn user(&self) -> &str {
        "root"
    }

    /// The admin user's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A client option file (mode 0600) with `[client]` user, password, host, port and
    /// `protocol=tcp`; pass it as `--defaults-file=` or `--defaults-extra-file=`.
    pub fn defaults_file(&self) -> &Path {
        &self.defaults_file
    }

    /// A MariaDB client tool (`mariadb`, `mariadb-dump`, `mariadb-admin`, …) with
    /// `--defaults-file=<the option file>` as its first argument, so it connects over TCP as
    /// root with the password never on argv.
    pub fn client_command(&self, tool: &str) -> Command {
        let mut command = Command::new(tool);
        command.arg(format!("--defaults-file={}", self.defaults_file.display()));
        command
    }

    /// `mariadb` preconfigured as in [`Self::client_command`].
    pub fn mariadb_command(&self) -> Command {
        self.client_command("mariadb")
    }

    /// Runs `sql` through the real `mariadb` client and returns its batch output (tab between
    /// columns, no header, one row a line).
    pub async fn sql(&self, sql: &str) -> anyhow::Result<String> {
        let mut command = self.mariadb_command();
        command.args(["--batch", "--skip-column-names", "-e", sql]);
        run_output(command, "mariadb").await
    }

    /// Runs `sql` in `database` (see [`Self::sql`]).
    pub async fn sql_in(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        let mut command = self.mariadb_command();
        command
            .args(["--batch", "--skip-column-names"])
            .arg(format!("--database={database}"))
            .args(["-e", sql]);
        run_output(command, "mariadb").await
    }

    /// Creates a database (`name` is quoted as an identifier).
    pub async fn create_database(&self, name: &str) -> anyhow::Result<()> {
        let quoted = format!("`{}`", name.replace('`', "``"));
        self.sql(&format!("CREATE DATABASE {quoted}")).await?;
        Ok(())
    }

    /// Starts the server again on the same port and data directory (after `stop` or `kill`).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.process.stop();
        retry_restart(RESTART_ATTEMPTS, async || self.spawn_and_wait(false).await)
            .await
            .context("restarting mariadb")
    }
}

/// A single-quoted SQL string literal.
fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}
