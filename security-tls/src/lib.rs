//! libp2p TLS 1.3 (`/tls/1.0.0`) for weft, with rustls and rcgen.
//!
//! [`TlsUpgrade`] implements [`weft_upgrader::SecurityUpgrade`] as the
//! [libp2p TLS spec](https://github.com/libp2p/specs/blob/master/tls/tls.md) says:
//!
//! - handshakes present a self-signed ECDSA P-256 certificate (fresh, or reused for
//!   [`TlsConfig::certificate_lifetime`], 60 s by default) whose first
//!   extension is the libp2p public key extension (OID 1.3.6.1.4.1.53594.1.1): the
//!   host public key and its signature over `"libp2p-tls-handshake:"` ‖ the
//!   certificate's SubjectPublicKeyInfo;
//! - both sides require and verify exactly one peer certificate (validity period,
//!   self-signature, the extension present exactly once, no unknown critical
//!   extension, the extension signature), TLS 1.3 only, no SNI;
//! - the dialer checks the expected [`PeerId`](libp2p_identity::PeerId);
//! - muxers may be agreed through ALPN (inlined muxer negotiation), following the
//!   client's preference, with `"libp2p"` as the fallback.
//!
//! For transports with TLS built in (QUIC), [`SharedTlsConfigs`] holds a rustls client
//! and server configuration per identity with the same checks, the expected peer
//! carried in the server name of each dial ([`SharedTlsConfigs::dial_name`]), and
//! TLS 1.3 session tickets kept per remote peer id for resumption (0-RTT in QUIC);
//! its certificate rotates inside the configurations ([`RotatingCertificate`]).
//!
//! Failures are [`weft_upgrader::SecurityError`]s; the detailed cause is a boxed
//! [`TlsError`] inside `Authentication` or `Protocol`.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod alpn;
mod budgeted;
pub mod certificate;
mod config;
mod error;
mod provider;
mod rotation;
mod sessions;
mod shared;
mod signed_key;
mod upgrade;
mod verifier;

pub use alpn::LIBP2P_ALPN;
pub use budgeted::BUFFER_PRIORITY;
pub use certificate::{generate_certificate, GeneratedCertificate, Libp2pCertificate};
pub use config::{TlsConfig, DEFAULT_CERTIFICATE_LIFETIME, DEFAULT_HANDSHAKE_TIMEOUT};
pub use error::TlsError;
pub use provider::default_crypto_provider;
pub use rotation::RotatingCertificate;
/// The rustls this crate is built on, for building a
/// [`CryptoProvider`](rustls::crypto::CryptoProvider) of the same version.
pub use rustls;
pub use rustls::pki_types::UnixTime;
pub use sessions::{DialName, MAX_TICKETS_PER_PEER, MAX_TICKET_PEERS};
pub use shared::{
    expected_peer_server_name, peer_public_key, SharedTlsConfigs, ANY_PEER_SERVER_NAME,
    MAX_SERVER_SESSIONS, TICKETS_PER_HANDSHAKE,
};
pub use signed_key::SignedKey;
pub use upgrade::{TlsUpgrade, PROTOCOL_ID};

/// The signature verification algorithms this crate uses (those of rustls's *ring*
/// provider), for [`Libp2pCertificate::verify`].
pub fn verification_algorithms() -> rustls::crypto::WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

// The README example is a doctest (compiled, and run where it needs only 127.0.0.1).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
