//! The rustls crypto provider of libp2p TLS: *ring*, TLS 1.3 cipher suites only.

use rustls::crypto::{ring, CryptoProvider};
use std::sync::Arc;

/// The *ring* provider restricted to the TLS 1.3 suites, AES-128-GCM first (the
/// fastest with AES hardware; rustls follows the client's order).
pub(crate) fn libp2p_provider() -> Arc<CryptoProvider> {
    let suites = ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            suites,
            ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
            ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..ring::default_provider()
    })
}
