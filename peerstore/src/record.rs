//! Everything the store knows about one peer, and the rules for changing it.
//!
//! Both backends keep one [`PeerRecord`] per peer and change it only through the methods
//! here, so they behave the same. Every method checks all bounds before it changes
//! anything: on error the record is as it was.

use std::collections::HashSet;
use std::time::Duration;

use libp2p_identity::{PeerId, PublicKey};
use multiaddr::Multiaddr;

use crate::error::{PeerStoreError, Result};
use crate::limits::Limits;
use crate::ttl::{expiry_ms, CONNECTED_TTL_MS};

/// Weight of a new latency sample in the moving average (go-libp2p uses the same).
pub(crate) const LATENCY_EWMA_SMOOTHING: f64 = 0.1;

/// One address with its lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AddrEntry {
    pub(crate) addr: Multiaddr,
    /// UNIX milliseconds after which the address is gone.
    pub(crate) expiry_ms: u64,
    /// The TTL it was stored with (see `ttl::ttl_to_ms`).
    pub(crate) ttl_ms: u64,
}

/// What the store knows about one peer.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PeerRecord {
    pub(crate) addrs: Vec<AddrEntry>,
    pub(crate) public_key: Option<PublicKey>,
    pub(crate) protocols: Vec<String>,
    pub(crate) metadata: Vec<(String, Vec<u8>)>,
    /// Moving average of round-trip times, in nanoseconds.
    pub(crate) latency_ns: Option<f64>,
    /// UNIX milliseconds of the last write.
    pub(crate) last_update_ms: u64,
}

/// What a protocol write changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProtocolChange {
    pub(crate) added: Vec<String>,
    pub(crate) removed: Vec<String>,
}

impl ProtocolChange {
    pub(crate) fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

impl PeerRecord {
    /// Nothing is stored: the record can be dropped.
    pub(crate) fn is_empty(&self) -> bool {
        self.addrs.is_empty()
            && self.public_key.is_none()
            && self.protocols.is_empty()
            && self.metadata.is_empty()
            && self.latency_ns.is_none()
    }

    /// A peer is connected while it has an address with the connected TTL.
    pub(crate) fn is_connected(&self) -> bool {
        self.addrs.iter().any(|a| a.ttl_ms == CONNECTED_TTL_MS)
    }

    // ----- addresses -----

    /// Unexpired addresses at `now_ms`.
    pub(crate) fn live_addrs(&self, now_ms: u64) -> Vec<Multiaddr> {
        self.addrs
            .iter()
            .filter(|a| a.expiry_ms > now_ms)
            .map(|a| a.addr.clone())
            .collect()
    }

    /// Drops expired addresses; returns how many.
    pub(crate) fn purge_expired(&mut self, now_ms: u64) -> usize {
        let before = self.addrs.len();
        self.addrs.retain(|a| a.expiry_ms > now_ms);
        before - self.addrs.len()
    }

    fn check_addr_lengths(addrs: &[Multiaddr], limits: &Limits) -> Result<()> {
        for addr in addrs {
            let len = addr.as_ref().len();
            if len > limits.max_addr_len {
                return Err(PeerStoreError::AddressTooLong {
                    len,
                    limit: limits.max_addr_len,
                });
            }
        }
        Ok(())
    }

    /// How many of `addrs` (deduplicated) are not stored yet.
    fn count_new(&self, addrs: &[Multiaddr]) -> usize {
        let mut seen: HashSet<&Multiaddr> = HashSet::with_capacity(addrs.len());
        addrs
            .iter()
            .filter(|addr| !self.addrs.iter().any(|a| &a.addr == *addr) && seen.insert(*addr))
            .count()
    }

    fn check_addr_room(&self, peer: &PeerId, addrs: &[Multiaddr], limits: &Limits) -> Result<()> {
        let count = self.addrs.len() + self.count_new(addrs);
        if count > limits.max_addrs_per_peer {
            return Err(PeerStoreError::TooManyAddresses {
                peer: *peer,
                count,
                limit: limits.max_addrs_per_peer,
            });
        }
        Ok(())
    }

    /// Adds addresses; an address already stored keeps the longer of its TTL and expiry
    /// and the new ones (go-libp2p `AddAddrs`). A zero TTL does nothing.
    /// Returns whether anything changed.
    pub(crate) fn add_addrs(
        &mut self,
        peer: &PeerId,
        addrs: &[Multiaddr],
        ttl_ms: u64,
        now_ms: u64,
        limits: &Limits,
    ) -> Result<bool> {
        Self::check_addr_lengths(addrs, limits)?;
        if ttl_ms == 0 {
            return Ok(false);
        }
        let mut changed = self.purge_expired(now_ms) > 0;
        self.check_addr_room(peer, addrs, limits)?;
        let expiry = expiry_ms(now_ms, ttl_ms);
        for addr in addrs {
            match self.addrs.iter_mut().find(|a| &a.addr == addr) {
                Some(entry) => {
                    if ttl_ms > entry.ttl_ms {
                        entry.ttl_ms = ttl_ms;
                        changed = true;
                    }
                    if expiry > entry.expiry_ms {
                        entry.expiry_ms = expiry;
                        changed = true;
                    }
                }
                None => {
                    self.addrs.push(AddrEntry {
                        addr: addr.clone(),
                        expiry_ms: expiry,
                        ttl_ms,
                    });
                    changed = true;
                }
            }
        }
        Ok(changed)
    }

