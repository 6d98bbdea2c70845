//! One established connection as the host tracks it.

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
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
    /// When a stream last moved data, opened or closed (muxer keep-alive pings do not
    /// count).
    pub(crate) activity: Arc<Activity>,
    /// The connection's resource scope: its streams are opened in it, its muxer and
    /// security protocol charge their buffers to it.
    pub(crate) scope: crate::admission::SharedScope,
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

    /// Whether the connection had no open stream and no stream traffic for `timeout`.
    pub(crate) fn is_idle(&self, timeout: Duration, now: Instant) -> bool {
        crate::registry::is_idle(
            self.open_streams.load(Ordering::Acquire),
            self.activity.idle_for(now),
            timeout,
        )
    }
}

/// The last moment of stream activity on a connection: a coarse timestamp that the
/// data path updates with one relaxed store.
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    /// Milliseconds since `epoch`.
    last: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Records activity now.
    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    /// How long ago the last activity was, seen from `now`.
    pub(crate) fn idle_for(&self, now: Instant) -> Duration {
        let last = self.epoch + Duration::from_millis(self.last.load(Ordering::Relaxed));
        now.saturating_duration_since(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_measures_the_time_since_the_last_touch() {
        let a = Activity::new();
        let later = Instant::now() + Duration::from_secs(5);
        assert!(a.idle_for(later) >= Duration::from_secs(4));
        a.touch();
        assert!(a.idle_for(Instant::now()) < Duration::from_secs(1));
        assert_eq!(a.idle_for(a.epoch), Duration::ZERO);
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

impl ConnectionInfo {
    /// Whether the connection runs through a relay (its address has
    /// `/p2p-circuit`): such a connection is limited in duration and data by the
    /// relay, fit for signalling and hole punching, not bulk transfers.
    pub fn is_relayed(&self) -> bool {
        crate::transport::is_circuit(&self.remote_addr)
    }
}
