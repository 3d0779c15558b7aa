//! One run of one container: the program as a local process in a private mount namespace
//! (`unshare --mount --propagation private`), with the Pod's volumes and its termination-message
//! file bind-mounted at their real paths, its output in a log file, and signals as a container
//! runtime sends them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::env::Environment;
use super::volumes::Mount;

/// The exit code of the mount script when setting up the namespace failed, before the program
/// ran; its stderr line starts with [`SETUP_FAILURE_MARKER`].
pub(crate) const SETUP_FAILURE_CODE: i32 = 125;
pub(crate) const SETUP_FAILURE_MARKER: &str = "testkit-kubelet:";

/// Runs inside the new mount namespace: makes each mount point (on the host filesystem when it
/// is missing: mkdir is not namespaced), binds the source there, remounts read-only where asked,
/// enters the working directory and execs the program (without the `PWD`/`OLDPWD` that `cd`
/// exports, unless the container's env sets them: a runtime execs with the env as given). Mount
/// tools are called with a fixed PATH
/// so the container's own `PATH` (which the program inherits) cannot hide them.
const MOUNT_SCRIPT: &str = r#"
fail() { echo "testkit-kubelet: $*" >&2; exit 125; }
H=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  kind=$1; src=$2; dst=$3; mode=$4; shift 4
  if [ "$kind" = dir ]; then
    PATH=$H mkdir -p "$dst" || fail "cannot create mount point $dst"
  else
    PATH=$H mkdir -p "$(PATH=$H dirname "$dst")" || fail "cannot create the directory of $dst"
    [ -e "$dst" ] || : > "$dst" || fail "cannot create mount point $dst"
  fi
  PATH=$H mount --bind "$src" "$dst" || fail "cannot bind $src at $dst"
  if [ "$mode" = ro ]; then
    PATH=$H mount -o remount,bind,ro "$dst" || fail "cannot make $dst read-only"
  fi
done
shift
PATH=$H mkdir -p "$1" && cd "$1" || fail "cannot enter working directory $1"
if [ "$2" = clean ]; then unset PWD OLDPWD; fi
shift 2
exec "$@"
"#;

/// What to start.
pub(crate) struct Launch {
    /// The local binary that stands in for the image's program.
    pub(crate) program: PathBuf,
    /// Arguments after the program.
    pub(crate) args: Vec<String>,
    /// The whole environment: the test process's own is not inherited.
    pub(crate) environment: Environment,
    pub(crate) working_dir: String,
    pub(crate) mounts: Vec<Mount>,
    /// The host file bind-mounted at `terminationMessagePath` (also one of `mounts`).
    pub(crate) termination_file: PathBuf,
    /// stdout and stderr are appended here.
    pub(crate) log_path: PathBuf,
}

/// How a run ended, in container-runtime terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The process's exit code, or 128 + the signal number when a signal ended it (143 for
    /// SIGTERM, 137 for SIGKILL), as container runtimes report it.
    pub exit_code: i32,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
}

impl Exit {
    fn from_status(status: ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Self {
                exit_code: code,
                signal: None,
            },
            (None, Some(signal)) => Self {
                exit_code: 128 + signal,
                signal: Some(signal),
            },
            (None, None) => Self {
                exit_code: 128,
                signal: None,
            },
        }
    }
}

/// A started run. Dropping it kills the process (and its process group) with SIGKILL.
pub(crate) struct Running {
    child: tokio::process::Child,
    pid: u32,
    /// Set once reaped and the group killed: the pid may be reused after that.
    finished: bool,
}

