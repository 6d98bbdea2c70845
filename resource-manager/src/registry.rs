//! The scopes created on demand: one per peer, one per protocol and one per protocol and
//! peer. Each lives while someone holds it and is dropped with its last holder.

use std::collections::HashMap;
use std::sync::Arc;

use libp2p_identity::PeerId;

use crate::error::ScopeName;
use crate::limits::{Limits, ScopeLimit};
use crate::scope::Scope;

/// A protocol scope and the protocol-peer scopes under it.
#[derive(Debug)]
struct ProtocolEntry {
    scope: Arc<Scope>,
    peers: HashMap<PeerId, Arc<Scope>>,
}

/// The live peer, protocol and protocol-peer scopes.
///
/// Every clone of a scope's `Arc` is made here, under the manager's registry lock, and
/// every holder gives it back here, so a strong count of one means "only the registry".
#[derive(Debug, Default)]
pub(crate) struct Registry {
    peers: HashMap<PeerId, Arc<Scope>>,
    protocols: HashMap<String, ProtocolEntry>,
}

impl Registry {
    /// The scope of `peer`, created with `limit` if it is not live.
    pub(crate) fn peer(&mut self, peer: PeerId, limit: impl FnOnce() -> ScopeLimit) -> Arc<Scope> {
        self.peers
            .entry(peer)
            .or_insert_with(|| Arc::new(Scope::new(ScopeName::Peer(peer), limit())))
            .clone()
    }

    /// Gives back a scope from [`peer`](Self::peer); drops it if nobody else holds it.
    pub(crate) fn release_peer(&mut self, peer: PeerId, scope: Arc<Scope>) {
        drop(scope);
        if self
            .peers
            .get(&peer)
            .is_some_and(|live| Arc::strong_count(live) == 1)
        {
            self.peers.remove(&peer);
        }
    }

    /// The scope of `protocol` and, when `peer` is known, the scope of `protocol` with
    /// `peer`, each created if it is not live.
    pub(crate) fn protocol(
        &mut self,
        protocol: &str,
        peer: Option<PeerId>,
        limits: &Limits,
    ) -> (Arc<Scope>, Option<Arc<Scope>>) {
        let entry = self
            .protocols
            .entry(protocol.to_owned())
            .or_insert_with(|| ProtocolEntry {
                scope: Arc::new(Scope::new(
                    ScopeName::Protocol(protocol.to_owned()),
                    limits.protocol_limit(protocol),
                )),
                peers: HashMap::new(),
            });
        let per_peer = peer.map(|peer| {
            entry
                .peers
                .entry(peer)
                .or_insert_with(|| {
                    Arc::new(Scope::new(
                        ScopeName::ProtocolPeer(protocol.to_owned()),
                        limits.protocol_peer_limit(protocol),
                    ))
                })
                .clone()
        });
        (entry.scope.clone(), per_peer)
    }

    /// Gives back scopes from [`protocol`](Self::protocol); drops those nobody else holds.
    pub(crate) fn release_protocol(
        &mut self,
        protocol: &str,
        peer: Option<PeerId>,
        scope: Arc<Scope>,
        per_peer: Option<Arc<Scope>>,
    ) {
        drop(scope);
        drop(per_peer);
        let Some(entry) = self.protocols.get_mut(protocol) else {
            return;
        };
        if let Some(peer) = peer {
            if entry
                .peers
                .get(&peer)
                .is_some_and(|live| Arc::strong_count(live) == 1)
            {
                entry.peers.remove(&peer);
            }
        }
        if entry.peers.is_empty() && Arc::strong_count(&entry.scope) == 1 {
            self.protocols.remove(protocol);
        }
    }

    /// How many peer scopes are live.
    pub(crate) fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// How many protocol-peer scopes are live.
    pub(crate) fn protocol_peer_count(&self) -> usize {
        self.protocols.values().map(|entry| entry.peers.len()).sum()
    }

    /// The live scope of `peer`.
    pub(crate) fn find_peer(&self, peer: &PeerId) -> Option<&Scope> {
        self.peers.get(peer).map(|scope| &**scope)
    }

    /// The live scope of `protocol` with `peer`.
    pub(crate) fn find_protocol_peer(&self, protocol: &str, peer: &PeerId) -> Option<&Scope> {
        self.protocols
            .get(protocol)?
            .peers
            .get(peer)
            .map(|scope| &**scope)
    }

    /// Every live protocol scope.
    pub(crate) fn protocols(&self) -> impl Iterator<Item = (&str, &Scope)> {
        self.protocols
            .iter()
            .map(|(name, entry)| (name.as_str(), &*entry.scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Resource;

    #[test]
    fn peer_scopes_live_while_held() {
        let mut registry = Registry::default();
        let peer = PeerId::random();
        let a = registry.peer(peer, ScopeLimit::unlimited);
        let b = registry.peer(peer, || unreachable!("already live"));
        assert!(Arc::ptr_eq(&a, &b));
        registry.release_peer(peer, a);
        assert_eq!(registry.peer_count(), 1);
        registry.release_peer(peer, b);
        assert_eq!(registry.peer_count(), 0);
    }

    #[test]
    fn protocol_scopes_are_collected_when_idle() {
        let limits = Limits::scaled(1 << 30, 1024);
        let mut registry = Registry::default();
        let peer = PeerId::random();
        let (p1, pp1) = registry.protocol("/a", Some(peer), &limits);
        let (p2, pp2) = registry.protocol("/a", None, &limits);
        assert!(pp2.is_none());
        assert_eq!(registry.protocol_peer_count(), 1);
        assert_eq!(
            pp1.as_ref().map(|s| s.limit_of(Resource::StreamsInbound)),
            Some(limits.protocol_peer.streams_inbound)
        );
        registry.release_protocol("/a", Some(peer), p1, pp1);
        assert_eq!(registry.protocol_peer_count(), 0);
        assert_eq!(registry.protocols().count(), 1);
        registry.release_protocol("/a", None, p2, pp2);
        assert_eq!(registry.protocols().count(), 0);
    }
}
