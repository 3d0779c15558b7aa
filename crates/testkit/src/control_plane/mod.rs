//! A real Kubernetes control plane for tests, the way controller-runtime's envtest runs one:
//! `etcd` + `kube-apiserver` (client-certificate auth, RBAC, service-account keys) + a
//! `kube-controller-manager` running only the garbage-collector, namespace, endpointslice and job
//! controllers, so ownerReference cleanup, namespace deletion and Jobs (Pods created, backoffLimit,
//! podFailurePolicy, Job conditions) behave as in a cluster. No Pod runs by itself: a test that
//! needs one run starts the kubelet stand-in (`crate::kubelet`). The binaries come from
//! `cargo xtask tools`; a missing one fails, never skips.

mod kubeconfig;
mod pki;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

use crate::ports::free_port;
use crate::process::ServiceProcess;
use crate::tools::tool_binary;
use pki::CertificateAuthority;

/// How long one process may take to become ready (envtest uses 20 s; our 2-core CI machines
/// share the CPU with cargo builds, hence the margin).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Whole-start attempts: a free port can be taken between our probe and the process binding it.
const START_ATTEMPTS: u32 = 4;
/// A kube client from kubeconfig text (e.g. a file of [`ControlPlane::kubeconfig_as`]), built on
/// the caller's tokio runtime (a client belongs to the runtime it was made in).
///
/// Errors: text that is not a kubeconfig, or one whose credentials do not load.
pub async fn client_from_kubeconfig(kubeconfig_yaml: &str) -> anyhow::Result<kube::Client> {
    kubeconfig::client_from(kubeconfig_yaml).await
}

/// The identity of `admin_client`/`admin_kubeconfig`.
const ADMIN_USER: &str = "vertice-admin";
/// The group that bypasses RBAC.
const MASTERS_GROUP: &str = "system:masters";

/// A running etcd + kube-apiserver + kube-controller-manager.
pub struct ControlPlane {
    url: String,
    server_version: String,
    dir: PathBuf,
    admin_kubeconfig: PathBuf,
    ca: CertificateAuthority,
    /// In start order; stopped in reverse.
    processes: Mutex<Vec<ServiceProcess>>,
    kubeconfig_serial: AtomicU64,
}

/// The per-test-binary control plane, or why it could not start (kept, so every later test
/// fails at once with the same message instead of retrying a broken start).
static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

