//! The connection every transport yields: secure, multiplexed, peer proven.

use crate::io::BoxFuture;
use crate::muxer::{MuxedConnection, MuxerError};
use crate::role::Role;
use libp2p_identity::{PeerId, PublicKey};
use std::sync::Arc;

/// A secure, multiplexed libp2p connection.
///
/// The [`Upgrader`](crate::Upgrader) builds one from a raw byte stream (TCP); a
/// transport that is secure and multiplexed on its own (QUIC) builds one directly.
/// Either way the rest of the stack sees the same type.
///
/// The [`driver`](Connection::driver) must be spawned on the caller's runtime:
/// nothing moves on the connection until it is polled.
pub struct Connection {
    /// The peer the security handshake proved.
    pub remote_peer: PeerId,
    /// The remote identity key (its `PeerId` is [`Connection::remote_peer`]).
    pub remote_public_key: PublicKey,
    /// Our role on the connection (initiator: Noise initiator / TLS client, yamux
    /// client).
    pub role: Role,
    /// The security protocol id, for example `/noise`.
    pub security_protocol: String,
    /// The muxer protocol id, for example `/yamux/1.0.0`.
    pub muxer_protocol: String,
    /// Whether the muxer was chosen inside the security handshake (Noise extensions,
    /// TLS ALPN) rather than by multistream-select afterwards.
    pub muxer_inlined: bool,
    /// The handle to open, accept and close streams.
    pub muxed: Arc<dyn MuxedConnection>,
    /// Drives the connection's I/O; it completes when the connection has closed.
    /// Spawn it.
    pub driver: BoxFuture<'static, Result<(), MuxerError>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote_peer", &self.remote_peer)
            .field("role", &self.role)
            .field("security_protocol", &self.security_protocol)
            .field("muxer_protocol", &self.muxer_protocol)
            .field("muxer_inlined", &self.muxer_inlined)
            .field("closed", &self.muxed.is_closed())
            .finish_non_exhaustive()
    }
}
