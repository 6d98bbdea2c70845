//! The detailed error of this crate, boxed inside
//! [`SecurityError::Authentication`](weft_upgrader::SecurityError::Authentication) or
//! [`SecurityError::Protocol`](weft_upgrader::SecurityError::Protocol).

use libp2p_identity::PeerId;

/// Which libp2p TLS check failed, or why the handshake could not run.
///
/// Recover it from a [`weft_upgrader::SecurityError`] with
/// `error.source().and_then(|e| e.downcast_ref::<TlsError>())`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The peer presented no certificate.
    #[error("the peer presented no certificate")]
    NoCertificate,
    /// The peer presented a chain of more than one certificate.
    #[error("the peer presented {0} certificates; exactly one is allowed")]
    TooManyCertificates(usize),
    /// The certificate is not valid X.509 DER.
    #[error("malformed certificate: {0}")]
    MalformedCertificate(String),
    /// The certificate is expired or not yet valid.
    #[error("the certificate is not valid at the current time")]
    NotValidNow,
    /// The certificate's signature algorithm (with its key) is not an accepted
    /// TLS 1.3 signature scheme.
    #[error("unsupported certificate signature scheme: {0}")]
    UnsupportedSignatureScheme(String),
    /// The certificate's self-signature does not verify.
    #[error("the certificate's self-signature is invalid")]
    BadSelfSignature,
    /// The certificate carries a deprecated `issuerUniqueID` or `subjectUniqueID`.
    #[error("the certificate carries a deprecated unique identifier")]
    UniqueIdentifierPresent,
    /// The libp2p public key extension (1.3.6.1.4.1.53594.1.1) is missing.
    #[error("the libp2p public key extension is missing")]
    MissingExtension,
    /// The libp2p public key extension is present more than once.
    #[error("the libp2p public key extension is present more than once")]
    DuplicateExtension,
    /// The certificate has a critical extension this implementation does not
    /// understand (its OID is given).
    #[error("unknown critical extension {0}")]
    UnknownCriticalExtension(String),
    /// The libp2p extension's `SignedKey` is not valid DER.
    #[error("malformed libp2p extension: {0}")]
    MalformedExtension(&'static str),
    /// The host public key in the extension is not a valid libp2p `PublicKey`.
    #[error("invalid host public key in the libp2p extension: {0}")]
    InvalidHostKey(String),
    /// The extension's signature by the host key does not verify.
    #[error("the libp2p extension signature does not verify")]
    BadExtensionSignature,
    /// The handshake proved a different peer than the dialer expected.
    #[error("the remote proved peer {actual}, but {expected} was expected")]
    PeerIdMismatch {
        /// The peer the dialer meant to reach (boxed to keep the error small).
        expected: Box<PeerId>,
        /// The peer the certificate proves.
        actual: Box<PeerId>,
    },
    /// The peer tried to use TLS 1.2 (or lower).
    #[error("only TLS 1.3 is allowed")]
    VersionNotAllowed,
    /// The handshake signature (CertificateVerify) failed.
    #[error("handshake signature check failed: {0}")]
    HandshakeSignature(rustls::Error),
    /// rustls reported a TLS-level failure (bad record, alert, no common ALPN, ...).
    #[error("TLS failure: {0}")]
    Rustls(rustls::Error),
    /// The handshake finished but did not verify the peer's certificate (a bug guard).
    #[error("the handshake completed without a verified peer certificate")]
    UnverifiedPeer,
    /// Generating our own certificate failed.
    #[error("could not generate the local certificate: {0}")]
    CertificateGeneration(String),
    /// Building the rustls configuration failed.
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

impl TlsError {
    /// Whether this error means the peer failed authentication (as opposed to breaking
    /// the protocol or a local failure).
    pub fn is_authentication_failure(&self) -> bool {
        !matches!(
            self,
            TlsError::Rustls(_)
                | TlsError::VersionNotAllowed
                | TlsError::CertificateGeneration(_)
                | TlsError::Config(_)
        )
    }

    /// Wraps this error so rustls can carry it through a failed certificate check.
    pub(crate) fn into_rustls(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            std::sync::Arc::new(self),
        )))
    }
}
