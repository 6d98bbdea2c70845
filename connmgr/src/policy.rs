//! The one trait the host calls, and the policy that allows everything.

use std::sync::Arc;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;

use crate::{ConnectionId, Direction, LimitError, PendingPermit};

/// What [`ConnectionPolicy::established`] tells the host about the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the host should call `trim` when the policy is over its high watermark"]
pub enum Admission {
    /// Accepted; no trimming needed.
    Accepted,
    /// Accepted, but the established connections are now above the high watermark:
    /// the host should call [`ConnectionPolicy::trim`] and close what it returns.
    OverHighWatermark,
}

impl Admission {
    /// Whether the host should call [`ConnectionPolicy::trim`] now.
    pub fn should_trim(self) -> bool {
        self == Admission::OverHighWatermark
    }
}

/// Decides which connections may open and which ones to close; the host carries it out.
///
/// The calls follow a connection's life:
///
/// 1. [`allow_dial`](Self::allow_dial) before dialing, or
///    [`allow_inbound`](Self::allow_inbound) as soon as a transport accepts, before any
///    handshake byte: a refusal there costs the least. Both return a
///    [`PendingPermit`]; dropping it (handshake failed, timed out) frees the slot.
/// 2. [`established`](Self::established) once the handshake proved the peer, giving the
///    permit back. On `Err` the host closes the connection.
/// 3. [`stream_count_changed`](Self::stream_count_changed) as streams open and close.
/// 4. [`closed`](Self::closed) when the connection is gone (for any reason).
///
/// [`trim`](Self::trim) returns the connections the policy wants closed; the host
/// closes them gracefully and then reports each with [`closed`](Self::closed).
///
/// The trait is synchronous and does no I/O: every method returns quickly and may be
/// called from any thread.
pub trait ConnectionPolicy: Send + Sync {
    /// May we dial `addr` (to `peer`, when known)? Called before the transport dial.
    fn allow_dial(
        &self,
        peer: Option<PeerId>,
        addr: &Multiaddr,
    ) -> Result<PendingPermit, LimitError>;

    /// May we accept an inbound connection from `remote` on our `local` address?
    /// Called right after the transport accepted, before the handshake.
    fn allow_inbound(
        &self,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<PendingPermit, LimitError>;

    /// The handshake of connection `conn` succeeded: it reaches `peer` at `remote`.
    ///
    /// Consumes the pending permit. `Ok` means the connection is now counted as
    /// established (call [`closed`](Self::closed) when it ends); `Err` means it was
    /// refused and is not counted.
    fn established(
        &self,
        permit: PendingPermit,
        conn: ConnectionId,
        peer: PeerId,
        direction: Direction,
        remote: &Multiaddr,
    ) -> Result<Admission, LimitError>;

    /// Connection `conn` is closed. Unknown ids are ignored.
    fn closed(&self, conn: ConnectionId);

    /// Connection `conn` now has `streams` open streams.
    fn stream_count_changed(&self, conn: ConnectionId, streams: usize);

    /// The connections to close now, most expendable first. The host closes them
    /// and then reports each with [`closed`](Self::closed). Empty when nothing needs
    /// trimming.
    fn trim(&self) -> Vec<ConnectionId>;

    /// Protects `peer`'s connections from trimming under `tag` (the host protects a
    /// relay while it holds a reservation there). The default does nothing: a
    /// policy that never trims needs no protection.
    fn protect(&self, peer: PeerId, tag: &str) {
        let _ = (peer, tag);
    }

    /// Removes the protection `tag` from `peer`; returns whether other tags still
    /// protect it. The default protects nothing and returns false.
    fn unprotect(&self, peer: &PeerId, tag: &str) -> bool {
        let _ = (peer, tag);
        false
    }

    /// Sets tag `tag` on `peer` to `value`: trimming closes the peers of the lowest
    /// summed tag value first (a relay server tags the peers it holds reservations
    /// for). The default does nothing.
    fn tag_peer(&self, peer: PeerId, tag: &str, value: i64) {
        let _ = (peer, tag, value);
    }

    /// Removes tag `tag` from `peer`. The default does nothing.
    fn untag_peer(&self, peer: &PeerId, tag: &str) {
        let _ = (peer, tag);
    }
}

impl<P: ConnectionPolicy + ?Sized> ConnectionPolicy for Arc<P> {
    fn allow_dial(
        &self,
        peer: Option<PeerId>,
        addr: &Multiaddr,
    ) -> Result<PendingPermit, LimitError> {
        (**self).allow_dial(peer, addr)
    }

    fn allow_inbound(
        &self,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<PendingPermit, LimitError> {
        (**self).allow_inbound(local, remote)
    }

    fn established(
        &self,
        permit: PendingPermit,
        conn: ConnectionId,
        peer: PeerId,
        direction: Direction,
        remote: &Multiaddr,
    ) -> Result<Admission, LimitError> {
        (**self).established(permit, conn, peer, direction, remote)
    }

    fn closed(&self, conn: ConnectionId) {
        (**self).closed(conn)
    }

    fn stream_count_changed(&self, conn: ConnectionId, streams: usize) {
        (**self).stream_count_changed(conn, streams)
    }

    fn trim(&self) -> Vec<ConnectionId> {
        (**self).trim()
    }

    fn protect(&self, peer: PeerId, tag: &str) {
        (**self).protect(peer, tag)
    }

    fn unprotect(&self, peer: &PeerId, tag: &str) -> bool {
        (**self).unprotect(peer, tag)
    }

    fn tag_peer(&self, peer: PeerId, tag: &str, value: i64) {
        (**self).tag_peer(peer, tag, value)
    }

    fn untag_peer(&self, peer: &PeerId, tag: &str) {
        (**self).untag_peer(peer, tag)
    }
}

/// A policy that accepts every connection and never trims.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLimits;

impl ConnectionPolicy for NoLimits {
    fn allow_dial(&self, _: Option<PeerId>, _: &Multiaddr) -> Result<PendingPermit, LimitError> {
        Ok(PendingPermit::unlimited())
    }

    fn allow_inbound(&self, _: &Multiaddr, _: &Multiaddr) -> Result<PendingPermit, LimitError> {
        Ok(PendingPermit::unlimited())
    }

    fn established(
        &self,
        permit: PendingPermit,
        _: ConnectionId,
        _: PeerId,
        _: Direction,
        _: &Multiaddr,
    ) -> Result<Admission, LimitError> {
        permit.release();
        Ok(Admission::Accepted)
    }

    fn closed(&self, _: ConnectionId) {}

    fn stream_count_changed(&self, _: ConnectionId, _: usize) {}

    fn trim(&self) -> Vec<ConnectionId> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limits_accepts_everything_behind_a_dyn_arc() {
        let policy: Arc<dyn ConnectionPolicy> = Arc::new(NoLimits);
        let addr: Multiaddr = "/ip4/10.0.0.1/tcp/1".parse().unwrap();
        for _ in 0..1000 {
            let permit = policy.allow_inbound(&addr, &addr).unwrap();
            let admission = policy
                .established(
                    permit,
                    ConnectionId::next(),
                    PeerId::random(),
                    Direction::Inbound,
                    &addr,
                )
                .unwrap();
            assert!(!admission.should_trim());
        }
        assert!(policy.allow_dial(None, &addr).is_ok());
        assert!(policy.trim().is_empty());
        // Protection and tags are no-ops on a policy that never trims.
        let peer = PeerId::random();
        policy.protect(peer, "relay");
        policy.tag_peer(peer, "relay", 10);
        assert!(!policy.unprotect(&peer, "relay"));
        policy.untag_peer(&peer, "relay");
    }
}
