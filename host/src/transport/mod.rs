//! Transports: how bytes reach a peer.
//!
//! A transport either yields a raw byte stream, which the host upgrades (security,
//! then a muxer) into a [`Connection`], or yields a [`Connection`] directly, as a
//! transport that comes secure and multiplexed on its own (QUIC) will. Both end as the
//! same connection type, so such a transport plugs in without reshaping the host.

use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};
use weft_upgrader::{BoxedIo, Connection, Role};

pub mod memory;
#[cfg(feature = "quic")]
pub mod quic;
#[cfg(feature = "tcp")]
pub mod tcp;

/// What a transport hands the host for one connection.
pub enum TransportOutput {
    /// A raw byte stream; the host upgrades it.
    Raw(BoxedIo),
    /// A connection that is already secure and multiplexed.
    Connection(Box<Connection>),
}

impl std::fmt::Debug for TransportOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportOutput::Raw(_) => f.write_str("Raw"),
            TransportOutput::Connection(c) => f.debug_tuple("Connection").field(c).finish(),
        }
    }
}

/// One connection as a transport produced it, with its endpoints.
#[derive(Debug)]
pub struct Transported {
    /// The stream or connection.
    pub output: TransportOutput,
    /// Our side's address.
    pub local_addr: Multiaddr,
    /// The remote side's address.
    pub remote_addr: Multiaddr,
}

/// Why a transport could not dial or listen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No transport handles this address.
    #[error("no transport supports the address {0}")]
    Unsupported(Multiaddr),
    /// A `/dns*` name did not resolve to a usable address.
    #[error("could not resolve {name}: {reason}")]
    Resolve {
        /// The name looked up.
        name: String,
        /// Why it failed.
        reason: String,
    },
    /// The operating system refused or the connection failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The listener was closed.
    #[error("the listener is closed")]
    Closed,
}

/// What the host tells a transport about one dial.
///
/// A transport that yields raw streams may ignore all of it (the host's upgrader
/// checks the peer and takes the role); a transport that comes secure on its own
/// (QUIC) checks the expected peer inside its handshake, picks a session ticket by
/// it, takes the forced role and sends early data only when asked.
///
/// Build it with [`Default`] and the `with_*` methods; fields may be added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportDialOpts {
    /// The peer the handshake must prove, when known.
    pub peer: Option<PeerId>,
    /// A security role forced on this connection (hole punching assigns roles);
    /// `None`: the dialer is the initiator.
    pub role: Option<Role>,
    /// Whether the caller wants to send early (0-RTT, replayable) data.
    pub early_data: bool,
}

impl TransportDialOpts {
    /// Options with nothing set: unknown peer, the dialer initiates, no early data.
    pub fn new() -> Self {
        Self::default()
    }

    /// The peer the handshake must prove.
    pub fn with_peer(mut self, peer: Option<PeerId>) -> Self {
        self.peer = peer;
        self
    }

    /// Forces the security role of this connection.
    pub fn with_role(mut self, role: Option<Role>) -> Self {
        self.role = role;
        self
    }

    /// Asks for early (0-RTT) data where the transport supports it.
    pub fn with_early_data(mut self, early_data: bool) -> Self {
        self.early_data = early_data;
        self
    }
}

/// A way to reach peers: TCP, an in-memory pipe, later QUIC.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    /// A short name for logs, for example `tcp`.
    fn name(&self) -> &str;
    /// Whether this transport can dial the address (ignoring a `/p2p/` suffix).
    fn can_dial(&self, addr: &Multiaddr) -> bool;
    /// Whether this transport can listen on the address.
    fn can_listen(&self, addr: &Multiaddr) -> bool;
    /// Connects to the address (without a `/p2p/` suffix), as `opts` ask.
    async fn dial(
        &self,
        addr: &Multiaddr,
        opts: &TransportDialOpts,
    ) -> Result<Transported, TransportError>;
    /// Starts listening on the address.
    async fn listen(&self, addr: &Multiaddr) -> Result<Box<dyn Listener>, TransportError>;
    /// Sends one hole punching datagram carrying `payload` to `addr` from a socket
    /// this transport listens on. QUIC does: the peer that is to be the server of a
    /// punched connection (DCUtR's initiator) opens its NAT towards the other peer
    /// this way instead of dialing. The default: not supported.
    fn punch(&self, addr: &Multiaddr, payload: &[u8]) -> Result<(), TransportError> {
        let _ = payload;
        Err(TransportError::Unsupported(addr.clone()))
    }
}

/// A listening socket.
#[async_trait::async_trait]
pub trait Listener: Send + 'static {
    /// The actual addresses listened on (port 0 resolved).
    fn local_addrs(&self) -> Vec<Multiaddr>;
    /// Waits for the next inbound connection.
    async fn accept(&mut self) -> Result<Transported, TransportError>;
}

/// Whether `addr` goes through a relay (it has `/p2p-circuit`).
pub(crate) fn is_circuit(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// Splits a trailing `/p2p/<peer id>` off an address.
pub fn split_peer_id(addr: &Multiaddr) -> (Multiaddr, Option<libp2p_identity::PeerId>) {
    let mut addr = addr.clone();
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => {
            addr.pop();
            (addr, Some(peer))
        }
        _ => (addr, None),
    }
}
