//! A kubelet stand-in: runs the Pods of a test's namespace as local processes and writes their
//! status as a kubelet would, so the REAL job controller of the test control plane can do the
//! rest (active/succeeded/failed counts, `backoffLimit`, `podFailurePolicy`, Job conditions).
//!
//! # What it does
//! - Watches the Pods of the namespaces it is given (all of them, or those matching a label
//!   selector) and starts each new Pod that is not terminal and not being deleted. Pods stay
//!   unbound (no `nodeName`), so deleting one is immediate, as for any unscheduled Pod.
//! - Maps each container image to a local binary given by the test (exact image string first,
//!   then the image without its digest or tag). That binary is the image's one program: with no
//!   `command` it gets `args`; with a `command` it stands in for `command[0]` and gets
//!   `command[1..]` + `args`. An image without a mapping fails the Pod at once with reason
//!   `ErrImagePull` and a message naming the image (a kubelet would leave it Pending).
//! - Builds the environment from `envFrom` and `env` (`value` with `$(VAR)` expansion,
//!   `secretKeyRef`, `configMapKeyRef`, `fieldRef` on metadata.name/namespace/uid,
//!   `metadata.labels['k']`/`annotations['k']`, spec.nodeName/serviceAccountName and
//!   status.podIP(s)/hostIP(s) = 127.0.0.1) plus `PATH`, `HOSTNAME` and `HOME` defaults. The test
//!   process's own environment is not inherited.
//! - Materialises volumes (see `volumes.rs`: secret, configMap, downwardAPI, emptyDir,
//!   persistentVolumeClaim) and runs the program under `unshare --mount --propagation private`
//!   with each volumeMount bind-mounted at its real `mountPath` (`subPath`/`subPathExpr`,
//!   `readOnly`) and a per-container file at `terminationMessagePath` (default
//!   `/dev/termination-log`). The mounts exist only in the program's mount namespace; missing
//!   mount points are created on the host as empty directories or files and left there.
//! - A missing Secret, ConfigMap, key or claim keeps the Pod Pending with the container waiting
//!   in `CreateContainerConfigError` (message as the kubelet words it), retried until it appears.
//! - Status: `Pending` with `startTime`, then `Running` (containers running, `podIP`, the
//!   `Ready`/`ContainersReady`/`Initialized`/`PodReadyToStartContainers` conditions), then
//!   `Succeeded` or `Failed` with each container's `exitCode` (128 + signal when killed),
//!   `reason` (`Completed`, `Error`, `StartError`) and termination message (the first 4096 bytes
//!   of the file; with `FallbackToLogsOnError` and a failure, the log's last 80 lines / 2048
//!   bytes when the file is empty).
//! - `restartPolicy` `OnFailure`/`Always` restart a container in place (`restartCount`,
//!   `lastState`, `CrashLoopBackOff` while waiting), after 0.5 s doubling up to 10 s.
//! - On deletion (or when the Pod disappears): SIGTERM to the program, then after
//!   `terminationGracePeriodSeconds` (default 30) SIGKILL to its whole process group; the Pod is
//!   then marked terminal (if it still exists, e.g. held by the job-tracking finalizer) so the job
//!   controller can account for it. When a program exits, whatever it left running in its
//!   process group is killed, as a container's PID namespace would be.
//! - stdout and stderr of each container go to one log file per container ([`Kubelet::logs`]).
//!
//! # What it does not do
//! No images, no network or PID namespace (programs share the test's network and see its
//! processes), no users/securityContext, no resource limits or OOM kills, no probes, no
//! lifecycle hooks, no init or sidecar containers (such a Pod waits in
//! `CreateContainerConfigError`), no projected/hostPath/CSI volumes, no service-account token,
//! no Service env vars, no syncing of Secret volume contents after start, no `kubectl logs` or
//! exec. Nothing survives the [`Kubelet`]: dropping it kills every process it started.

mod container;
mod env;
mod pod;
mod sources;
mod status;
mod termination;
mod volumes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use container::Exit;

/// What a [`Kubelet`] serves and which binaries stand in for which images.
#[derive(Debug, Clone, Default)]
pub struct KubeletOptions {
    namespaces: Vec<String>,
    images: BTreeMap<String, PathBuf>,
    label_selector: Option<String>,
}

impl KubeletOptions {
    /// Serves every Pod of `namespace` (one control plane is shared by a test binary's tests, so
    /// a kubelet serves only its own test's namespaces).
    pub fn new(namespace: &str) -> Self {
        Self {
            namespaces: vec![namespace.to_owned()],
            ..Self::default()
        }
    }

