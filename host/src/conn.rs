//! One established connection as the host tracks it.

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use weft_connmgr::{ConnectionId, Direction};
use weft_upgrader::MuxedConnection;

/// What the host knows about one open connection.
pub(crate) struct ConnState {
    pub(crate) id: ConnectionId,
    pub(crate) peer: PeerId,
    pub(crate) direction: Direction,
    pub(crate) local_addr: Multiaddr,
    pub(crate) remote_addr: Multiaddr,
    pub(crate) security: String,
    pub(crate) muxer: String,
    pub(crate) muxed: Arc<dyn MuxedConnection>,
    pub(crate) open_streams: Arc<AtomicUsize>,
    /// Cancelled when the connection has ended (driver finished or host shut down).
    pub(crate) closed: CancellationToken,
}

impl ConnState {
    pub(crate) fn info(&self) -> ConnectionInfo {
        ConnectionInfo {
            id: self.id,
            peer: self.peer,
            direction: self.direction,
            local_addr: self.local_addr.clone(),
            remote_addr: self.remote_addr.clone(),
            security: self.security.clone(),
            muxer: self.muxer.clone(),
            open_streams: self.open_streams.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn is_usable(&self) -> bool {
        !self.closed.is_cancelled() && !self.muxed.is_closed() && !self.muxed.remote_went_away()
    }
}

/// A snapshot of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The connection's id.
    pub id: ConnectionId,
    /// The remote peer.
    pub peer: PeerId,
    /// Who dialed.
    pub direction: Direction,
    /// Our address on this connection.
    pub local_addr: Multiaddr,
    /// The remote's address on this connection.
    pub remote_addr: Multiaddr,
    /// The negotiated security protocol, e.g. `/noise`.
    pub security: String,
    /// The negotiated muxer, e.g. `/yamux/1.0.0`.
    pub muxer: String,
    /// Streams open on it when the snapshot was taken.
    pub open_streams: usize,
}
