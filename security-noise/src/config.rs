//! Configuration: the builder and the crypto backend choice.

use crate::error::NoiseError;
use crate::payload::static_key_signing_data;
use crate::Noise;
use libp2p_identity::Keypair;
use snow::params::NoiseParams;
use snow::resolvers::{BoxedCryptoResolver, DefaultResolver, FallbackResolver, RingResolver};
use std::time::Duration;

/// The one Noise protocol libp2p uses.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_SHA256";

/// The default handshake timeout.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The default bound on one handshake message (a legitimate message 2 with an RSA-4096
/// identity key and a long muxer list stays far below it).
pub const DEFAULT_MAX_HANDSHAKE_MESSAGE_LEN: usize = 16 * 1024;

/// Which implementation of the symmetric primitives (ChaCha20-Poly1305, SHA-256) snow
/// uses. X25519 comes from `curve25519-dalek` either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CryptoBackend {
    /// `ring` for ChaCha20-Poly1305, SHA-256 and randomness (snow's `ring-accelerated`
    /// resolver); after the handshake the transport uses `ring::aead` directly with the
    /// split keys, in place. The default: it measured faster on x86-64 (see the crate
    /// README).
    #[default]
    Ring,
    /// snow's default resolver: the pure-Rust RustCrypto crates.
    RustCrypto,
}

impl CryptoBackend {
    pub(crate) fn resolver(self) -> BoxedCryptoResolver {
        match self {
            CryptoBackend::Ring => Box::new(FallbackResolver::new(
                Box::new(RingResolver),
                Box::new(DefaultResolver),
            )),
            CryptoBackend::RustCrypto => Box::new(DefaultResolver),
        }
    }
}

/// Parses [`NOISE_PARAMS`].
pub(crate) fn noise_params() -> Result<NoiseParams, NoiseError> {
    NOISE_PARAMS.parse().map_err(NoiseError::Setup)
}

/// Builds a [`Noise`] security upgrade.
///
/// ```
/// use std::time::Duration;
/// let identity = libp2p_identity::Keypair::generate_ed25519();
/// let noise = weft_security_noise::NoiseConfig::new(&identity)
///     .handshake_timeout(Duration::from_secs(5))
///     .build()
///     .expect("noise setup");
/// ```
#[derive(Debug, Clone)]
pub struct NoiseConfig {
    pub(crate) identity: Keypair,
    pub(crate) handshake_timeout: Duration,
    pub(crate) backend: CryptoBackend,
    pub(crate) max_handshake_message_len: usize,
    pub(crate) webtransport_certhashes: Vec<Vec<u8>>,
}

impl NoiseConfig {
    /// A configuration with the defaults, for the given identity.
    pub fn new(identity: &Keypair) -> Self {
        NoiseConfig {
            identity: identity.clone(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            backend: CryptoBackend::default(),
            max_handshake_message_len: DEFAULT_MAX_HANDSHAKE_MESSAGE_LEN,
            webtransport_certhashes: Vec::new(),
        }
    }

    /// How long a whole handshake may take (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Which crypto backend snow uses (default [`CryptoBackend::Ring`]).
    pub fn crypto_backend(mut self, backend: CryptoBackend) -> Self {
        self.backend = backend;
        self
    }

    /// The largest handshake message we read, in bytes (default 16 KiB, at most 65535).
    pub fn max_handshake_message_len(mut self, len: usize) -> Self {
        self.max_handshake_message_len = len.min(crate::framing::MAX_FRAME_LEN);
        self
    }

    /// WebTransport certificate hashes (multihash bytes) to announce as the responder.
    /// Only meaningful for WebTransport; empty by default.
    pub fn webtransport_certhashes(mut self, certhashes: Vec<Vec<u8>>) -> Self {
        self.webtransport_certhashes = certhashes;
        self
    }

    /// Generates the Noise static keypair, signs it with the identity key and returns
    /// the ready [`Noise`] upgrade.
    pub fn build(self) -> Result<Noise, NoiseError> {
        let params = noise_params()?;
        let static_keypair = snow::Builder::with_resolver(params, self.backend.resolver())
            .generate_keypair()
            .map_err(NoiseError::Setup)?;
        let static_signature = self
            .identity
            .sign(&static_key_signing_data(&static_keypair.public))?;
        Ok(Noise::from_parts(self, static_keypair, static_signature))
    }
}
