//! [`PeerStoreOp`]: one write, as a value, for [`crate::PeerStore::apply_batch`].

use std::time::Duration;

use libp2p_identity::{PeerId, PublicKey};
use multiaddr::Multiaddr;

use crate::error::Result;
use crate::store::PeerStore;

/// One write to a [`PeerStore`], as a value: what a writer queues and applies in
/// batches with [`PeerStore::apply_batch`]. Each variant does what the trait method of
/// the same name does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerStoreOp {
    /// [`PeerStore::add_addrs`].
    AddAddrs {
        /// The peer.
        peer: PeerId,
        /// The addresses.
        addrs: Vec<Multiaddr>,
        /// Their time to live.
        ttl: Duration,
    },
    /// [`PeerStore::set_addrs`].
    SetAddrs {
        /// The peer.
        peer: PeerId,
        /// The addresses.
        addrs: Vec<Multiaddr>,
        /// Their time to live (zero removes them).
        ttl: Duration,
    },
    /// [`PeerStore::update_addrs`].
    UpdateAddrs {
        /// The peer.
        peer: PeerId,
        /// The TTL of the addresses to change.
        old_ttl: Duration,
        /// Their new TTL.
        new_ttl: Duration,
    },
    /// [`PeerStore::remove_addrs`].
    RemoveAddrs {
        /// The peer.
        peer: PeerId,
        /// The addresses.
        addrs: Vec<Multiaddr>,
    },
    /// [`PeerStore::clear_addrs`].
    ClearAddrs {
        /// The peer.
        peer: PeerId,
    },
    /// [`PeerStore::on_disconnected`].
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
    /// [`PeerStore::add_pubkey`].
    AddPubkey {
        /// The peer.
        peer: PeerId,
        /// Its key.
        key: PublicKey,
    },
    /// [`PeerStore::set_protocols`].
    SetProtocols {
        /// The peer.
        peer: PeerId,
        /// Its protocols.
        protocols: Vec<String>,
    },
    /// [`PeerStore::add_protocols`].
    AddProtocols {
        /// The peer.
        peer: PeerId,
        /// The protocols to add.
        protocols: Vec<String>,
    },
    /// [`PeerStore::remove_protocols`].
    RemoveProtocols {
        /// The peer.
        peer: PeerId,
        /// The protocols to remove.
        protocols: Vec<String>,
    },
    /// [`PeerStore::put_metadata`].
    PutMetadata {
        /// The peer.
        peer: PeerId,
        /// The key (for example [`crate::AGENT_VERSION_KEY`]).
        key: String,
        /// The value.
        value: Vec<u8>,
    },
    /// [`PeerStore::remove_metadata`].
    RemoveMetadata {
        /// The peer.
        peer: PeerId,
        /// The key.
        key: String,
    },
    /// [`PeerStore::record_latency`].
    RecordLatency {
        /// The peer.
        peer: PeerId,
        /// The measured round trip.
        rtt: Duration,
    },
    /// [`PeerStore::remove_peer`].
    RemovePeer {
        /// The peer.
        peer: PeerId,
    },
}

fn strs(protocols: &[String]) -> Vec<&str> {
    protocols.iter().map(String::as_str).collect()
}

impl PeerStoreOp {
    /// The peer this write is about.
    pub fn peer(&self) -> &PeerId {
        match self {
            PeerStoreOp::AddAddrs { peer, .. }
            | PeerStoreOp::SetAddrs { peer, .. }
            | PeerStoreOp::UpdateAddrs { peer, .. }
            | PeerStoreOp::RemoveAddrs { peer, .. }
            | PeerStoreOp::ClearAddrs { peer }
            | PeerStoreOp::Disconnected { peer }
            | PeerStoreOp::AddPubkey { peer, .. }
            | PeerStoreOp::SetProtocols { peer, .. }
            | PeerStoreOp::AddProtocols { peer, .. }
            | PeerStoreOp::RemoveProtocols { peer, .. }
            | PeerStoreOp::PutMetadata { peer, .. }
            | PeerStoreOp::RemoveMetadata { peer, .. }
            | PeerStoreOp::RecordLatency { peer, .. }
            | PeerStoreOp::RemovePeer { peer } => peer,
        }
    }

    /// Whether a persistent backend must make this write durable (all but latency
    /// samples, which the redb backend commits without `fsync`).
    pub fn is_durable(&self) -> bool {
        !matches!(self, PeerStoreOp::RecordLatency { .. })
    }

    /// Applies this write to `store` through the trait method of the same name.
    pub fn apply_to<S: PeerStore + ?Sized>(&self, store: &S) -> Result<()> {
        match self {
            PeerStoreOp::AddAddrs { peer, addrs, ttl } => store.add_addrs(peer, addrs, *ttl),
            PeerStoreOp::SetAddrs { peer, addrs, ttl } => store.set_addrs(peer, addrs, *ttl),
            PeerStoreOp::UpdateAddrs {
                peer,
                old_ttl,
                new_ttl,
            } => store.update_addrs(peer, *old_ttl, *new_ttl),
            PeerStoreOp::RemoveAddrs { peer, addrs } => store.remove_addrs(peer, addrs),
            PeerStoreOp::ClearAddrs { peer } => store.clear_addrs(peer),
            PeerStoreOp::Disconnected { peer } => store.on_disconnected(peer),
            PeerStoreOp::AddPubkey { peer, key } => store.add_pubkey(peer, key),
            PeerStoreOp::SetProtocols { peer, protocols } => {
                store.set_protocols(peer, &strs(protocols))
            }
            PeerStoreOp::AddProtocols { peer, protocols } => {
                store.add_protocols(peer, &strs(protocols))
            }
            PeerStoreOp::RemoveProtocols { peer, protocols } => {
                store.remove_protocols(peer, &strs(protocols))
            }
            PeerStoreOp::PutMetadata { peer, key, value } => store.put_metadata(peer, key, value),
            PeerStoreOp::RemoveMetadata { peer, key } => store.remove_metadata(peer, key),
            PeerStoreOp::RecordLatency { peer, rtt } => store.record_latency(peer, *rtt),
            PeerStoreOp::RemovePeer { peer } => store.remove_peer(peer),
        }
    }
}
