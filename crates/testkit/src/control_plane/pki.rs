//! The control plane's certificates: one small ECDSA P-256 CA that signs the apiserver's serving
//! certificate and a client certificate for any user a test asks for (the apiserver maps the
//! certificate's CN to the user name and each O to a group), plus the service-account key pair.
//! Keys are PKCS#8 PEM, which both kube-rs (rustls) and the Go binaries read.

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// A certificate and its private key, both PEM.
pub struct CertifiedKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM.
    pub key_pem: String,
}

/// The test CA.
pub struct CertificateAuthority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl CertificateAuthority {
    /// A fresh CA; nothing outlives the control plane it belongs to.
    pub fn generate() -> anyhow::Result<Self> {
        let key = KeyPair::generate().context("generating the CA key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("vertice-testkit-ca", &[])?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .context("self-signing the CA certificate")?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM (the apiserver's `--client-ca-file`, every kubeconfig's CA).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The apiserver's serving certificate, valid for `localhost` and `127.0.0.1`.
    pub fn serving_cert(&self) -> anyhow::Result<CertifiedKey> {
        let mut params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            // The in-cluster name of the `kubernetes` Service, for tools that use it.
            "kubernetes.default.svc".to_owned(),
        ])
        .context("serving certificate names")?;
        params.distinguished_name = name("kube-apiserver", &[])?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate for `user` in `groups` (at most two groups; see [`name`]).
    pub fn client_cert(&self, user: &str, groups: &[&str]) -> anyhow::Result<CertifiedKey> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(user, groups)?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> anyhow::Result<CertifiedKey> {
        let key = KeyPair::generate().context("generating a key")?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("signing a certificate")?;
        Ok(CertifiedKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The service-account token key pair: (private key PEM, public key PEM).
pub fn service_account_keys() -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate().context("generating the service-account key")?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// A subject with CN `common_name` and one O per group.
///
/// rcgen keys a name's attributes by type, so it holds one `OrganizationName`; a second O is
/// written under the same OID (2.5.4.10) as a custom attribute type, which is the identical
/// encoding. A third would need another certificate library, and no test needs it.
fn name(common_name: &str, groups: &[&str]) -> anyhow::Result<DistinguishedName> {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    match groups {
        [] => {}
        [group] => name.push(DnType::OrganizationName, *group),
        [first, second] => {
            name.push(DnType::OrganizationName, *first);
            name.push(DnType::CustomDnType(vec![2, 5, 4, 10]), *second);
        }
        _ => bail!(
            "a test client certificate carries at most two groups, got {}: {groups:?}",
            groups.len()
        ),
    }
    Ok(name)
}
