//! Spawning the database client tools: stderr captured (bounded) for error messages, secrets
//! scrubbed from it, a non-zero exit turned into an error, and the child killed when the
//! stream is abandoned.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinHandle;

use super::credentials::{Secret, scrub};
use super::{Completion, DumpStream, Engine, RestoreStream, SourceError};

/// How much of a tool's stderr is kept for the error message: the end is what explains.
const STDERR_TAIL_BYTES: usize = 8 * 1024;

/// A tool invocation: the program, its arguments and environment, the secret to scrub from its
/// output, and temp files (option files, password files) that must outlive the process.
pub struct Tool {
    /// Short name for messages (`pg_dump`).
    pub name: String,
    /// Engine, for classifying connection failures.
    pub engine: Engine,
    command: Command,
    secret: Option<Secret>,
    keep_alive: Vec<tempfile::NamedTempFile>,
}

impl Tool {
    /// A tool at `program`.
    pub fn new(engine: Engine, name: &str, program: &Path) -> Self {
        let mut command = Command::new(program);
        command.kill_on_drop(true);
        Self {
            name: name.to_owned(),
            engine,
            command,
            secret: None,
            keep_alive: Vec::new(),
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl Into<OsString>) -> &mut Self {
        self.command.arg(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        for arg in args {
            self.command.arg(arg.into());
        }
        self
    }

    /// Sets an environment variable of the child.
    pub fn env(&mut self, key: &str, value: impl Into<OsString>) -> &mut Self {
        self.command.env(key, value.into());
        self
    }

    /// Removes an inherited environment variable from the child.
    pub fn env_remove(&mut self, key: &str) -> &mut Self {
        self.command.env_remove(key);
        self
    }

    /// The secret to scrub from the tool's messages.
    pub fn secret(&mut self, secret: Option<Secret>) -> &mut Self {
        self.secret = secret;
        self
    }

    /// Keeps a temp file until the process exits.
    pub fn keep_alive(&mut self, file: tempfile::NamedTempFile) -> &mut Self {
        self.keep_alive.push(file);
        self
    }

    fn spawn(mut self, stdin: Stdio, stdout: Stdio) -> Result<Running, SourceError> {
        self.command
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().map_err(|error| {
            let program = PathBuf::from(self.command.as_std().get_program());
            SourceError::Tool {
                tool: self.name.clone(),
                message: if error.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "{} not found; {}",
                        program.display(),
                        install_hint(self.engine)
                    )
                } else {
                    format!("cannot start {}: {error}", program.display())
                },
            }
        })?;
        let stderr = child
            .stderr
            .take()
            .map(|stderr| tokio::spawn(read_tail(stderr)));
        Ok(Running {
            name: self.name,
            engine: self.engine,
            child,
            stderr,
            secret: self.secret,
            keep_alive: self.keep_alive,
        })
    }

    /// Starts the tool with its stdout as the dump stream.
    pub fn spawn_dump(self) -> Result<DumpStream, SourceError> {
        let mut running = self.spawn(Stdio::null(), Stdio::piped())?;
        let stdout =
            running.child.stdout.take().ok_or_else(|| {
                SourceError::Other(format!("{} has no stdout pipe", running.name))
            })?;
        widen_pipe(&stdout);
        Ok(DumpStream {
            reader: Box::pin(stdout),
            completion: Box::pin(running.wait()),
        })
    }

    /// Starts the tool with its stdin as the restore stream; its stdout is discarded. Nothing
    /// is staged: the engine that stages its target sets `RestoreStream::staged`.
    pub fn spawn_restore(self) -> Result<RestoreStream, SourceError> {
        let mut running = self.spawn(Stdio::piped(), Stdio::null())?;
        let stdin = running
            .child
            .stdin
            .take()
            .ok_or_else(|| SourceError::Other(format!("{} has no stdin pipe", running.name)))?;
        widen_pipe(&stdin);
        Ok(RestoreStream {
            writer: Box::pin(ClosingStdin(Some(stdin))),
            completion: Box::pin(running.wait()),
            staged: super::Staged::nothing(),
        })
    }