    /// Sets the TTL of addresses, overriding what was stored (go-libp2p `SetAddrs`);
    /// a zero TTL removes them. Returns whether anything changed.
    pub(crate) fn set_addrs(
        &mut self,
        peer: &PeerId,
        addrs: &[Multiaddr],
        ttl_ms: u64,
        now_ms: u64,
        limits: &Limits,
    ) -> Result<bool> {
        Self::check_addr_lengths(addrs, limits)?;
        if ttl_ms == 0 {
            return Ok(self.remove_addrs(addrs) | (self.purge_expired(now_ms) > 0));
        }
        let mut changed = self.purge_expired(now_ms) > 0;
        self.check_addr_room(peer, addrs, limits)?;
        let expiry = expiry_ms(now_ms, ttl_ms);
        for addr in addrs {
            match self.addrs.iter_mut().find(|a| &a.addr == addr) {
                Some(entry) => {
                    changed |= entry.ttl_ms != ttl_ms || entry.expiry_ms != expiry;
                    entry.ttl_ms = ttl_ms;
                    entry.expiry_ms = expiry;
                }
                None => {
                    self.addrs.push(AddrEntry {
                        addr: addr.clone(),
                        expiry_ms: expiry,
                        ttl_ms,
                    });
                    changed = true;
                }
            }
        }
        Ok(changed)
    }

    /// Gives every address stored with `old_ttl_ms` the TTL `new_ttl_ms`, counted from
    /// now; a zero new TTL removes them (go-libp2p `UpdateAddrs`).
    pub(crate) fn update_addrs(&mut self, old_ttl_ms: u64, new_ttl_ms: u64, now_ms: u64) -> bool {
        let mut changed = self.purge_expired(now_ms) > 0;
        let expiry = expiry_ms(now_ms, new_ttl_ms);
        let before = self.addrs.len();
        if new_ttl_ms == 0 {
            self.addrs.retain(|a| a.ttl_ms != old_ttl_ms);
            return changed || self.addrs.len() != before;
        }
        for entry in self.addrs.iter_mut().filter(|a| a.ttl_ms == old_ttl_ms) {
            entry.ttl_ms = new_ttl_ms;
            entry.expiry_ms = expiry;
            changed = true;
        }
        changed
    }

    /// Removes the given addresses; returns whether any was stored.
    pub(crate) fn remove_addrs(&mut self, addrs: &[Multiaddr]) -> bool {
        let before = self.addrs.len();
        self.addrs.retain(|a| !addrs.contains(&a.addr));
        before != self.addrs.len()
    }

    // ----- keys -----

    /// Stores `key` for `peer` after checking that it is the peer's key.
    /// Returns whether the peer had no key before.
    pub(crate) fn add_public_key(&mut self, peer: &PeerId, key: &PublicKey) -> Result<bool> {
        check_key_matches(peer, key)?;
        let added = self.public_key.is_none();
        self.public_key = Some(key.clone());
        Ok(added)
    }

    // ----- protocols -----

    fn check_protocol_ids(ids: &[&str], limits: &Limits) -> Result<()> {
        for id in ids {
            if id.is_empty() || id.len() > limits.max_protocol_len {
                return Err(PeerStoreError::InvalidProtocolId {
                    len: id.len(),
                    limit: limits.max_protocol_len,
                });
            }
        }
        Ok(())
    }

    fn check_protocol_room(&self, peer: &PeerId, count: usize, limits: &Limits) -> Result<()> {
        if count > limits.max_protocols_per_peer {
            return Err(PeerStoreError::TooManyProtocols {
                peer: *peer,
                count,
                limit: limits.max_protocols_per_peer,
            });
        }
        Ok(())
    }

    /// Replaces the protocol set.
    pub(crate) fn set_protocols(
        &mut self,
        peer: &PeerId,
        ids: &[&str],
        limits: &Limits,
    ) -> Result<ProtocolChange> {
        Self::check_protocol_ids(ids, limits)?;
        let new_set = dedup(ids);
        self.check_protocol_room(peer, new_set.len(), limits)?;
        let removed = self
            .protocols
            .iter()
            .filter(|p| !new_set.contains(&p.as_str()))
            .cloned()
            .collect();
        let added = new_set
            .iter()
            .filter(|id| !self.protocols.iter().any(|p| p == *id))
            .map(|id| (*id).to_owned())
            .collect();
        self.protocols = new_set.into_iter().map(str::to_owned).collect();
        Ok(ProtocolChange { added, removed })
    }

