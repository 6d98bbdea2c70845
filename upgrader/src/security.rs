//! The security trait: turn a raw byte stream into an authenticated, encrypted one.

use crate::budget::Budget;
use crate::io::BoxedIo;
use libp2p_identity::{PeerId, PublicKey};
use std::time::Duration;

/// A libp2p security protocol (for example `/noise` or `/tls/1.0.0`).
///
/// An implementation is built with the local identity keypair and holds its own
/// configuration (timeouts, bounds). It is dyn-compatible, so the upgrader can keep an
/// ordered list of `Arc<dyn SecurityUpgrade>` chosen at run time.
#[async_trait::async_trait]
pub trait SecurityUpgrade: Send + Sync + 'static {
    /// The multistream-select protocol id, for example `/noise`.
    fn protocol_id(&self) -> &str;

    /// Runs the handshake as the initiator (Noise initiator, TLS client).
    ///
    /// `expected` is the peer the caller meant to reach: when it is `Some`, a
    /// handshake that proves any other peer fails with
    /// [`SecurityError::PeerIdMismatch`]. `muxers` are the muxer protocol ids we offer
    /// for inlined negotiation, in preference order (empty: do not inline).
    async fn secure_outbound(
        &self,
        io: BoxedIo,
        expected: Option<PeerId>,
        muxers: &[String],
    ) -> Result<SecuredConnection, SecurityError>;

    /// Runs the handshake as the responder (Noise responder, TLS server).
    ///
    /// `muxers` are the muxer protocol ids we support for inlined negotiation
    /// (empty: do not inline).
    async fn secure_inbound(
        &self,
        io: BoxedIo,
        muxers: &[String],
    ) -> Result<SecuredConnection, SecurityError>;

    /// [`secure_outbound`](SecurityUpgrade::secure_outbound), charging the
    /// channel's buffers (the read buffer a remote fills, above all) to `budget`
    /// for as long as the channel lives.
    ///
    /// The upgrader calls this one. The provided implementation ignores the budget.
    async fn secure_outbound_with_budget(
        &self,
        io: BoxedIo,
        expected: Option<PeerId>,
        muxers: &[String],
        budget: Budget,
    ) -> Result<SecuredConnection, SecurityError> {
        let _ = budget;
        self.secure_outbound(io, expected, muxers).await
    }

    /// [`secure_inbound`](SecurityUpgrade::secure_inbound), charging the channel's
    /// buffers to `budget` for as long as the channel lives.
    ///
    /// The upgrader calls this one. The provided implementation ignores the budget.
    async fn secure_inbound_with_budget(
        &self,
        io: BoxedIo,
        muxers: &[String],
        budget: Budget,
    ) -> Result<SecuredConnection, SecurityError> {
        let _ = budget;
        self.secure_inbound(io, muxers).await
    }
}

/// The result of a successful security handshake.
pub struct SecuredConnection {
    /// The peer the handshake proved.
    pub remote_peer: PeerId,
    /// The remote identity key (its `PeerId` is `remote_peer`).
    pub remote_public_key: PublicKey,
    /// The encrypted channel. Bytes written here are encrypted and framed.
    pub io: BoxedIo,
    /// The muxer agreed inside the handshake (Noise extensions, TLS ALPN), if any.
    /// `None` means the muxer must be negotiated with multistream-select.
    pub muxer: Option<String>,
}

impl std::fmt::Debug for SecuredConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecuredConnection")
            .field("remote_peer", &self.remote_peer)
            .field("muxer", &self.muxer)
            .finish_non_exhaustive()
    }
}

/// Why a security handshake failed.
///
/// The variants are the outcomes every caller distinguishes; the detail of a
/// protocol-specific check lives in the boxed source error, which the implementing
/// crate documents (for example `weft_security_noise::NoiseError`) and which can be
/// recovered with `downcast_ref`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// The underlying stream failed or closed during the handshake.
    #[error("i/o error during the security handshake: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake did not finish in time.
    #[error("the security handshake did not finish within {0:?}")]
    Timeout(Duration),
    /// The handshake proved a different peer than the one dialed.
    #[error("the remote proved peer {actual}, but {expected} was expected")]
    PeerIdMismatch {
        /// The peer the dialer meant to reach.
        expected: PeerId,
        /// The peer the handshake proved.
        actual: PeerId,
    },
    /// The remote failed authentication: a bad signature, certificate or key.
    #[error("the remote failed authentication: {0}")]
    Authentication(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The remote broke the protocol: a malformed, oversized or unexpected message.
    #[error("security protocol violation: {0}")]
    Protocol(#[source] Box<dyn std::error::Error + Send + Sync>),
}
