//! Kubeconfig files for the test control plane. Certificates are inlined (`*-data`) so a file
//! stands alone: it can be copied (the demo does) and read by kubectl, helm and kube-rs alike.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::pki::CertifiedKey;

/// The cluster and context name in every kubeconfig we write.
pub const CONTEXT: &str = "vertice-testkit";

/// Renders a kubeconfig for `user`, authenticated by `identity`, against `server_url`.
pub fn render(
    server_url: &str,
    ca_cert_pem: &str,
    user: &str,
    identity: &CertifiedKey,
) -> anyhow::Result<String> {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CONTEXT,
            "cluster": {
                "server": server_url,
                "certificate-authority-data": STANDARD.encode(ca_cert_pem),
            },
        }],
        "users": [{
            "name": user,
            "user": {
                "client-certificate-data": STANDARD.encode(&identity.cert_pem),
                "client-key-data": STANDARD.encode(&identity.key_pem),
            },
        }],
        "contexts": [{
            "name": CONTEXT,
            "context": { "cluster": CONTEXT, "user": user, "namespace": "default" },
        }],
        "current-context": CONTEXT,
        "preferences": {},
    });
    Ok(serde_yaml::to_string(&config)?)
}

/// A kube client from kubeconfig text. Built per call: a `kube::Client` belongs to the tokio
/// runtime it was made in, and each `#[tokio::test]` has its own.
pub async fn client_from(kubeconfig_yaml: &str) -> anyhow::Result<kube::Client> {
    install_crypto_provider();
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig_yaml)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

/// Makes ring the process's rustls provider. rustls picks one by itself only when exactly one is
/// compiled in, and a test binary that also links object_store (aws-lc-rs) has two. Installing
/// fails harmlessly when a provider is already set.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