    /// Adds protocols to the set.
    pub(crate) fn add_protocols(
        &mut self,
        peer: &PeerId,
        ids: &[&str],
        limits: &Limits,
    ) -> Result<ProtocolChange> {
        Self::check_protocol_ids(ids, limits)?;
        let added: Vec<String> = dedup(ids)
            .into_iter()
            .filter(|id| !self.protocols.iter().any(|p| p == id))
            .map(str::to_owned)
            .collect();
        self.check_protocol_room(peer, self.protocols.len() + added.len(), limits)?;
        self.protocols.extend(added.iter().cloned());
        Ok(ProtocolChange {
            added,
            removed: Vec::new(),
        })
    }

    /// Removes protocols from the set.
    pub(crate) fn remove_protocols(&mut self, ids: &[&str]) -> ProtocolChange {
        let mut removed = Vec::new();
        self.protocols.retain(|p| {
            let gone = ids.contains(&p.as_str());
            if gone {
                removed.push(p.clone());
            }
            !gone
        });
        ProtocolChange {
            added: Vec::new(),
            removed,
        }
    }

    /// The ids of `query` the peer supports, in the order of `query`.
    pub(crate) fn supported(&self, query: &[&str]) -> Vec<String> {
        dedup(query)
            .into_iter()
            .filter(|id| self.protocols.iter().any(|p| p == id))
            .map(str::to_owned)
            .collect()
    }

    /// The first id of `query` the peer supports.
    pub(crate) fn first_supported(&self, query: &[&str]) -> Option<String> {
        query
            .iter()
            .find(|id| self.protocols.iter().any(|p| p == *id))
            .map(|id| (*id).to_owned())
    }

    // ----- metadata -----

    fn check_metadata_key(key: &str, limits: &Limits) -> Result<()> {
        if key.is_empty() || key.len() > limits.max_metadata_key_len {
            return Err(PeerStoreError::InvalidMetadataKey {
                len: key.len(),
                limit: limits.max_metadata_key_len,
            });
        }
        Ok(())
    }

    /// Sets a metadata entry; returns whether the value changed.
    pub(crate) fn put_metadata(
        &mut self,
        peer: &PeerId,
        key: &str,
        value: &[u8],
        limits: &Limits,
    ) -> Result<bool> {
        Self::check_metadata_key(key, limits)?;
        if value.len() > limits.max_metadata_value_len {
            return Err(PeerStoreError::MetadataValueTooLarge {
                len: value.len(),
                limit: limits.max_metadata_value_len,
            });
        }
        if let Some((_, stored)) = self.metadata.iter_mut().find(|(k, _)| k == key) {
            let changed = stored.as_slice() != value;
            stored.clear();
            stored.extend_from_slice(value);
            return Ok(changed);
        }
        if self.metadata.len() >= limits.max_metadata_entries_per_peer {
            return Err(PeerStoreError::TooManyMetadataEntries {
                peer: *peer,
                limit: limits.max_metadata_entries_per_peer,
            });
        }
        self.metadata.push((key.to_owned(), value.to_vec()));
        Ok(true)
    }

    /// A metadata value.
    pub(crate) fn metadata(&self, key: &str) -> Option<&[u8]> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// Removes a metadata entry; returns whether it existed.
    pub(crate) fn remove_metadata(&mut self, key: &str) -> bool {
        let before = self.metadata.len();
        self.metadata.retain(|(k, _)| k != key);
        before != self.metadata.len()
    }

    // ----- latency -----

    /// Folds a round-trip sample into the moving average.
    pub(crate) fn record_latency(&mut self, sample: Duration) {
        let sample_ns = sample.as_nanos() as f64;
        self.latency_ns = Some(match self.latency_ns {
            None => sample_ns,
            Some(previous) => {
                (1.0 - LATENCY_EWMA_SMOOTHING) * previous + LATENCY_EWMA_SMOOTHING * sample_ns
            }
        });
    }

    /// The moving average of round-trip times.
    pub(crate) fn latency(&self) -> Option<Duration> {
        self.latency_ns
            .filter(|ns| ns.is_finite() && *ns >= 0.0)
            .map(|ns| Duration::from_nanos(ns.min(u64::MAX as f64) as u64))
    }
}

/// Checks that `key` is the key of `peer`.
pub(crate) fn check_key_matches(peer: &PeerId, key: &PublicKey) -> Result<()> {
    let key_peer = key.to_peer_id();
    if &key_peer != peer {
        return Err(PeerStoreError::KeyMismatch {
            peer: Box::new(*peer),
            key_peer: Box::new(key_peer),
        });
    }
    Ok(())
}

/// The public key inlined in an identity-multihash peer id (Ed25519, secp256k1 ids).
pub(crate) fn key_inlined_in(peer: &PeerId) -> Option<PublicKey> {
    const IDENTITY_MULTIHASH: u64 = 0x00;
    let multihash = peer.as_ref();
    if multihash.code() != IDENTITY_MULTIHASH {
        return None;
    }
    PublicKey::try_decode_protobuf(multihash.digest()).ok()
}

/// `ids` without repeats, first occurrence kept.
fn dedup<'a>(ids: &[&'a str]) -> Vec<&'a str> {
    let mut seen: HashSet<&'a str> = HashSet::with_capacity(ids.len());
    ids.iter().copied().filter(|id| seen.insert(id)).collect()
}
