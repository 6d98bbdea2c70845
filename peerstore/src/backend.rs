//! The one implementation of [`crate::PeerStore`] on top of a record storage.
//!
//! A backend only knows how to read, write (atomically), list, expire and evict
//! [`PeerRecord`]s; the rules live in [`crate::record`] and the trait methods in
//! [`impl_peer_store!`], so both backends behave the same.

use libp2p_identity::PeerId;

use crate::error::Result;
use crate::event::EventSender;
use crate::limits::Limits;
use crate::record::PeerRecord;

/// How a write must be committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// On disk before the call returns (persistent backends).
    Durable,
    /// May be lost on a crash (latency samples).
    Relaxed,
}

/// Record storage of a backend.
pub(crate) trait RecordStore {
    fn limits(&self) -> &Limits;
    fn now_ms(&self) -> u64;
    fn events(&self) -> &EventSender;

    /// Runs `f` on the record of `peer`, if there is one.
    fn read_record<R>(&self, peer: &PeerId, f: impl FnOnce(&PeerRecord) -> R) -> Result<Option<R>>;

    /// Runs `f` on the record of `peer` (an empty one if absent) and stores the result
    /// atomically, stamping its last update; an empty result deletes the record. On error
    /// nothing is stored. `f` may run more than once (after an eviction), each time on a
    /// fresh copy. A new peer in a full store triggers an eviction first.
    fn write_record<R>(
        &self,
        peer: &PeerId,
        durability: Durability,
        f: impl Fn(&mut PeerRecord, u64) -> Result<R>,
    ) -> Result<R>;

    /// Deletes expired addresses and empty records; returns the number of addresses
    /// deleted and the peers whose addresses changed.
    fn purge_expired(&self) -> Result<(usize, Vec<PeerId>)>;

    /// Every stored peer.
    fn peer_ids(&self) -> Result<Vec<PeerId>>;

    /// Number of stored peers.
    fn count(&self) -> Result<usize>;

    /// Deletes the record of `peer`; returns whether it existed.
    fn delete_record(&self, peer: &PeerId) -> Result<bool>;
}

/// Picks, among `(last_update_ms, peer)` candidates, the `n` with the oldest update.
pub(crate) fn oldest(mut candidates: Vec<(u64, PeerId)>, n: usize) -> Vec<(u64, PeerId)> {
    if n == 0 {
        return Vec::new();
    }
    if candidates.len() > n {
        candidates.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
        candidates.truncate(n);
    }
    candidates
}

