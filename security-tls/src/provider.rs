//! The rustls crypto provider of libp2p TLS: *ring*, TLS 1.3 cipher suites only.

use rustls::crypto::{ring, CryptoProvider};
use std::sync::Arc;

/// The crypto provider weft uses unless [`TlsConfig::crypto_provider`] names another:
/// *ring*'s, with its TLS 1.3 cipher suites AES-128-GCM first (the fastest with AES
/// hardware; a rustls server follows the client's order), AES-256-GCM, then
/// ChaCha20-Poly1305, and *ring*'s key exchange groups (X25519 first).
///
/// A start for a provider of your own: change its `cipher_suites` or `kx_groups` and
/// pass it to [`TlsConfig::with_crypto_provider`].
///
/// [`TlsConfig::crypto_provider`]: crate::TlsConfig::crypto_provider
/// [`TlsConfig::with_crypto_provider`]: crate::TlsConfig::with_crypto_provider
pub fn default_crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
            ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..ring::default_provider()
    })
}