    /// Runs the tool to completion with `input` on stdin and returns its stdout.
    pub async fn output(self, input: Option<&[u8]>) -> Result<Vec<u8>, SourceError> {
        let stdin = if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let mut running = self.spawn(stdin, Stdio::piped())?;
        let stdout = running.child.stdout.take();
        let reader = tokio::spawn(async move {
            let mut buffer = Vec::new();
            if let Some(mut stdout) = stdout {
                stdout.read_to_end(&mut buffer).await?;
            }
            Ok::<_, std::io::Error>(buffer)
        });
        if let (Some(input), Some(mut stdin)) = (input, running.child.stdin.take()) {
            // A tool that exits early (bad login) closes its stdin: the exit status explains
            // that better than the broken pipe, so a write error is left to `wait`.
            let _ = stdin.write_all(input).await;
            let _ = stdin.shutdown().await;
        }
        let waited = running.wait().await;
        let stdout = reader
            .await
            .map_err(|error| SourceError::Other(format!("stdout reader failed: {error}")))??;
        waited.map(|()| stdout)
    }
}

/// The kernel buffer of the pipes between a dump or restore tool and the pipeline: 1 MiB, the
/// most Linux lets an unprivileged process ask for (`/proc/sys/fs/pipe-max-size`).
pub const PIPE_BYTES: usize = 1 << 20;

/// Widens `pipe` to [`PIPE_BYTES`] (Linux's default is 64 KiB: 0.3 ms of pg_dump's output at
/// 200 MB/s). On two cores the pipeline's reader is often not scheduled when the tool writes;
/// with 64 KiB the tool then blocks on a full pipe, with 1 MiB it writes on. Best effort: a
/// refusal (a lower `pipe-max-size`, or not Linux) keeps the default and is only logged.
fn widen_pipe(pipe: &impl std::os::fd::AsFd) {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::pipe::fcntl_setpipe_size(pipe, PIPE_BYTES) {
        tracing::debug!("the tool's pipe keeps its default size: {error}");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = pipe;
}

/// A child's stdin whose shutdown closes the pipe. Tokio's `ChildStdin::poll_shutdown` does
/// nothing, so a tool reading to EOF (psql, mariadb, pg_restore on a truncated archive) would
/// wait forever for a writer that the pipeline has shut down but not yet dropped.
struct ClosingStdin(Option<ChildStdin>);

impl AsyncWrite for ClosingStdin {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.0.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_write(cx, buf),
            None => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.0.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(stdin) = self.0.as_mut() {
            std::task::ready!(Pin::new(stdin).poll_flush(cx))?;
        }
        // Dropping the pipe's write end is what the tool sees as EOF.
        self.0 = None;
        Poll::Ready(Ok(()))
    }
}

/// A spawned tool.
struct Running {
    name: String,
    engine: Engine,
    child: Child,
    stderr: Option<JoinHandle<Vec<u8>>>,
    secret: Option<Secret>,
    keep_alive: Vec<tempfile::NamedTempFile>,
}

impl Running {
    /// Waits for the exit and turns a failure into an error carrying the end of stderr.
    async fn wait(mut self) -> Result<(), SourceError> {
        let status = self.child.wait().await;
        // The option/password files may go now that the tool has read them and exited.
        drop(std::mem::take(&mut self.keep_alive));
        let stderr = match self.stderr.take() {
            Some(handle) => handle.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let status = status?;
        if status.success() {
            return Ok(());
        }
        let stderr = scrub(
            String::from_utf8_lossy(&stderr).trim(),
            self.secret.as_ref(),
        );
        Err(tool_error(self.engine, &self.name, status, &stderr))
    }
}

/// The error for a failed tool: a connection failure when its stderr says so, else a tool error.
fn tool_error(engine: Engine, name: &str, status: ExitStatus, stderr: &str) -> SourceError {
    let message = if stderr.is_empty() {
        format!("exited with {status}")
    } else {
        format!("exited with {status}: {stderr}")
    };
    if looks_like_connect_failure(engine, stderr) {
        SourceError::Connect {
            engine,
            message: format!("{name} {message}"),
        }
    } else {
        SourceError::Tool {
            tool: name.to_owned(),
            message,
        }
    }
}

/// Whether a tool's stderr says it could not reach the server or log in.
pub fn looks_like_connect_failure(engine: Engine, stderr: &str) -> bool {
    let patterns: &[&str] = match engine {
        Engine::Postgres => &[
            "connection to server",
            "could not connect",
            "password authentication failed",
            "no password supplied",
            "Connection refused",
            "could not translate host name",
        ],
        Engine::Mariadb => &[
            "ERROR 2002",
            "ERROR 2003",
            "ERROR 2005",
            "ERROR 2013",
            "ERROR 1045",
            "Got error: 2002",
            "Got error: 2003",
            "Got error: 2005",
            "Got error: 2013",
            "Got error: 1045",
            "Can't connect",
            "Access denied",
        ],
        Engine::Redis => &[
            "Could not connect",
            "Connection refused",
            "NOAUTH",
            "WRONGPASS",
            "AUTH failed",
            "Unknown host",
        ],
    };
    patterns.iter().any(|pattern| stderr.contains(pattern))
}

/// What to install when a tool is missing.
fn install_hint(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => {
            "install the PostgreSQL client tools (Debian: postgresql-client) or set binDir"
        }
        Engine::Mariadb => {
            "install the MariaDB client tools (Debian: mariadb-client) or set binDir"
        }
        Engine::Redis => "install redis-cli (Debian: redis-tools) or set binDir",
    }
}

