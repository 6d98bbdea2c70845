//! Keeping the peerstore up to date: the one place the host writes peer metadata.
//!
//! Every write goes through the host's [`StoreWriter`]: it is queued and applied in a
//! batch on the writer's own thread, so no write (a durable redb commit is ~4.6 ms)
//! runs on a tokio worker. Reads go to the store directly, after an async
//! [`StoreWriter::flush_peer`] so that they see the writes made before them about that
//! peer; the functions that read are therefore `async`. Writes whose effect the caller
//! reports (an identify, a ping's latency) are awaited the same way before returning,
//! so an event or a return value is never ahead of the peerstore.
//!
//! Peerstore errors (a bound reached, a full store) are logged, never fatal to a
//! connection: the peerstore is a cache of what we learned.

use crate::identify::wire::IdentifyInfo;
use crate::store_writer::StoreWriter;
use libp2p_identity::{PeerId, PublicKey};
use multiaddr::Multiaddr;
use std::time::Duration;
use tracing::debug;
use weft_connmgr::Direction;
use weft_peerstore::{
    PeerStoreOp, AGENT_VERSION_KEY, CONNECTED_ADDR_TTL, DEFAULT_ADDR_TTL, PROTOCOL_VERSION_KEY,
};

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
pub(crate) fn add_dialable_addr(w: &StoreWriter, peer: &PeerId, addr: &Multiaddr) {
    w.submit(PeerStoreOp::AddAddrs {
        peer: *peer,
        addrs: vec![addr.clone()],
        ttl: DEFAULT_ADDR_TTL,
    });
}

/// The addresses to dial a peer at.
pub(crate) async fn dialable_addrs(w: &StoreWriter, peer: &PeerId) -> Vec<Multiaddr> {
    w.flush_peer(peer).await;
    log("read addresses", peer, w.store().addrs(peer)).unwrap_or_default()
}

/// A connection to `peer` is up: store its key, and the address we dialed it at.
pub(crate) fn on_connected(
    w: &StoreWriter,
    peer: &PeerId,
    key: &PublicKey,
    remote_addr: &Multiaddr,
    direction: Direction,
) {
    w.submit(PeerStoreOp::AddPubkey {
        peer: *peer,
        key: key.clone(),
    });
    // An inbound connection's remote address is usually an ephemeral port: not dialable.
    if direction == Direction::Outbound {
        w.submit(PeerStoreOp::AddAddrs {
            peer: *peer,
            addrs: vec![remote_addr.clone()],
            ttl: CONNECTED_ADDR_TTL,
        });
    }
}

/// The last connection to `peer` closed: its connected addresses age.
pub(crate) fn on_disconnected(w: &StoreWriter, peer: &PeerId) {
    w.submit(PeerStoreOp::Disconnected { peer: *peer });
}

/// Identify told us about `peer`; returns the protocols (added, removed) relative to
/// what the peerstore knew before (nothing known before: nothing reported as added).
/// Returns once the writes are applied, so the caller's events follow the store.
pub(crate) async fn on_identified(
    w: &StoreWriter,
    peer: &PeerId,
    info: &IdentifyInfo,
    replace_protocols: bool,
) -> (Vec<String>, Vec<String>) {
    let peer = *peer;
    if let Some(v) = &info.agent_version {
        w.submit(PeerStoreOp::PutMetadata {
            peer,
            key: AGENT_VERSION_KEY.to_owned(),
            value: v.as_bytes().to_vec(),
        });
    }
    if let Some(v) = &info.protocol_version {
        w.submit(PeerStoreOp::PutMetadata {
            peer,
            key: PROTOCOL_VERSION_KEY.to_owned(),
            value: v.as_bytes().to_vec(),
        });
    }
    if let Some(key) = &info.public_key {
        w.submit(PeerStoreOp::AddPubkey {
            peer,
            key: key.clone(),
        });
    }
    if !info.listen_addrs.is_empty() {
        w.submit(PeerStoreOp::AddAddrs {
            peer,
            addrs: info.listen_addrs.clone(),
            ttl: CONNECTED_ADDR_TTL,
        });
    }
    w.flush_peer(&peer).await;
    if !replace_protocols {
        return (Vec::new(), Vec::new());
    }
    let store = w.store();
    let before = log("read protocols", &peer, store.protocols(&peer)).unwrap_or_default();
    let ticket = w.submit(PeerStoreOp::SetProtocols {
        peer,
        protocols: info.protocols.clone(),
    });
    w.wait(ticket).await;
    let after = log("read protocols", &peer, store.protocols(&peer)).unwrap_or_default();
    if before.is_empty() || after == before {
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
pub(crate) async fn first_supported(
    w: &StoreWriter,
    peer: &PeerId,
    protocols: &[&str],
) -> Option<String> {
    w.flush_peer(peer).await;
    log(
        "read protocols",
        peer,
        w.store().first_supported_protocol(peer, protocols),
    )
    .flatten()
}

/// A measured round-trip time; returns once it is stored.
pub(crate) async fn record_latency(w: &StoreWriter, peer: &PeerId, rtt: Duration) {
    let ticket = w.submit(PeerStoreOp::RecordLatency { peer: *peer, rtt });
    w.wait(ticket).await;
}