impl ControlPlane {
    /// One control plane per test binary, started on first use (etcd + kube-apiserver +
    /// kube-controller-manager with only the garbagecollector, namespace, endpointslice and job
    /// controllers). Its processes and temp dir are cleaned up when the test binary exits, by
    /// the watchdog of each `ServiceProcess`.
    ///
    /// Safe to call from any number of `#[tokio::test]`s: the start happens once, on a thread of
    /// its own with its own runtime, so nothing in the static belongs to any test's runtime.
    pub async fn shared() -> anyhow::Result<&'static ControlPlane> {
        crate::shared::once(&SHARED, "the test control plane", Self::start).await
    }

    /// The shared control plane if some test already started it (without starting one).
    pub(crate) fn shared_if_started() -> Option<&'static ControlPlane> {
        SHARED.get().and_then(|result| result.as_ref().ok())
    }

    /// Starts a control plane owned by the caller (the demo); its processes stop when it is
    /// dropped. Blocks; runs its own runtime on a separate thread, so it may be called from
    /// inside or outside a tokio runtime (but not on a runtime's async thread: use
    /// `spawn_blocking`).
    pub fn start_blocking() -> anyhow::Result<ControlPlane> {
        crate::shared::on_own_runtime("the control plane", Self::start)
    }

    /// A client with cluster-admin rights (`system:masters`). Built per call, on the caller's
    /// runtime.
    pub async fn admin_client(&self) -> anyhow::Result<kube::Client> {
        let text = std::fs::read_to_string(&self.admin_kubeconfig)
            .with_context(|| format!("reading {}", self.admin_kubeconfig.display()))?;
        kubeconfig::client_from(&text).await
    }

    /// The admin kubeconfig file, for subprocesses, kubectl and helm.
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// A client authenticated as `user` in `groups` (at most two) by a client certificate
    /// minted now: RBAC applies to it like to any user.
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> anyhow::Result<kube::Client> {
        let identity = self.ca.client_cert(user, groups)?;
        let text = kubeconfig::render(&self.url, self.ca.cert_pem(), user, &identity)?;
        kubeconfig::client_from(&text).await
    }

    /// A kubeconfig file for the ServiceAccount `service_account` of `namespace`: a client
    /// certificate for the user `system:serviceaccount:<namespace>:<service_account>` in the
    /// groups `system:serviceaccounts` and `system:serviceaccounts:<namespace>`, the user info
    /// the apiserver gives that account's tokens. RBAC bindings to the ServiceAccount (kind
    /// `ServiceAccount`) apply to it exactly as in a cluster, so an operator run with it has
    /// precisely what its chart grants; the ServiceAccount object need not exist.
    ///
    /// Errors: a name that is empty or holds a `:` (it would change whose identity this is).
    pub fn kubeconfig_as(&self, namespace: &str, service_account: &str) -> anyhow::Result<PathBuf> {
        for (what, name) in [
            ("namespace", namespace),
            ("service account", service_account),
        ] {
            if name.is_empty() || name.contains(':') {
                bail!("{what} name {name:?} is empty or holds a ':'");
            }
        }
        let user = format!("system:serviceaccount:{namespace}:{service_account}");
        let namespace_group = format!("system:serviceaccounts:{namespace}");
        self.kubeconfig_for_user(&user, &["system:serviceaccounts", &namespace_group])
    }

    /// A kubeconfig file for `user` in `groups` (at most two), for a subprocess that should run
    /// with exactly that identity's RBAC.
    pub fn kubeconfig_for_user(&self, user: &str, groups: &[&str]) -> anyhow::Result<PathBuf> {
        let identity = self.ca.client_cert(user, groups)?;
        let text = kubeconfig::render(&self.url, self.ca.cert_pem(), user, &identity)?;
        let serial = self.kubeconfig_serial.fetch_add(1, Ordering::Relaxed);
        let file_user: String = user
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = self
            .dir
            .join(format!("kubeconfig-{serial}-{file_user}.yaml"));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// The apiserver's `gitVersion`, e.g. `v1.36.3`.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// The apiserver's URL, e.g. `https://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops every process (controller-manager, apiserver, etcd) now. Dropping does the same.
    pub fn stop(&self) {
        let mut processes = match self.processes.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        while let Some(mut process) = processes.pop() {
            process.stop(Duration::from_secs(10));
        }
    }

    async fn start() -> anyhow::Result<ControlPlane> {
        kubeconfig::install_crypto_provider();
        let binaries = Binaries {
            etcd: tool_binary("etcd")?,
            apiserver: tool_binary("kube-apiserver")?,
            controller_manager: tool_binary("kube-controller-manager")?,
        };
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            let started = Instant::now();
            match start_once(&binaries).await {
                Ok(control_plane) => {
                    tracing::info!(
                        version = control_plane.server_version,
                        url = control_plane.url,
                        "test control plane ready in {:.1?}",
                        started.elapsed()
                    );
                    // Straight to the process's stderr, not `eprintln!`: the test harness
                    // captures the macros, and the test log should show which server ran.
                    let _ = writeln!(
                        std::io::stderr(),
                        "testkit: control plane ready in {:.1?}: kube-apiserver {} at {} (kubeconfig {})",
                        started.elapsed(),
                        control_plane.server_version,
                        control_plane.url,
                        control_plane.admin_kubeconfig.display()
                    );
                    return Ok(control_plane);
                }
                Err(error) => {
                    eprintln!("testkit: control plane start attempt {attempt} failed: {error:#}");
                    failures.push(format!("attempt {attempt}: {error:#}"));
                }
            }
        }
        bail!(
            "the control plane did not start in {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        )
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Binaries {
    etcd: PathBuf,
    apiserver: PathBuf,
    controller_manager: PathBuf,
}

/// Removes a failed attempt's folder; the processes stop through their own `Drop`.
struct DirGuard(Option<PathBuf>);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn start_once(binaries: &Binaries) -> anyhow::Result<ControlPlane> {
    let dir = tempfile::Builder::new()
        .prefix("vertice-control-plane-")
        .tempdir()
        .context("creating the control plane's temp dir")?
        .keep();
    let mut dir_guard = DirGuard(Some(dir.clone()));
    let pki_dir = dir.join("pki");
    std::fs::create_dir_all(&pki_dir)?;

    let ca = CertificateAuthority::generate()?;
    let serving = ca.serving_cert()?;
    let (sa_private, sa_public) = pki::service_account_keys()?;
    let write = |name: &str, contents: &str| -> anyhow::Result<PathBuf> {
        let path = pki_dir.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };
    let ca_file = write("ca.crt", ca.cert_pem())?;
    let serving_cert_file = write("apiserver.crt", &serving.cert_pem)?;
    let serving_key_file = write("apiserver.key", &serving.key_pem)?;
    let sa_key_file = write("sa.key", &sa_private)?;
    let sa_pub_file = write("sa.pub", &sa_public)?;

    let etcd_port = free_port()?;
    let etcd_peer_port = free_port()?;
    let apiserver_port = free_port()?;
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let url = format!("https://127.0.0.1:{apiserver_port}");

    let mut processes = Vec::new();

    let mut etcd = Command::new(&binaries.etcd);
    etcd.arg(format!("--data-dir={}", dir.join("etcd").display()))
        .arg(format!("--listen-client-urls={etcd_url}"))
        .arg(format!("--advertise-client-urls={etcd_url}"))
        .arg(format!(
            "--listen-peer-urls=http://127.0.0.1:{etcd_peer_port}"
        ))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer_port}"
        ))
        .arg(format!(
            "--initial-cluster=default=http://127.0.0.1:{etcd_peer_port}"
        ))
        .arg("--unsafe-no-fsync=true");
    // Only etcd's watchdog removes the folder: etcd's data is what is large.
    processes.push(ServiceProcess::spawn("etcd", etcd, &dir, Some(&dir))?);
    let etcd_health = format!("{etcd_url}/health");
    wait_ready("etcd", &mut processes, || async {
        let response = reqwest::get(&etcd_health).await?;
        Ok(response.status().is_success() && response.text().await?.contains("true"))
    })
    .await?;

    let admin_identity = ca.client_cert(ADMIN_USER, &[MASTERS_GROUP])?;
    let admin_text = kubeconfig::render(&url, ca.cert_pem(), ADMIN_USER, &admin_identity)?;
    let admin_kubeconfig = dir.join("admin.kubeconfig");
    std::fs::write(&admin_kubeconfig, &admin_text)?;

    let mut apiserver = Command::new(&binaries.apiserver);
    apiserver
        .arg(format!("--etcd-servers={etcd_url}"))
        .arg(format!("--cert-dir={}", pki_dir.display()))
        .arg(format!("--tls-cert-file={}", serving_cert_file.display()))
        .arg(format!(
            "--tls-private-key-file={}",
            serving_key_file.display()
        ))
        .arg(format!("--secure-port={apiserver_port}"))
        .arg("--bind-address=127.0.0.1")
        // Without it the apiserver exits when the host has no default route
        // (controller-runtime#669).
        .arg("--advertise-address=127.0.0.1")
        .arg("--service-cluster-ip-range=10.0.0.0/24")
        .arg("--allow-privileged=true")
        .arg("--disable-admission-plugins=ServiceAccount")
        .arg("--authorization-mode=RBAC")
        .arg(format!("--client-ca-file={}", ca_file.display()))
        .arg(format!("--service-account-issuer={url}/"))
        .arg(format!(
            "--service-account-key-file={}",
            sa_pub_file.display()
        ))
        .arg(format!(
            "--service-account-signing-key-file={}",
            sa_key_file.display()
        ));
    processes.push(ServiceProcess::spawn(
        "kube-apiserver",
        apiserver,
        &dir,
        None,
    )?);
    let client = kubeconfig::client_from(&admin_text).await?;
    wait_ready("kube-apiserver", &mut processes, || async {
        let request = http::Request::get("/healthz").body(Vec::new())?;
        if client.request_text(request).await?.trim() != "ok" {
            return Ok(false);
        }
        // RBAC's bootstrap policy and the `default` namespace come from post-start hooks that
        // may finish after /healthz first answers.
        Ok(Api::<Namespace>::all(client.clone())
            .get_opt("default")
            .await?
            .is_some())
    })
    .await?;
    let server_version = client.apiserver_version().await?.git_version;

    let controller_manager_kubeconfig = dir.join("controller-manager.kubeconfig");
    let controller_identity = ca.client_cert("system:kube-controller-manager", &[MASTERS_GROUP])?;
    std::fs::write(
        &controller_manager_kubeconfig,
        kubeconfig::render(
            &url,
            ca.cert_pem(),
            "system:kube-controller-manager",
            &controller_identity,
        )?,
    )?;
    let mut controller_manager = Command::new(&binaries.controller_manager);
    controller_manager
        .arg(format!(
            "--kubeconfig={}",
            controller_manager_kubeconfig.display()
        ))
        .arg("--controllers=garbagecollector,namespace,endpointslice,job")
        .arg("--leader-elect=false")
        // Nothing scrapes or probes it; not serving avoids one more port race.
        .arg("--secure-port=0")
        .arg(format!(
            "--service-account-private-key-file={}",
            sa_key_file.display()
        ))
        .arg(format!("--root-ca-file={}", ca_file.display()));
    processes.push(ServiceProcess::spawn(
        "kube-controller-manager",
        controller_manager,
        &dir,
        None,
    )?);
    // It has no endpoint to probe; a flag error or a bad kubeconfig makes it exit within a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for process in &mut processes {
        process.ensure_running()?;
    }

    dir_guard.0 = None;
    Ok(ControlPlane {
        url,
        server_version,
        dir,
        admin_kubeconfig,
        ca,
        processes: Mutex::new(processes),
        kubeconfig_serial: AtomicU64::new(0),
    })
}

/// Polls `check` until it is true, failing early (with the log tail) when any process exits —
/// typically a port taken since we probed it — and on timeout with the last process's log tail.
async fn wait_ready<F, Fut>(
    what: &str,
    processes: &mut [ServiceProcess],
    mut check: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last_error = None;
    loop {
        for process in processes.iter_mut() {
            process.ensure_running()?;
        }
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(error) => last_error = Some(error),
        }
        if Instant::now() >= deadline {
            let tail = processes
                .last()
                .map(|process| process.log_tail(30))
                .unwrap_or_default();
            let last = last_error
                .map(|error| format!(" (last error: {error:#})"))
                .unwrap_or_default();
            bail!("{what} not ready after {START_TIMEOUT:?}{last}; last log lines:\n{tail}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
