//! A throwaway self-signed TLS certificate for the test receivers that speak TLS (the HTTPS
//! [`HttpSink`](super::HttpSink), the SMTP receiver's STARTTLS). It names `localhost` and
//! `127.0.0.1`, so a client that trusts [`SelfSigned::cert_pem`] verifies it like any real
//! server's certificate — no "accept invalid certificates" switch is needed in the code under
//! test.

use std::sync::Arc;

use anyhow::Context;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A self-signed certificate and its key, both PEM (the key PKCS#8).
#[derive(Clone)]
pub struct SelfSigned {
    /// The certificate, PEM: what a client adds as its trusted root.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for SelfSigned {
    // The key stays out of test output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSigned").finish_non_exhaustive()
    }
}

impl SelfSigned {
    /// A fresh ECDSA P-256 certificate for `localhost` and `127.0.0.1`, valid from now for
    /// rcgen's default span (years: longer than any test).
    pub fn localhost() -> anyhow::Result<Self> {
        let key = KeyPair::generate().context("generating a TLS key")?;
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .context("TLS certificate names")?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "vertice-testkit receiver");
        params.distinguished_name = name;
        let cert = params
            .self_signed(&key)
            .context("self-signing a TLS certificate")?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        })
    }

    /// A rustls server configuration (ring provider, TLS 1.2 and 1.3, no client certificates)
    /// that presents this certificate.
    pub(crate) fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        // Explicitly ring: the process may have two providers compiled in (see Cargo.toml).
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(self.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .context("loading the TLS certificate")?;
        Ok(Arc::new(config))
    }
}
