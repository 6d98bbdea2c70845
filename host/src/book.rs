//! Keeping the peerstore up to date: the one place the host writes peer metadata.
//!
//! Peerstore errors (a bound reached, a full store) are logged, never fatal to a
//! connection: the peerstore is a cache of what we learned.

use crate::identify::IdentifyInfo;
use libp2p_identity::{PeerId, PublicKey};
use multiaddr::Multiaddr;
use std::time::Duration;
use tracing::debug;
use weft_connmgr::Direction;
use weft_peerstore::{PeerStore, CONNECTED_ADDR_TTL, DEFAULT_ADDR_TTL};

fn log<T>(what: &str, peer: &PeerId, r: Result<T, weft_peerstore::PeerStoreError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            debug!(%peer, error = %e, "peerstore: {what} failed");
            None
        }
    }
}

/// An address given to `dial` with the peer's id: remember it (default TTL).
pub(crate) fn add_dialable_addr(ps: &dyn PeerStore, peer: &PeerId, addr: &Multiaddr) {
    log(
        "add address",
        peer,
        ps.add_addrs(peer, std::slice::from_ref(addr), DEFAULT_ADDR_TTL),
    );
}

/// The addresses to dial a peer at.
pub(crate) fn dialable_addrs(ps: &dyn PeerStore, peer: &PeerId) -> Vec<Multiaddr> {
    log("read addresses", peer, ps.addrs(peer)).unwrap_or_default()
}

/// A connection to `peer` is up: store its key, and the address we dialed it at.
pub(crate) fn on_connected(
    ps: &dyn PeerStore,
    peer: &PeerId,
    key: &PublicKey,
    remote_addr: &Multiaddr,
    direction: Direction,
) {
    log("store key", peer, ps.add_pubkey(peer, key));
    // An inbound connection's remote address is usually an ephemeral port: not dialable.
    if direction == Direction::Outbound {
        log(
            "add address",
            peer,
            ps.add_addrs(peer, std::slice::from_ref(remote_addr), CONNECTED_ADDR_TTL),
        );
    }
}

/// The last connection to `peer` closed: its connected addresses age.
pub(crate) fn on_disconnected(ps: &dyn PeerStore, peer: &PeerId) {
    log("age addresses", peer, ps.on_disconnected(peer));
}

/// Identify told us about `peer`; returns the protocols (added, removed) relative to
/// what the peerstore knew before (nothing known before: nothing reported as added).
pub(crate) fn on_identified(
    ps: &dyn PeerStore,
    peer: &PeerId,
    info: &IdentifyInfo,
    replace_protocols: bool,
) -> (Vec<String>, Vec<String>) {
    if let Some(v) = &info.agent_version {
        log("store agent version", peer, ps.set_agent_version(peer, v));
    }
    if let Some(v) = &info.protocol_version {
        log(
            "store protocol version",
            peer,
            ps.set_protocol_version(peer, v),
        );
    }
    if let Some(key) = &info.public_key {
        log("store key", peer, ps.add_pubkey(peer, key));
    }
    if !info.listen_addrs.is_empty() {
        log(
            "add addresses",
            peer,
            ps.add_addrs(peer, &info.listen_addrs, CONNECTED_ADDR_TTL),
        );
    }
    if !replace_protocols {
        return (Vec::new(), Vec::new());
    }
    let before = log("read protocols", peer, ps.protocols(peer)).unwrap_or_default();
    let new: Vec<&str> = info.protocols.iter().map(String::as_str).collect();
    if log("store protocols", peer, ps.set_protocols(peer, &new)).is_none() {
        return (Vec::new(), Vec::new());
    }
    let after = log("read protocols", peer, ps.protocols(peer)).unwrap_or_default();
    if before.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let added = after
        .iter()
        .filter(|p| !before.contains(p))
        .cloned()
        .collect();
    let removed = before
        .iter()
        .filter(|p| !after.contains(p))
        .cloned()
        .collect();
    (added, removed)
}

/// The first of `protocols` the peerstore says `peer` supports.
pub(crate) fn first_supported(
    ps: &dyn PeerStore,
    peer: &PeerId,
    protocols: &[&str],
) -> Option<String> {
    log(
        "read protocols",
        peer,
        ps.first_supported_protocol(peer, protocols),
    )
    .flatten()
}

/// A measured round-trip time.
pub(crate) fn record_latency(ps: &dyn PeerStore, peer: &PeerId, rtt: Duration) {
    log("record latency", peer, ps.record_latency(peer, rtt));
}