/// Reads a stream to its end, keeping only its last `STDERR_TAIL_BYTES` bytes with long
/// lines trimmed (see [`super::tool_output`]).
async fn read_tail(mut stream: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut tail = super::tool_output::TrimmedTail::new(STDERR_TAIL_BYTES);
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => tail.push(&buffer[..n]),
        }
    }
    tail.finish()
}

/// Finds a tool: in `bin_dir` when given, then in `extra_dirs`, then on PATH.
pub fn find_tool(name: &str, bin_dir: Option<&Path>, extra_dirs: &[PathBuf]) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    bin_dir
        .map(Path::to_path_buf)
        .into_iter()
        .chain(extra_dirs.iter().cloned())
        .chain(path_dirs)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        // Not found: spawning the bare name fails with NotFound and an install hint.
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A completion that first waits for `inner` and then runs `after` with its result, e.g. to
/// end the snapshot transaction a dump imported. Never used to commit a restore (see
/// [`super::staging`]).
pub fn then<F, Fut>(inner: Completion, after: F) -> Completion
where
    F: FnOnce(Result<(), SourceError>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), SourceError>> + Send + 'static,
{
    Box::pin(async move {
        let result = inner.await;
        after(result).await
    })
}

/// The first line of a tool's `--version` output, e.g. `pg_dump (PostgreSQL) 15.8`.
pub async fn tool_version(
    engine: Engine,
    name: &str,
    program: &Path,
) -> Result<String, SourceError> {
    let mut tool = Tool::new(engine, name, program);
    tool.arg("--version");
    let output = tool.output(None).await?;
    Ok(String::from_utf8_lossy(&output)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stderr_tail_is_bounded_and_exit_is_an_error() {
        let mut tool = Tool::new(Engine::Postgres, "sh", Path::new("/bin/sh"));
        tool.args([
            "-c",
            "head -c 100000 /dev/zero | tr '\\0' x >&2; echo secretpw >&2; exit 3",
        ])
        .secret(Some(Secret::new("secretpw")));
        let error = tool.output(None).await.unwrap_err();
        let text = error.to_string();
        assert!(text.contains("exit status: 3"), "{text}");
        assert!(!text.contains("secretpw"), "{text}");
        assert!(text.len() < STDERR_TAIL_BYTES + 200, "{}", text.len());
    }

    #[tokio::test]
    async fn missing_tool_names_the_package() {
        let tool = Tool::new(
            Engine::Mariadb,
            "mariadb",
            Path::new("/nonexistent/mariadb"),
        );
        let error = tool.output(None).await.unwrap_err();
        assert!(error.to_string().contains("mariadb-client"), "{error}");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_dump_tool_can_write_ahead_of_the_reader_by_the_widened_pipe() {
        // 900 KiB fit in the widened pipe, not in Linux's default 64 KiB: the tool writes them
        // all and exits before anything reads the stream.
        let mut tool = Tool::new(Engine::Postgres, "head", Path::new("/usr/bin/head"));
        tool.args(["-c", "921600", "/dev/zero"]);
        let mut dump = tool.spawn_dump().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(20), &mut dump.completion)
            .await
            .expect("the tool is still blocked on a full pipe")
            .unwrap();
        let mut bytes = Vec::new();
        dump.reader.read_to_end(&mut bytes).await.unwrap();
        assert_eq!(bytes.len(), 921_600);
    }
}
