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

use crate::dial::classify::{AddrClass, Classifier};
use crate::identify::wire::IdentifyInfo;
use crate::store_writer::StoreWriter;
use libp2p_identity::{PeerId, PublicKey};
use multiaddr::Multiaddr;
use std::time::Duration;
use tracing::debug;
use weft_connmgr::Direction;
use weft_peerstore::{
    PeerStoreOp, AGENT_VERSION_KEY, CONNECTED_ADDR_TTL, DEFAULT_ADDR_TTL, PROTOCOL_VERSION_KEY,
    RECENTLY_CONNECTED_ADDR_TTL, TEMP_ADDR_TTL,
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

/// The addresses a peer listed that are worth dialing, seen from where we reach it
/// (`remote`, the address of the connection identify came on), as go-libp2p's
/// identify filters them:
/// - a peer reached over the internet: only its public addresses (and names); its
///   loopback and private ones are someone else's network;
/// - a peer on a local network: all but its loopback addresses;
/// - a peer on this machine, or reached at an address of no class (`/memory`, a
///   documentation range the classifier does not take as public): all.
///
/// Unusable addresses (`0.0.0.0`, multicast, ...) are never kept.
pub(crate) fn in_scope(
    classifier: &Classifier,
    remote: &Multiaddr,
    listed: &[Multiaddr],
) -> Vec<Multiaddr> {
    let from = classifier.addr(remote);
    let keep = |class: AddrClass| match class {
        AddrClass::Unusable => false,
        _ if from == AddrClass::Public => matches!(class, AddrClass::Public | AddrClass::Name),
        _ if from.is_local() && from != AddrClass::Loopback => class != AddrClass::Loopback,
        _ => true,
    };
    listed
        .iter()
        .filter(|a| keep(classifier.addr(a)))
        .cloned()
        .collect()
}

/// Where identify's listen addresses go: what the peer listed, kept by [`in_scope`],
/// and the addresses we dialed its open connections at (known good whatever it lists).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AddrScope<'a> {
    /// The classifier of the host.
    pub(crate) classifier: &'a Classifier,
    /// The remote address of the connection identify came on.
    pub(crate) remote: &'a Multiaddr,
    /// The remote addresses of our outbound connections to the peer.
    pub(crate) dialed: &'a [Multiaddr],
}

/// The peerstore writes that make `listed` (already filtered) the peer's connected
/// addresses, replacing what an earlier identify said (go-libp2p's identify does
/// the same): connected and recently connected addresses are first downgraded to
/// the temporary TTL, the current ones set to the connected TTL, and the temporary
/// ones left are removed.
fn replace_addrs_ops(peer: PeerId, listed: Vec<Multiaddr>) -> [PeerStoreOp; 4] {
    [
        PeerStoreOp::UpdateAddrs {
            peer,
            old_ttl: CONNECTED_ADDR_TTL,
            new_ttl: TEMP_ADDR_TTL,
        },
        PeerStoreOp::UpdateAddrs {
            peer,
            old_ttl: RECENTLY_CONNECTED_ADDR_TTL,
            new_ttl: TEMP_ADDR_TTL,
        },
        PeerStoreOp::SetAddrs {
            peer,
            addrs: listed,
            ttl: CONNECTED_ADDR_TTL,
        },
        PeerStoreOp::UpdateAddrs {
            peer,
            old_ttl: TEMP_ADDR_TTL,
            new_ttl: Duration::ZERO,
        },
    ]
}

/// Identify told us about `peer`; returns the protocols (added, removed) relative to
/// what the peerstore knew before (nothing known before: nothing reported as added).
/// The listen addresses, when it sent any, replace those of an earlier identify,
/// filtered by `scope`. Returns once the writes are applied, so the caller's events
/// follow the store.
pub(crate) async fn on_identified(
    w: &StoreWriter,
    peer: &PeerId,
    info: &IdentifyInfo,
    replace_protocols: bool,
    scope: AddrScope<'_>,
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
        let mut addrs = in_scope(scope.classifier, scope.remote, &info.listen_addrs);
        for dialed in scope.dialed {
            if !addrs.contains(dialed) {
                addrs.push(dialed.clone());
            }
        }
        for op in replace_addrs_ops(peer, addrs) {
            w.submit(op);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use weft_peerstore::{MemoryPeerStore, PeerStore};

    fn addrs(list: &[&str]) -> Vec<Multiaddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    const LISTED: &[&str] = &[
        "/ip4/127.0.0.1/tcp/1",
        "/ip4/192.168.1.5/tcp/1",
        "/ip4/8.8.4.4/tcp/1",
        "/ip4/0.0.0.0/tcp/1",
        "/dns4/example.com/tcp/1",
        "/ip4/192.0.2.1/tcp/1",
    ];

    #[test]
    fn a_public_peers_loopback_and_private_addresses_are_left_out() {
        let c = Classifier::new();
        let from = |remote: &str| in_scope(&c, &remote.parse().unwrap(), &addrs(LISTED));
        assert_eq!(
            from("/ip4/1.2.3.4/tcp/9"),
            addrs(&["/ip4/8.8.4.4/tcp/1", "/dns4/example.com/tcp/1"])
        );
        assert_eq!(
            from("/ip4/10.1.1.1/tcp/9"),
            addrs(&[
                "/ip4/192.168.1.5/tcp/1",
                "/ip4/8.8.4.4/tcp/1",
                "/dns4/example.com/tcp/1",
                "/ip4/192.0.2.1/tcp/1",
            ]),
            "a peer on the local network: all but loopback"
        );
        let all_usable: Vec<Multiaddr> = addrs(LISTED)
            .into_iter()
            .filter(|a| !a.to_string().starts_with("/ip4/0.0.0.0"))
            .collect();
        assert_eq!(from("/ip4/127.0.0.1/tcp/9"), all_usable);
        assert_eq!(from("/memory/5"), all_usable);
    }

    #[test]
    fn the_classifier_override_makes_documentation_ranges_the_internet() {
        let c = Classifier::new().with_public(&[AddrClass::Documentation]);
        let remote: Multiaddr = "/ip4/198.51.100.2/tcp/9".parse().unwrap();
        assert_eq!(
            in_scope(&c, &remote, &addrs(LISTED)),
            addrs(&[
                "/ip4/8.8.4.4/tcp/1",
                "/dns4/example.com/tcp/1",
                "/ip4/192.0.2.1/tcp/1"
            ])
        );
    }

    #[test]
    fn listen_addresses_replace_those_of_an_earlier_identify() {
        let store = MemoryPeerStore::new();
        let peer = PeerId::random();
        let other: Multiaddr = "/ip4/9.9.9.9/tcp/1".parse().unwrap();
        store
            .add_addrs(
                &peer,
                &addrs(&["/ip4/1.1.1.1/tcp/1", "/ip4/2.2.2.2/tcp/1"]),
                CONNECTED_ADDR_TTL,
            )
            .unwrap();
        store
            .add_addrs(&peer, std::slice::from_ref(&other), DEFAULT_ADDR_TTL)
            .unwrap();
        let ops = replace_addrs_ops(peer, addrs(&["/ip4/2.2.2.2/tcp/1", "/ip4/3.3.3.3/tcp/1"]));
        store.apply_batch(&ops).unwrap();
        let mut now = store.addrs(&peer).unwrap();
        now.sort();
        let mut want = addrs(&["/ip4/2.2.2.2/tcp/1", "/ip4/3.3.3.3/tcp/1"]);
        want.push(other);
        want.sort();
        assert_eq!(
            now, want,
            "the address identify no longer lists is gone; one given by the user stays"
        );
    }
}