    /// Serves `namespace` as well.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespaces.push(namespace.to_owned());
        self
    }

    /// Runs containers of `image` (e.g. `ghcr.io/vertice/backup:1.0`, or `ghcr.io/vertice/backup`
    /// for any tag) with the local `binary` (e.g. `env!("CARGO_BIN_EXE_vertice-backup")`).
    pub fn image(mut self, image: &str, binary: impl Into<PathBuf>) -> Self {
        self.images.insert(image.to_owned(), binary.into());
        self
    }

    /// Serves only Pods matching this label selector (e.g. `batch.kubernetes.io/job-name`).
    pub fn label_selector(mut self, selector: &str) -> Self {
        self.label_selector = Some(selector.to_owned());
        self
    }
}

/// What the kubelet knows about one container of one Pod (the latest Pod of that name).
#[derive(Debug, Clone)]
pub struct ContainerRun {
    /// The Pod's UID.
    pub pod_uid: String,
    /// stdout and stderr of every run of the container, appended.
    pub log_path: PathBuf,
    /// The process id while a run is in progress.
    pub pid: Option<u32>,
    /// How each finished run ended, oldest first.
    pub exits: Vec<Exit>,
}

/// A running kubelet stand-in; stops (killing every process it started) when dropped.
pub struct Kubelet {
    shared: Arc<Shared>,
    watchers: Vec<JoinHandle<()>>,
    /// Volumes, logs and claim directories; removed after the processes are killed.
    _root: tempfile::TempDir,
}

pub(crate) struct Shared {
    client: kube::Client,
    images: BTreeMap<String, PathBuf>,
    unshare: PathBuf,
    root: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// By Pod UID; kept after the Pod finishes so a re-list never starts it twice.
    pods: HashMap<String, PodHandle>,
    /// By (namespace, pod name, container name).
    containers: HashMap<(String, String, String), ContainerRun>,
}

struct PodHandle {
    namespace: String,
    terminate: CancellationToken,
    task: JoinHandle<()>,
}

impl Kubelet {
    /// Checks the mapped binaries and `unshare`, then starts watching Pods on the caller's tokio
    /// runtime. Fails (never skips) when the machine cannot make mount namespaces: that needs
    /// root or CAP_SYS_ADMIN and util-linux's `unshare`.
    pub async fn start(client: &kube::Client, options: KubeletOptions) -> anyhow::Result<Self> {
        if options.namespaces.is_empty() {
            bail!("a kubelet needs at least one namespace to serve");
        }
        for (image, binary) in &options.images {
            if !binary.is_file() {
                bail!(
                    "the binary for image {image:?} does not exist: {}",
                    binary.display()
                );
            }
        }
        let unshare = find_on_path("unshare").context(
            "testkit's kubelet needs util-linux's `unshare` on PATH (Debian: apt-get install util-linux)",
        )?;
        probe_mount_namespace(&unshare).await?;
        let root = tempfile::Builder::new()
            .prefix("vertice-kubelet-")
            .tempdir()
            .context("creating the kubelet's temp dir")?;
        let shared = Arc::new(Shared {
            client: client.clone(),
            images: options.images,
            unshare,
            root: root.path().to_owned(),
            state: Mutex::new(State::default()),
        });
        let mut watchers = Vec::new();
        for namespace in &options.namespaces {
            let mut config = watcher::Config::default();
            if let Some(selector) = &options.label_selector {
                config = config.labels(selector);
            }
            let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
            watchers.push(tokio::spawn(watch_pods(
                shared.clone(),
                namespace.clone(),
                api,
                config,
            )));
        }
        Ok(Self {
            shared,
            watchers,
            _root: root,
        })
    }

    /// What is known about `container` of the latest Pod named `pod` in `namespace`, if it ever
    /// started.
    pub fn container(&self, namespace: &str, pod: &str, container: &str) -> Option<ContainerRun> {
        self.shared
            .lock()
            .containers
            .get(&(namespace.to_owned(), pod.to_owned(), container.to_owned()))
            .cloned()
    }

