//! The errors of this crate.

use std::time::Duration;
use weft_security_tls::TlsError;

/// Why a QUIC endpoint, dial or handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuicError {
    /// Creating or binding a UDP socket failed.
    #[error("UDP socket error: {0}")]
    Io(#[from] std::io::Error),
    /// Our own TLS configuration or certificate could not be built.
    #[error("local TLS setup failed: {0}")]
    LocalTls(#[source] TlsError),
    /// quinn refused to start the dial (for example an unusable remote address).
    #[error("cannot start the QUIC dial: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The handshake failed: the peer's certificate did not verify (or proved
    /// another peer than expected), no common ALPN, a closed or unreachable peer.
    #[error("QUIC handshake failed: {0}")]
    Handshake(#[source] quinn::ConnectionError),
    /// The handshake did not finish in time.
    #[error("QUIC handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// The handshake finished but the peer's certificate carried no usable identity
    /// (a guard: the verifier checked it already).
    #[error("the peer's certificate carries no usable identity: {0}")]
    PeerIdentity(#[source] TlsError),
    /// The endpoint is closed.
    #[error("the QUIC endpoint is closed")]
    Closed,
}

impl QuicError {
    /// Whether the handshake failed because the peer's certificate was refused (a
    /// wrong peer id, a bad libp2p extension) by us or by the peer.
    pub fn is_authentication_failure(&self) -> bool {
        let QuicError::Handshake(quinn::ConnectionError::TransportError(error)) = self else {
            return matches!(self, QuicError::PeerIdentity(_));
        };
        // TLS alerts travel as QUIC CRYPTO_ERROR codes 0x100 + alert: 42 bad_certificate,
        // 43 unsupported_certificate, 46 certificate_unknown, 116 certificate_required.
        let code = u64::from(error.code);
        matches!(code.checked_sub(0x100), Some(42 | 43 | 46 | 116))
    }
}

impl From<QuicError> for std::io::Error {
    fn from(error: QuicError) -> Self {
        use std::io::ErrorKind;
        let kind = match &error {
            QuicError::Io(e) => e.kind(),
            QuicError::HandshakeTimeout(_) => ErrorKind::TimedOut,
            QuicError::Handshake(quinn::ConnectionError::TimedOut) => ErrorKind::TimedOut,
            QuicError::Handshake(quinn::ConnectionError::ConnectionClosed(_))
            | QuicError::Handshake(quinn::ConnectionError::ApplicationClosed(_)) => {
                ErrorKind::ConnectionRefused
            }
            e if e.is_authentication_failure() => ErrorKind::PermissionDenied,
            _ => ErrorKind::Other,
        };
        std::io::Error::new(kind, error)
    }
}