/// Implements [`crate::PeerStore`] for a type that implements [`RecordStore`].
/// With `apply_batch = path`, [`crate::PeerStore::apply_batch`] calls `path(self, ops)`.
macro_rules! impl_peer_store {
    ($store:ty $(, apply_batch = $batch:path)?) => {
        impl $crate::store::PeerStore for $store {
            $(
                fn apply_batch(
                    &self,
                    ops: &[$crate::batch::PeerStoreOp],
                ) -> $crate::error::Result<Vec<$crate::error::Result<()>>> {
                    $batch(self, ops)
                }
            )?

            fn add_addrs(
                &self,
                peer: &::libp2p_identity::PeerId,
                addrs: &[::multiaddr::Multiaddr],
                ttl: ::std::time::Duration,
            ) -> $crate::error::Result<()> {
                let ttl_ms = $crate::ttl::ttl_to_ms(ttl);
                let limits = self.limits().clone();
                let changed =
                    self.write_record(peer, $crate::backend::Durability::Durable, |r, now| {
                        r.add_addrs(peer, addrs, ttl_ms, now, &limits)
                    })?;
                if changed {
                    self.events()
                        .send($crate::event::PeerStoreEvent::AddressesChanged { peer: *peer });
                }
                Ok(())
            }

            fn set_addrs(
                &self,
                peer: &::libp2p_identity::PeerId,
                addrs: &[::multiaddr::Multiaddr],
                ttl: ::std::time::Duration,
            ) -> $crate::error::Result<()> {
                let ttl_ms = $crate::ttl::ttl_to_ms(ttl);
                let limits = self.limits().clone();
                let changed =
                    self.write_record(peer, $crate::backend::Durability::Durable, |r, now| {
                        r.set_addrs(peer, addrs, ttl_ms, now, &limits)
                    })?;
                if changed {
                    self.events()
                        .send($crate::event::PeerStoreEvent::AddressesChanged { peer: *peer });
                }
                Ok(())
            }

            fn update_addrs(
                &self,
                peer: &::libp2p_identity::PeerId,
                old_ttl: ::std::time::Duration,
                new_ttl: ::std::time::Duration,
            ) -> $crate::error::Result<()> {
                let old_ms = $crate::ttl::ttl_to_ms(old_ttl);
                let new_ms = $crate::ttl::ttl_to_ms(new_ttl);
                if !self.record_exists(peer)? {
                    return Ok(());
                }
                let changed =
                    self.write_record(peer, $crate::backend::Durability::Durable, |r, now| {
                        Ok(r.update_addrs(old_ms, new_ms, now))
                    })?;
                if changed {
                    self.events()
                        .send($crate::event::PeerStoreEvent::AddressesChanged { peer: *peer });
                }
                Ok(())
            }

            fn remove_addrs(
                &self,
                peer: &::libp2p_identity::PeerId,
                addrs: &[::multiaddr::Multiaddr],
            ) -> $crate::error::Result<()> {
                if !self.record_exists(peer)? {
                    return Ok(());
                }
                let changed =
                    self.write_record(peer, $crate::backend::Durability::Durable, |r, _| {
                        Ok(r.remove_addrs(addrs))
                    })?;
                if changed {
                    self.events()
                        .send($crate::event::PeerStoreEvent::AddressesChanged { peer: *peer });
                }
                Ok(())
            }

            fn clear_addrs(&self, peer: &::libp2p_identity::PeerId) -> $crate::error::Result<()> {
                if !self.record_exists(peer)? {
                    return Ok(());
                }
                let changed =
                    self.write_record(peer, $crate::backend::Durability::Durable, |r, _| {
                        let had = !r.addrs.is_empty();
                        r.addrs.clear();
                        Ok(had)
                    })?;
                if changed {
                    self.events()
                        .send($crate::event::PeerStoreEvent::AddressesChanged { peer: *peer });
                }
                Ok(())
            }

            fn addrs(
                &self,
                peer: &::libp2p_identity::PeerId,
            ) -> $crate::error::Result<Vec<::multiaddr::Multiaddr>> {
                let now = self.now_ms();
                Ok(self
                    .read_record(peer, |r| r.live_addrs(now))?
                    .unwrap_or_default())
            }

            fn gc(&self) -> $crate::error::Result<usize> {
                let (removed, peers) = self.purge_expired()?;
                self.events().send_all(
                    peers
                        .into_iter()
                        .map(|peer| $crate::event::PeerStoreEvent::AddressesChanged { peer }),
                );
                Ok(removed)
            }

            fn add_pubkey(
                &self,
                peer: &::libp2p_identity::PeerId,
                key: &::libp2p_identity::PublicKey,
            ) -> $crate::error::Result<()> {
                $crate::record::check_key_matches(peer, key)?;
                let added =
                    self.write_record(peer, $crate::backend::Durability::Durable, |r, _| {
                        r.add_public_key(peer, key)
                    })?;
                if added {
                    self.events()
                        .send($crate::event::PeerStoreEvent::KeyAdded { peer: *peer });
                }
                Ok(())
            }

            fn pubkey(
                &self,
                peer: &::libp2p_identity::PeerId,
            ) -> $crate::error::Result<Option<::libp2p_identity::PublicKey>> {
                let stored = self.read_record(peer, |r| r.public_key.clone())?.flatten();
                Ok(stored.or_else(|| $crate::record::key_inlined_in(peer)))
            }

            fn set_protocols(
                &self,
                peer: &::libp2p_identity::PeerId,
                protocols: &[&str],
            ) -> $crate::error::Result<()> {
                let limits = self.limits().clone();
                let change =
                    self.write_record(peer, $crate::backend::Durability::Durable, |r, _| {
                        r.set_protocols(peer, protocols, &limits)
                    })?;
                self.send_protocol_change(peer, change);
                Ok(())
            }

            fn add_protocols(
                &self,
                peer: &::libp2p_identity::PeerId,
                protocols: &[&str],
            ) -> $crate::error::Result<()> {
                let limits = self.limits().clone();
                let change =
                    self.write_record(peer, $crate::backend::Durability::Durable, |r, _| {
                        r.add_protocols(peer, protocols, &limits)
                    })?;
                self.send_protocol_change(peer, change);
                Ok(())
            }

            fn remove_protocols(
                &self,
                peer: &::libp2p_identity::PeerId,
                protocols: &[&str],
            ) -> $crate::error::Result<()> {
                if !self.record_exists(peer)? {
                    return Ok(());
                }
                let change =
                    self.write_record(peer, $crate::backend::Durability::Durable, |r, _| {
                        Ok(r.remove_protocols(protocols))
                    })?;
                self.send_protocol_change(peer, change);
                Ok(())
            }

            fn protocols(
                &self,
                peer: &::libp2p_identity::PeerId,
            ) -> $crate::error::Result<Vec<String>> {
                Ok(self
                    .read_record(peer, |r| r.protocols.clone())?
                    .unwrap_or_default())
            }

            fn supports_protocols(
                &self,
                peer: &::libp2p_identity::PeerId,
                protocols: &[&str],
            ) -> $crate::error::Result<Vec<String>> {
                Ok(self
                    .read_record(peer, |r| r.supported(protocols))?
                    .unwrap_or_default())
            }

            fn first_supported_protocol(
                &self,
                peer: &::libp2p_identity::PeerId,
                protocols: &[&str],
            ) -> $crate::error::Result<Option<String>> {
                Ok(self
                    .read_record(peer, |r| r.first_supported(protocols))?
                    .flatten())
            }

            fn put_metadata(
                &self,
                peer: &::libp2p_identity::PeerId,
                key: &str,
                value: &[u8],
            ) -> $crate::error::Result<()> {
                let limits = self.limits().clone();
                let changed =
                    self.write_record(peer, $crate::backend::Durability::Durable, |r, _| {
                        r.put_metadata(peer, key, value, &limits)
                    })?;
                if changed {
                    self.events()
                        .send($crate::event::PeerStoreEvent::MetadataChanged {
                            peer: *peer,
                            key: key.to_owned(),
                        });
                }
                Ok(())
            }

            fn metadata(
                &self,
                peer: &::libp2p_identity::PeerId,
                key: &str,
            ) -> $crate::error::Result<Option<Vec<u8>>> {
                Ok(self
                    .read_record(peer, |r| r.metadata(key).map(<[u8]>::to_vec))?
                    .flatten())
            }

            fn remove_metadata(
                &self,
                peer: &::libp2p_identity::PeerId,
                key: &str,
            ) -> $crate::error::Result<()> {
                if !self.record_exists(peer)? {
                    return Ok(());
                }
                let changed =
                    self.write_record(peer, $crate::backend::Durability::Durable, |r, _| {
                        Ok(r.remove_metadata(key))
                    })?;
                if changed {
                    self.events()
                        .send($crate::event::PeerStoreEvent::MetadataChanged {
                            peer: *peer,
                            key: key.to_owned(),
                        });
                }
                Ok(())
            }

            fn record_latency(
                &self,
                peer: &::libp2p_identity::PeerId,
                rtt: ::std::time::Duration,
            ) -> $crate::error::Result<()> {
                self.write_record(peer, $crate::backend::Durability::Relaxed, |r, _| {
                    r.record_latency(rtt);
                    Ok(())
                })
            }

            fn latency(
                &self,
                peer: &::libp2p_identity::PeerId,
            ) -> $crate::error::Result<Option<::std::time::Duration>> {
                Ok(self.read_record(peer, |r| r.latency())?.flatten())
            }

            fn peers(&self) -> $crate::error::Result<Vec<::libp2p_identity::PeerId>> {
                self.peer_ids()
            }

            fn peer_count(&self) -> $crate::error::Result<usize> {
                self.count()
            }

            fn remove_peer(&self, peer: &::libp2p_identity::PeerId) -> $crate::error::Result<()> {
                if self.delete_record(peer)? {
                    self.events()
                        .send($crate::event::PeerStoreEvent::PeerRemoved { peer: *peer });
                }
                Ok(())
            }

            fn subscribe(
                &self,
            ) -> ::tokio::sync::broadcast::Receiver<$crate::event::PeerStoreEvent> {
                self.events().subscribe()
            }
        }
    };
}

pub(crate) use impl_peer_store;

/// Helpers the macro needs on every backend.
pub(crate) trait RecordStoreExt: RecordStore {
    /// Whether `peer` has a record (writes that can only shrink a record skip absent
    /// peers, so they never create, nor evict for, an empty record).
    fn record_exists(&self, peer: &PeerId) -> Result<bool> {
        Ok(self.read_record(peer, |_| ())?.is_some())
    }

    /// Sends a `ProtocolsChanged` event if anything changed.
    fn send_protocol_change(&self, peer: &PeerId, change: crate::record::ProtocolChange) {
        if !change.is_empty() {
            self.events()
                .send(crate::event::PeerStoreEvent::ProtocolsChanged {
                    peer: *peer,
                    added: change.added,
                    removed: change.removed,
                });
        }
    }
}

impl<T: RecordStore> RecordStoreExt for T {}
