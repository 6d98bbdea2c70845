//! Configuration of the TLS upgrade.

use rustls::crypto::CryptoProvider;
use std::sync::Arc;
use std::time::Duration;

/// The default limit on a whole handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a [`TlsUpgrade`](crate::TlsUpgrade).
///
/// Two configurations are equal when their timeouts and lifetimes are, and both use
/// the default provider or the very same provider `Arc`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TlsConfig {
    /// How long a whole handshake may take, from the first byte to the verified peer
    /// (default 10 s). Past it the handshake fails with
    /// [`SecurityError::Timeout`](weft_upgrader::SecurityError::Timeout).
    pub handshake_timeout: Duration,
    /// How long one generated certificate is reused for further handshakes (default
    /// [`DEFAULT_CERTIFICATE_LIFETIME`]). `Duration::ZERO` makes a fresh certificate
    /// and key for every handshake. Reuse is allowed by the spec and saves a key
    /// generation and two signatures per handshake; the certificate's own validity is
    /// unaffected (100 years).
    pub certificate_lifetime: Duration,
    /// The rustls crypto provider of the handshakes: the cipher suites offered (a
    /// client's order is its preference, and a rustls server follows it), the key
    /// exchange groups (a client sends a key share for the first), signature
    /// verification and private key loading. `None` (the default) is
    /// [`default_crypto_provider`](crate::default_crypto_provider) (*ring*,
    /// AES-128-GCM first, X25519 first). Only the provider's TLS 1.3 suites are used;
    /// one without any makes every handshake fail with
    /// [`TlsError::Config`](crate::TlsError::Config).
    pub crypto_provider: Option<Arc<CryptoProvider>>,
}

impl PartialEq for TlsConfig {
    fn eq(&self, other: &Self) -> bool {
        let same_provider = match (&self.crypto_provider, &other.crypto_provider) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        self.handshake_timeout == other.handshake_timeout
            && self.certificate_lifetime == other.certificate_lifetime
            && same_provider
    }
}

impl Eq for TlsConfig {}

/// The default reuse period of a generated certificate.
pub const DEFAULT_CERTIFICATE_LIFETIME: Duration = Duration::from_secs(60);

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            certificate_lifetime: DEFAULT_CERTIFICATE_LIFETIME,
            crypto_provider: None,
        }
    }
}

impl TlsConfig {
    /// Sets the handshake timeout.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets how long a generated certificate is reused (`Duration::ZERO`: never).
    pub fn with_certificate_lifetime(mut self, lifetime: Duration) -> Self {
        self.certificate_lifetime = lifetime;
        self
    }

    /// Sets the rustls crypto provider (cipher suites, key exchange groups, signature
    /// algorithms) in place of [`default_crypto_provider`](crate::default_crypto_provider).
    ///
    /// ```
    /// use weft_security_tls::rustls::crypto::ring::{cipher_suite, kx_group};
    /// use weft_security_tls::{default_crypto_provider, TlsConfig};
    ///
    /// // ChaCha20-Poly1305 only, key exchange over P-256.
    /// let mut provider = (*default_crypto_provider()).clone();
    /// provider.cipher_suites = vec![cipher_suite::TLS13_CHACHA20_POLY1305_SHA256];
    /// provider.kx_groups = vec![kx_group::SECP256R1];
    /// let config = TlsConfig::default().with_crypto_provider(provider.into());
    /// # let _ = config;
    /// ```
    pub fn with_crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.crypto_provider = Some(provider);
        self
    }

    /// The provider handshakes use: the configured one, or the default.
    pub(crate) fn provider(&self) -> Arc<CryptoProvider> {
        self.crypto_provider
            .clone()
            .unwrap_or_else(crate::default_crypto_provider)
    }
}
