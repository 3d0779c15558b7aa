//! The backup operator in the end-to-end tests runs with exactly the RBAC its Helm chart grants
//! (issue 9): the chart's ServiceAccount and RBAC templates are rendered by `helm template` for a
//! release named after the test's namespace (so its ClusterRole is the test's own) watching only
//! that namespace, server-side applied as the admin once per namespace, and the operator talks
//! to the apiserver as `system:serviceaccount:<ns>:<sa>`. A rule the chart lacks then fails the
//! test: a step does not happen, or the apiserver's refusal is logged, which [`RefusalCheck`]
//! turns into a failure at the end of the test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, PoisonError};

use vertice_testkit::chart::{self, InstalledRbac};
use vertice_testkit::control_plane::ControlPlane;
use vertice_testkit::log_capture::LogCapture;

/// The chart's templates that hold its ServiceAccount and RBAC.
pub const TEMPLATES: [&str; 2] = chart::RBAC_TEMPLATES;

/// The backup operator's chart.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/backup")
}

/// The RBAC applied so far in this test binary, by namespace.
static INSTALLED: LazyLock<Mutex<HashMap<String, InstalledRbac>>> = LazyLock::new(Mutex::default);

/// The chart's ServiceAccount and RBAC for the operator of the tests in `namespace`, as the
/// tests run it (`--namespace <ns>`, no leader election): rendered with
/// `watchNamespace=<ns>` (a RoleBinding there, nothing cluster-wide) and
/// `leaderElection.enabled=false`, and applied the first time a namespace asks.
pub async fn namespaced_operator(namespace: &str) -> InstalledRbac {
    let known = INSTALLED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(namespace)
        .cloned();
    if let Some(known) = known {
        return known;
    }
    let admin = ControlPlane::shared()
        .await
        .unwrap()
        .admin_client()
        .await
        .unwrap();
    let values = [
        ("watchNamespace", namespace),
        ("leaderElection.enabled", "false"),
    ];
    let installed = chart::install_rbac(
        &admin,
        &chart_dir(),
        namespace,
        namespace,
        &TEMPLATES,
        &values,
    )
    .await
    .unwrap();
    INSTALLED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(namespace.to_owned(), installed.clone());
    installed
}

/// The chart's RBAC for the tests in `namespace` (see [`namespaced_operator`]) and a client
/// acting as its ServiceAccount.
pub async fn operator_client(namespace: &str) -> (InstalledRbac, kube::Client) {
    let installed = namespaced_operator(namespace).await;
    let control_plane = ControlPlane::shared().await.unwrap();
    let client = installed.client(control_plane).await.unwrap();
    (installed, client)
}

/// The captured log lines that record the apiserver refusing `user`.
pub fn refusals(user: &str) -> Vec<String> {
    LogCapture::install()
        .unwrap()
        .lines()
        .into_iter()
        .filter(|line| chart::is_refusal_of(line, user))
        .collect()
}

/// Fails the test when the operator running as `user` was refused anything by the apiserver —
/// even a call whose failure it only logs (an Event, a watch) — checked when it is dropped
/// (the operator stopped, or the test ended), unless the test is failing already.
pub struct RefusalCheck {
    user: String,
}

impl RefusalCheck {
    /// Checks the operator logs for refusals of `user`. The log capture must be installed
    /// before the operator sets up logging (it is here, if nothing else did it first).
    pub fn new(user: String) -> Self {
        LogCapture::install().unwrap();
        Self { user }
    }
}

impl Drop for RefusalCheck {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let refused = refusals(&self.user);
        assert!(
            refused.is_empty(),
            "the apiserver refused the operator ({}) under the chart's RBAC; a rule is missing \
             in charts/backup/templates/rbac.yaml:\n{}",
            self.user,
            refused.join("\n")
        );
    }
}
