//! Configuration of the TLS upgrade.

use std::time::Duration;

/// The default limit on a whole handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a [`TlsUpgrade`](crate::TlsUpgrade).
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// The default reuse period of a generated certificate.
pub const DEFAULT_CERTIFICATE_LIFETIME: Duration = Duration::from_secs(60);

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            certificate_lifetime: DEFAULT_CERTIFICATE_LIFETIME,
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
}
