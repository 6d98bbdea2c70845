//! [`Noise`]: the `/noise` implementation of [`SecurityUpgrade`].

use crate::config::NoiseConfig;
use crate::error::NoiseError;
use crate::handshake::handshake;
use libp2p_identity::PeerId;
use std::sync::Arc;
use tracing::Instrument;
use weft_upgrader::{BoxedIo, Budget, Role, SecuredConnection, SecurityError, SecurityUpgrade};

/// The multistream-select protocol id of libp2p Noise.
pub const PROTOCOL_ID: &str = "/noise";

/// What every handshake of one [`Noise`] shares: the configuration and the signed
/// static key.
pub(crate) struct Shared {
    pub(crate) config: NoiseConfig,
    /// Our identity public key, protobuf-encoded.
    pub(crate) identity_key: Vec<u8>,
    /// The Noise static keypair (X25519), fresh for each `Noise` and never stored.
    pub(crate) static_keypair: snow::Keypair,
    /// The identity signature over our static public key.
    pub(crate) static_signature: Vec<u8>,
    /// The static keypair in the form the handshake's X25519 reuses, so a
    /// handshake does not derive the public key again.
    pub(crate) static_key: Option<Arc<crate::static_dh::StaticKey>>,
}

/// libp2p Noise (`/noise`): `Noise_XX_25519_ChaChaPoly_SHA256` with the libp2p
/// handshake payload and inlined muxer negotiation.
///
/// Cheap to clone. One static Noise key is generated (and signed with the identity key)
/// per `Noise` value, as the spec allows, so a handshake costs no identity signature.
///
/// ```
/// use std::sync::Arc;
/// use weft_upgrader::SecurityUpgrade;
/// let identity = libp2p_identity::Keypair::generate_ed25519();
/// let noise: Arc<dyn SecurityUpgrade> =
///     Arc::new(weft_security_noise::Noise::new(&identity).expect("noise setup"));
/// assert_eq!(noise.protocol_id(), "/noise");
/// ```
#[derive(Clone)]
pub struct Noise {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Noise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Noise")
            .field(
                "local_peer",
                &self.shared.config.identity.public().to_peer_id(),
            )
            .field("handshake_timeout", &self.shared.config.handshake_timeout)
            .field("backend", &self.shared.config.backend)
            .finish_non_exhaustive()
    }
}

impl Noise {
    /// Noise with the default configuration for `identity`
    /// (shorthand for `NoiseConfig::new(identity).build()`).
    pub fn new(identity: &libp2p_identity::Keypair) -> Result<Self, NoiseError> {
        NoiseConfig::new(identity).build()
    }

    pub(crate) fn from_parts(
        config: NoiseConfig,
        static_keypair: snow::Keypair,
        static_signature: Vec<u8>,
    ) -> Self {
        let identity_key = config.identity.public().encode_protobuf();
        let static_key =
            crate::static_dh::StaticKey::new(&static_keypair.private, &static_keypair.public)
                .map(Arc::new);
        Noise {
            shared: Arc::new(Shared {
                config,
                identity_key,
                static_keypair,
                static_signature,
                static_key,
            }),
        }
    }

    /// Our own PeerId.
    pub fn local_peer_id(&self) -> PeerId {
        self.shared.config.identity.public().to_peer_id()
    }

    async fn run(
        &self,
        io: BoxedIo,
        role: Role,
        expected: Option<PeerId>,
        muxers: &[String],
        budget: Budget,
    ) -> Result<SecuredConnection, SecurityError> {
        let timeout = self.shared.config.handshake_timeout;
        let span = tracing::debug_span!(
            "noise_handshake",
            ?role,
            expected = ?expected,
            remote = tracing::field::Empty
        );
        let outcome = async {
            let result = tokio::time::timeout(
                timeout,
                handshake(&self.shared, io, role, expected, muxers, budget),
            )
            .await
            .unwrap_or(Err(SecurityError::Timeout(timeout)));
            match &result {
                Ok(secured) => {
                    tracing::Span::current()
                        .record("remote", tracing::field::display(&secured.remote_peer));
                    tracing::debug!(muxer = ?secured.muxer, "noise handshake complete");
                }
                Err(error) => tracing::debug!(%error, "noise handshake failed"),
            }
            result
        };
        outcome.instrument(span).await
    }
}

#[async_trait::async_trait]
impl SecurityUpgrade for Noise {
    fn protocol_id(&self) -> &str {
        PROTOCOL_ID
    }

    async fn secure_outbound(
        &self,
        io: BoxedIo,
        expected: Option<PeerId>,
        muxers: &[String],
    ) -> Result<SecuredConnection, SecurityError> {
        self.run(io, Role::Initiator, expected, muxers, Budget::unlimited())
            .await
    }

    async fn secure_inbound(
        &self,
        io: BoxedIo,
        muxers: &[String],
    ) -> Result<SecuredConnection, SecurityError> {
        self.run(io, Role::Responder, None, muxers, Budget::unlimited())
            .await
    }

    /// Reserves the handshake's buffers from `budget`, then keeps the channel's
    /// read buffer reserved for its life (at [`BUFFER_PRIORITY`](crate::BUFFER_PRIORITY)).
    async fn secure_outbound_with_budget(
        &self,
        io: BoxedIo,
        expected: Option<PeerId>,
        muxers: &[String],
        budget: Budget,
    ) -> Result<SecuredConnection, SecurityError> {
        self.run(io, Role::Initiator, expected, muxers, budget)
            .await
    }

    /// As [`secure_outbound_with_budget`](Self::secure_outbound_with_budget).
    async fn secure_inbound_with_budget(
        &self,
        io: BoxedIo,
        muxers: &[String],
        budget: Budget,
    ) -> Result<SecuredConnection, SecurityError> {
        self.run(io, Role::Responder, None, muxers, budget).await
    }
}