impl Running {
    /// Starts the program in a new process group (its id is the pid) so that the whole tree can
    /// be killed at the end, as a container's PID namespace would be.
    pub(crate) fn spawn(unshare: &Path, launch: &Launch) -> std::io::Result<Self> {
        if let Some(parent) = launch.log_path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&launch.log_path)?;
        let mut command = tokio::process::Command::new(unshare);
        command
            .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(MOUNT_SCRIPT)
            .arg("testkit-kubelet");
        for mount in &launch.mounts {
            let kind = if mount.source.is_dir() { "dir" } else { "file" };
            let mode = if mount.read_only { "ro" } else { "rw" };
            command
                .arg(kind)
                .arg(&mount.source)
                .arg(&mount.target)
                .arg(mode);
        }
        let keep_pwd = ["PWD", "OLDPWD"]
            .iter()
            .any(|name| launch.environment.contains_key(*name));
        command
            .arg("--")
            .arg(&launch.working_dir)
            .arg(if keep_pwd { "keep" } else { "clean" })
            .arg(&launch.program)
            .args(&launch.args)
            .env_clear()
            .envs(&launch.environment)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        let child = command.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("the started process has no pid"))?;
        Ok(Self {
            child,
            pid,
            finished: false,
        })
    }

    /// The process id (also its process group id). `unshare` and the mount script exec into the
    /// program, so this is the program's own pid once it runs.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the process to end, then kills what is left of its process group.
    pub(crate) async fn wait(&mut self) -> Exit {
        let exit = match self.child.wait().await {
            Ok(status) => Exit::from_status(status),
            Err(_) => Exit {
                exit_code: 128,
                signal: None,
            },
        };
        self.kill_group();
        self.finished = true;
        exit
    }

    /// Sends `signal` to the main process only, as a runtime's StopContainer does first.
    pub(crate) fn signal(&self, signal: Signal) {
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// SIGKILL to the whole process group (nothing once the run has been reaped).
    pub(crate) fn kill_group(&self) {
        if !self.finished {
            kill_process_group(self.pid);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// SIGKILL to the process group `pgid` (errors ignored: it may be gone already).
pub(crate) fn kill_process_group(pgid: u32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn launch(dir: &Path, script: &str, mounts: Vec<Mount>) -> Launch {
        Launch {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".to_owned(), script.to_owned()],
            environment: [("ONLY".to_owned(), "this".to_owned())].into(),
            working_dir: "/".to_owned(),
            mounts,
            termination_file: dir.join("termination-log"),
            log_path: dir.join("out.log"),
        }
    }

    fn unshare() -> PathBuf {
        ["/usr/bin/unshare", "/bin/unshare"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
            .unwrap()
    }

    #[tokio::test]
    async fn mounts_exist_only_inside_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("volume");
        std::fs::create_dir(&volume).unwrap();
        std::fs::write(volume.join("key"), "value").unwrap();
        std::fs::write(dir.path().join("termination-log"), "").unwrap();
        let suffix = rand::random::<u64>();
        let target = format!("/run/vertice-kubelet-unit-{suffix}/secret");
        let script = format!(
            "cat {target}/key; echo; echo \"env=$(env | sort | tr '\\n' ' ')\"; \
             echo bye > /dev/termination-log; \
             if touch {target}/new 2>/dev/null; then echo writable; else echo read-only; fi; exit 3"
        );
        let mounts = vec![
            Mount {
                source: volume.clone(),
                target: target.clone(),
                read_only: true,
            },
            Mount {
                source: dir.path().join("termination-log"),
                target: "/dev/termination-log".to_owned(),
                read_only: false,
            },
        ];
        let launch = launch(dir.path(), &script, mounts);
        let mut running = Running::spawn(&unshare(), &launch).unwrap();
        let exit = running.wait().await;
        let log = std::fs::read_to_string(&launch.log_path).unwrap();
        assert_eq!(
            exit,
            Exit {
                exit_code: 3,
                signal: None
            },
            "{log}"
        );
        assert!(log.starts_with("value\n"), "{log}");
        // Only the container's env (the inner `sh` exports PWD itself, as it would in an image).
        assert!(log.contains("env=ONLY=this PWD=/ \n"), "{log}");
        assert!(log.contains("read-only"), "{log}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("termination-log")).unwrap(),
            "bye\n"
        );
        // Outside: an empty mount point.
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(format!("/run/vertice-kubelet-unit-{suffix}"));
    }

    #[tokio::test]
    async fn signals_end_the_process_as_a_runtime_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("termination-log"), "").unwrap();
        for (signal, expected) in [(Signal::SIGTERM, 143), (Signal::SIGKILL, 137)] {
            let launch = launch(
                dir.path(),
                "echo up; while :; do sleep 0.1; done",
                Vec::new(),
            );
            let mut running = Running::spawn(&unshare(), &launch).unwrap();
            while !std::fs::read_to_string(&launch.log_path)
                .unwrap_or_default()
                .contains("up")
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            running.signal(signal);
            let exit = tokio::time::timeout(Duration::from_secs(10), running.wait())
                .await
                .unwrap();
            assert_eq!(exit.exit_code, expected);
            assert_eq!(exit.signal, Some(signal as i32));
            std::fs::remove_file(&launch.log_path).unwrap();
        }
    }

    #[tokio::test]
    async fn a_failed_mount_is_a_setup_failure() {
        let dir = tempfile::tempdir().unwrap();
        let target = format!("/run/vertice-kubelet-unit-{}", rand::random::<u64>());
        let mounts = vec![Mount {
            source: dir.path().join("does-not-exist"),
            target: target.clone(),
            read_only: false,
        }];
        let launch = launch(dir.path(), "echo should not run", mounts);
        let mut running = Running::spawn(&unshare(), &launch).unwrap();
        let exit = running.wait().await;
        let log = std::fs::read_to_string(&launch.log_path).unwrap();
        assert_eq!(exit.exit_code, SETUP_FAILURE_CODE, "{log}");
        assert!(log.contains(SETUP_FAILURE_MARKER), "{log}");
        assert!(!log.contains("should not run"), "{log}");
        // A missing source is bound as a file, so the mount point made was a file.
        let _ = std::fs::remove_file(&target);
    }
}
