//! Lifecycle events (the spec's "Connection Lifecycle Events").
//!
//! Events go out on a bounded broadcast channel: a subscriber that falls behind is
//! told how many events it missed ([`tokio::sync::broadcast::error::RecvError::Lagged`])
//! and never stalls the host.

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use weft_connmgr::{ConnectionId, Direction};
use weft_upgrader::UpgradeStep;

/// Something that happened on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A connection finished its upgrade and is open.
    Connected {
        /// The remote peer.
        peer: PeerId,
        /// The connection.
        connection: ConnectionId,
        /// Who dialed.
        direction: Direction,
        /// Our address on this connection.
        local_addr: Multiaddr,
        /// The remote address of this connection.
        remote_addr: Multiaddr,
        /// The negotiated security protocol.
        security: String,
        /// The negotiated muxer.
        muxer: String,
    },
    /// A connection closed.
    Disconnected {
        /// The remote peer.
        peer: PeerId,
        /// The connection.
        connection: ConnectionId,
        /// Who dialed.
        direction: Direction,
        /// The remote address of this connection.
        remote_addr: Multiaddr,
    },
    /// A stream was opened and its protocol negotiated. For an outbound stream with a
    /// lazy (0-RTT) proposal that is when the remote's answer is read, not when the
    /// proposal is written: a stream the remote refuses (`na`, for example over a
    /// handler's slot) reports neither this nor [`Event::ClosedStream`], and neither
    /// does one dropped before its answer was read.
    OpenedStream {
        /// The remote peer.
        peer: PeerId,
        /// The connection carrying the stream.
        connection: ConnectionId,
        /// Who opened the stream.
        direction: Direction,
        /// The negotiated protocol.
        protocol: String,
    },
    /// A stream that [`Event::OpenedStream`] reported was dropped or closed.
    ClosedStream {
        /// The remote peer.
        peer: PeerId,
        /// The connection carrying the stream.
        connection: ConnectionId,
        /// Who opened the stream.
        direction: Direction,
        /// The negotiated protocol.
        protocol: String,
    },
    /// The host started listening on these addresses: a new listener, or an
    /// interface that gained an address while a listener on `0.0.0.0` or `::` runs.
    Listen {
        /// The addresses (port 0 resolved).
        addrs: Vec<Multiaddr>,
    },
    /// The host stopped listening on these addresses: a listener closed, or an
    /// interface lost the address.
    ListenClose {
        /// The addresses.
        addrs: Vec<Multiaddr>,
    },
    /// An accepted inbound connection failed its upgrade (security or muxer
    /// negotiation, the handshake, or the upgrade timeout); it was closed.
    InboundUpgradeFailed {
        /// Our address on the connection.
        local_addr: Multiaddr,
        /// The remote's address.
        remote_addr: Multiaddr,
        /// The upgrade step that failed, when the failure came from one.
        step: Option<UpgradeStep>,
        /// Why, as the upgrade error says it.
        reason: String,
    },
    /// Identify told us about a peer.
    PeerIdentified {
        /// The peer.
        peer: PeerId,
        /// The connection identify ran on.
        connection: ConnectionId,
        /// The peer's agent version.
        agent_version: String,
        /// The peer's protocol version.
        protocol_version: String,
        /// The protocols the peer accepts.
        protocols: Vec<String>,
        /// The addresses the peer listens on.
        listen_addrs: Vec<Multiaddr>,
        /// The address the peer sees us at, if it said.
        observed_addr: Option<Multiaddr>,
    },
    /// The set of protocols a peer supports changed (identify push, or a later identify).
    PeerProtocolsChanged {
        /// The peer.
        peer: PeerId,
        /// Protocols it gained.
        added: Vec<String>,
        /// Protocols it dropped.
        removed: Vec<String>,
    },
    /// Enough distinct peers (observer networks: an IPv4 address, an IPv6 /56) said
    /// in identify that they see us at this public address: it is probably our
    /// address on the internet (a NAT's mapping of a listen port, say). Reported once.
    /// Accept it with [`Host::add_external_addr`](crate::Host::add_external_addr) to
    /// have identify advertise it; the host does not on its own (AutoNAT can check it
    /// first).
    ExternalAddrCandidate {
        /// The address the peers see.
        addr: Multiaddr,
        /// How many observer groups agreed.
        observers: usize,
    },
    /// A dial failed: every address was tried or skipped, or the dial timed out.
    /// Sent once per dial (the callers of one shared dial see one event); not for a
    /// dial refused before it started (no known address, our own peer id, the peer
    /// in its backoff, shutdown), whose caller gets the error at once.
    DialFailed {
        /// The peer dialed, when known.
        peer: Option<PeerId>,
        /// Each address tried or skipped, with why it failed.
        errors: Vec<(Multiaddr, String)>,
        /// The dial's error, as the caller saw it.
        error: String,
    },
    /// AutoNAT v2 (feature `autonat`) reached a new verdict on one of our addresses,
    /// or started tracking it: reachable or unreachable once enough servers agree,
    /// unknown with the reason otherwise (a non-public address, probes under way,
    /// no server left to ask). [`Host::reachability`](crate::Host::reachability)
    /// lists them all.
    #[cfg(feature = "autonat")]
    AddrReachability {
        /// The address.
        addr: Multiaddr,
        /// Its verdict now.
        verdict: weft_autonat::Verdict,
    },
    /// A hole punch over a relayed connection ended (feature `dcutr`). The side that
    /// accepted the relayed connection ([`Side::Initiator`](crate::dcutr::Side))
    /// reports once per hole punch, after its last attempt; the other side once per
    /// attempt it answered. On success the relayed connection closes after
    /// [`HostBuilder::relayed_grace`](crate::HostBuilder::relayed_grace); on failure it
    /// stays.
    #[cfg(feature = "dcutr")]
    HolePunch {
        /// The peer.
        peer: PeerId,
        /// The relayed connection it ran over.
        relayed: ConnectionId,
        /// Our side.
        side: crate::dcutr::Side,
        /// The direct connection, or why there is none.
        outcome: Result<crate::dcutr::DirectConnection, crate::dcutr::Failure>,
        /// Attempts made (as the responder: the number of this attempt).
        attempts: u8,
        /// From the start of the first attempt to the end.
        elapsed: std::time::Duration,
    },
}
