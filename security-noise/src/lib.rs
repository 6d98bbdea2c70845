//! libp2p Noise (`/noise`, `Noise_XX_25519_ChaChaPoly_SHA256`) for weft.
//!
//! [`Noise`] implements [`weft_upgrader::SecurityUpgrade`]: it runs the XX handshake
//! with `snow` (empty prologue), authenticates the remote's Noise static key with the
//! signature in the libp2p handshake payload (identity keys of every type
//! `libp2p-identity` supports), checks the dialed [`PeerId`](libp2p_identity::PeerId),
//! negotiates the stream muxer inside the handshake when both sides offer lists (the
//! `stream_muxers` extension) and returns an encrypted [`NoiseStream`].
//!
//! ```no_run
//! # async fn example(tcp: weft_upgrader::BoxedIo) -> Result<(), Box<dyn std::error::Error>> {
//! use weft_upgrader::SecurityUpgrade;
//! let identity = libp2p_identity::Keypair::generate_ed25519();
//! let noise = weft_security_noise::Noise::new(&identity)?;
//! let secured = noise
//!     .secure_outbound(tcp, None, &["/yamux/1.0.0".to_string()])
//!     .await?;
//! println!("talking to {} (muxer {:?})", secured.remote_peer, secured.muxer);
//! # Ok(()) }
//! ```
//!
//! Handshake failures are [`weft_upgrader::SecurityError`]s; the Noise-specific detail
//! is a boxed [`NoiseError`] inside `Authentication` or `Protocol`. Handshakes need a
//! Tokio runtime with the time driver (for the handshake timeout).

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod config;
mod error;
mod framing;
mod handshake;
pub mod muxer_negotiation;
pub mod payload;
mod static_dh;
mod transport;
mod upgrade;

pub use config::{
    CryptoBackend, NoiseConfig, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_HANDSHAKE_MESSAGE_LEN,
    NOISE_PARAMS,
};
pub use error::NoiseError;
pub use framing::{MAX_FRAME_LEN, MAX_PLAINTEXT_LEN};
pub use handshake::BUFFER_PRIORITY;
pub use transport::NoiseStream;
pub use upgrade::{Noise, PROTOCOL_ID};

// The README example is a doctest (compiled, and run where it needs only 127.0.0.1).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
