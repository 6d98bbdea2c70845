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
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

impl TlsConfig {
    /// Sets the handshake timeout.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }
}
