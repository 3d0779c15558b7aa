//! The process-wide TLS crypto provider.
//!
//! kube enables rustls's `ring` backend and object_store's `aws` feature enables `aws-lc-rs`;
//! with both compiled in, rustls cannot choose by itself and panics at the first TLS handshake.
//! Every binary of ours calls [`install_crypto_provider`] first thing, so the choice is ours.

/// Makes `ring` the process-wide rustls provider. Calling it again is harmless.
pub fn install_crypto_provider() {
    // `Err` only means a provider is already installed, which is what we want anyway.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
