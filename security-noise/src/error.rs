//! The detailed errors of the Noise handshake.

use weft_upgrader::SecurityError;

/// Which check of the libp2p Noise handshake failed.
///
/// It travels boxed inside [`SecurityError::Authentication`] (the remote failed to
/// prove its identity) or [`SecurityError::Protocol`] (the remote broke the protocol);
/// recover it with `downcast_ref::<NoiseError>()` on the source error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NoiseError {
    /// A Noise handshake message failed to decrypt or was malformed (snow rejected it).
    #[error("noise handshake message {message} rejected: {source}")]
    Handshake {
        /// Which XX message (1, 2 or 3) was rejected.
        message: u8,
        /// What snow said.
        #[source]
        source: snow::Error,
    },
    /// Setting up the Noise state failed locally (key generation, resolver).
    #[error("local noise setup failed: {0}")]
    Setup(#[source] snow::Error),
    /// A handshake frame announced more bytes than we accept for a handshake message.
    #[error("handshake message {message} is {len} bytes, more than the {max} bytes allowed")]
    HandshakeMessageTooLarge {
        /// Which XX message (1, 2 or 3).
        message: u8,
        /// The announced length.
        len: usize,
        /// Our bound.
        max: usize,
    },
    /// The first handshake message carried a payload, which the initiator MUST NOT send.
    #[error("the initiator's first handshake message carries {0} payload bytes, expected none")]
    UnexpectedEarlyPayload(usize),
    /// The decrypted handshake payload is not a valid `NoiseHandshakePayload` protobuf.
    #[error("the handshake payload is not a valid protobuf: {0}")]
    PayloadDecode(#[from] prost::DecodeError),
    /// The handshake payload has no `identity_key`.
    #[error("the handshake payload has no identity key")]
    MissingIdentityKey,
    /// The handshake payload has no `identity_sig`.
    #[error("the handshake payload has no identity signature")]
    MissingIdentitySignature,
    /// The `identity_key` is not a public key libp2p-identity can decode.
    #[error("the remote identity key cannot be decoded: {0}")]
    InvalidIdentityKey(#[source] libp2p_identity::DecodingError),
    /// The `identity_sig` does not verify over the remote's Noise static key.
    #[error("the identity signature does not verify over the remote noise static key")]
    BadIdentitySignature,
    /// snow finished the handshake without a remote static key (cannot happen with XX).
    #[error("the handshake finished without a remote static key")]
    MissingRemoteStaticKey,
    /// The remote offered more stream muxers than we accept.
    #[error("the remote offered {count} stream muxers, more than the {max} allowed")]
    TooManyMuxers {
        /// How many it offered.
        count: usize,
        /// Our bound.
        max: usize,
    },
    /// Signing our own static key with the identity keypair failed.
    #[error("signing the local noise static key failed: {0}")]
    Signing(#[from] libp2p_identity::SigningError),
}

impl NoiseError {
    /// Wraps this error in the [`SecurityError`] variant that matches its kind.
    pub fn into_security_error(self) -> SecurityError {
        match self {
            NoiseError::MissingIdentityKey
            | NoiseError::MissingIdentitySignature
            | NoiseError::InvalidIdentityKey(_)
            | NoiseError::BadIdentitySignature
            | NoiseError::MissingRemoteStaticKey => SecurityError::Authentication(Box::new(self)),
            // A tampered message 2 or 3 fails AEAD decryption: the remote (or someone
            // on the path) failed to prove the handshake transcript.
            NoiseError::Handshake {
                source: snow::Error::Decrypt,
                ..
            } => SecurityError::Authentication(Box::new(self)),
            other => SecurityError::Protocol(Box::new(other)),
        }
    }
}

impl From<NoiseError> for SecurityError {
    fn from(error: NoiseError) -> Self {
        error.into_security_error()
    }
}