    /// The container's output so far (stdout and stderr interleaved, every run); empty when it
    /// never started.
    pub fn logs(&self, namespace: &str, pod: &str, container: &str) -> String {
        self.container(namespace, pod, container)
            .and_then(|run| std::fs::read(run.log_path).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for watcher in &self.watchers {
            watcher.abort();
        }
        let state = self.shared.lock();
        for handle in state.pods.values() {
            handle.terminate.cancel();
            handle.task.abort();
        }
        // The aborted tasks kill their processes when the runtime drops them; this does it now,
        // before the temp dir goes.
        for run in state.containers.values() {
            if let Some(pid) = run.pid {
                container::kill_process_group(pid);
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The binary for `image`: the exact string, else the image without `@digest`, else
    /// without `:tag`.
    pub(crate) fn program_for(&self, image: &str) -> Option<PathBuf> {
        let without_digest = image.split('@').next().unwrap_or(image);
        let without_tag = match without_digest.rfind(':') {
            Some(colon) if !without_digest[colon..].contains('/') => &without_digest[..colon],
            _ => without_digest,
        };
        [image, without_digest, without_tag]
            .into_iter()
            .find_map(|candidate| self.images.get(candidate).cloned())
    }

    pub(crate) fn known_images(&self) -> String {
        self.images.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    pub(crate) fn record_start(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
        log_path: &Path,
        pid: u32,
    ) {
        let mut state = self.lock();
        let key = (namespace.to_owned(), pod.to_owned(), container.to_owned());
        let run = state.containers.entry(key).or_insert_with(|| ContainerRun {
            pod_uid: uid.to_owned(),
            log_path: log_path.to_owned(),
            pid: None,
            exits: Vec::new(),
        });
        if run.pod_uid != uid {
            // A new Pod of the same name: forget the old one's runs.
            run.pod_uid = uid.to_owned();
            run.log_path = log_path.to_owned();
            run.exits.clear();
        }
        run.pid = Some(pid);
    }

    pub(crate) fn record_exit(&self, namespace: &str, pod: &str, container: &str, exit: Exit) {
        let mut state = self.lock();
        let key = (namespace.to_owned(), pod.to_owned(), container.to_owned());
        if let Some(run) = state.containers.get_mut(&key) {
            run.pid = None;
            run.exits.push(exit);
        }
    }

    /// Starts a new Pod, or stops a known one that is being deleted.
    fn observe(self: &Arc<Self>, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let mut state = self.lock();
        if let Some(handle) = state.pods.get(&uid) {
            if deleting {
                handle.terminate.cancel();
            }
            return;
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|status| status.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            return;
        }
        let terminate = CancellationToken::new();
        if deleting {
            // Deleted before it was started: it still has to become terminal, or the job
            // controller (which holds it with its finalizer) waits for it forever.
            terminate.cancel();
        }
        let task = tokio::spawn(pod::run(self.clone(), pod.clone(), terminate.clone()));
        state.pods.insert(
            uid,
            PodHandle {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                terminate,
                task,
            },
        );
    }

    fn deleted(&self, uid: &str) {
        if let Some(handle) = self.lock().pods.get(uid) {
            handle.terminate.cancel();
        }
    }

    /// After a re-list: Pods of `namespace` that are no longer there were deleted while the
    /// watch was down.
    fn forget_missing(&self, namespace: &str, listed: &HashSet<String>) {
        for (uid, handle) in &self.lock().pods {
            if handle.namespace == namespace && !listed.contains(uid) {
                handle.terminate.cancel();
            }
        }
    }
}

async fn watch_pods(
    shared: Arc<Shared>,
    namespace: String,
    api: Api<Pod>,
    config: watcher::Config,
) {
    let mut listed = HashSet::new();
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(pod)) => {
                if let Some(uid) = &pod.metadata.uid {
                    listed.insert(uid.clone());
                }
                shared.observe(pod);
            }
            Ok(Event::InitDone) => shared.forget_missing(&namespace, &listed),
            Ok(Event::Apply(pod)) => shared.observe(pod),
            Ok(Event::Delete(pod)) => {
                if let Some(uid) = &pod.metadata.uid {
                    shared.deleted(uid);
                }
            }
            Err(error) => {
                eprintln!("testkit kubelet: watching pods in {namespace}: {error}");
            }
        }
    }
}

fn find_on_path(program: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{program} not found"))
}

/// Fails with the reason when this process cannot make a private mount namespace.
async fn probe_mount_namespace(unshare: &Path) -> anyhow::Result<()> {
    let output = tokio::process::Command::new(unshare)
        .args(["--mount", "--propagation", "private", "--", "/bin/true"])
        .output()
        .await
        .with_context(|| format!("running {}", unshare.display()))?;
    if !output.status.success() {
        bail!(
            "testkit's kubelet cannot create a mount namespace ({}: {}); run the tests as root \
             or with CAP_SYS_ADMIN",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
