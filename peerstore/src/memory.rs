//! [`MemoryPeerStore`]: the in-memory backend.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use libp2p_identity::PeerId;

use crate::backend::{impl_peer_store, oldest, Durability, RecordStore, RecordStoreExt};
use crate::clock::{now_ms, Clock, SystemClock};
use crate::error::{PeerStoreError, Result};
use crate::event::{EventSender, PeerStoreEvent};
use crate::limits::Limits;
use crate::record::PeerRecord;

/// Number of independently locked shards.
const SHARDS: usize = 64;

type Shard = RwLock<HashMap<PeerId, PeerRecord>>;

/// A peer store in memory: the default backend.
///
/// Peers are spread over 64 shards, each a `RwLock<HashMap>`: readers of different
/// peers never contend, readers of the same shard share its lock, and a writer locks one
/// shard for the time of an in-memory update. No lock is held across an `.await` (all
/// methods are synchronous).
///
/// ```
/// use std::sync::Arc;
/// use weft_peerstore::{MemoryPeerStore, PeerStore, DEFAULT_ADDR_TTL};
///
/// let store: Arc<dyn PeerStore> = Arc::new(MemoryPeerStore::new());
/// let peer = libp2p_identity::PeerId::random();
/// let addr: multiaddr::Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
/// store.add_addrs(&peer, &[addr.clone()], DEFAULT_ADDR_TTL).unwrap();
/// assert_eq!(store.addrs(&peer).unwrap(), vec![addr]);
/// ```
#[derive(Debug)]
pub struct MemoryPeerStore {
    shards: Box<[Shard]>,
    hasher: RandomState,
    peer_count: AtomicUsize,
    limits: Limits,
    clock: Arc<dyn Clock>,
    events: EventSender,
}

impl Default for MemoryPeerStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryPeerStore {
    /// A store with default [`Limits`] and the system clock.
    pub fn new() -> Self {
        Self::with_config(Limits::default(), Arc::new(SystemClock))
    }

    /// A store with the given limits and clock.
    pub fn with_config(limits: Limits, clock: Arc<dyn Clock>) -> Self {
        let events = EventSender::new(limits.event_capacity);
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            peer_count: AtomicUsize::new(0),
            limits,
            clock,
            events,
        }
    }

    fn shard(&self, peer: &PeerId) -> &Shard {
        let index = (self.hasher.hash_one(peer) % SHARDS as u64) as usize;
        // `index < SHARDS == self.shards.len()`.
        &self.shards[index]
    }

    /// Evicts the oldest non-connected peers other than `keep`; returns how many.
    fn evict(&self, keep: &PeerId) -> usize {
        let mut candidates = Vec::new();
        for shard in self.shards.iter() {
            let map = read(shard);
            candidates.extend(
                map.iter()
                    .filter(|(peer, record)| *peer != keep && !record.is_connected())
                    .map(|(peer, record)| (record.last_update_ms, *peer)),
            );
        }
        let mut evicted = 0;
        for (seen_update, peer) in oldest(candidates, self.limits.eviction_batch()) {
            let mut map = write(self.shard(&peer));
            let still_stale = map
                .get(&peer)
                .is_some_and(|r| r.last_update_ms == seen_update && !r.is_connected());
            if still_stale && map.remove(&peer).is_some() {
                drop(map);
                self.peer_count.fetch_sub(1, Ordering::SeqCst);
                evicted += 1;
                tracing::debug!(%peer, "peer store full: evicted peer");
                self.events.send(PeerStoreEvent::PeerEvicted { peer });
            }
        }
        evicted
    }
}

fn read(shard: &Shard) -> RwLockReadGuard<'_, HashMap<PeerId, PeerRecord>> {
    // Records are changed only after every check passed, so a panic elsewhere cannot
    // leave one half-written: a poisoned lock is safe to use.
    shard.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(shard: &Shard) -> RwLockWriteGuard<'_, HashMap<PeerId, PeerRecord>> {
    shard.write().unwrap_or_else(PoisonError::into_inner)
}

impl RecordStore for MemoryPeerStore {
    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn now_ms(&self) -> u64 {
        now_ms(self.clock.as_ref())
    }

    fn events(&self) -> &EventSender {
        &self.events
    }

    fn read_record<R>(&self, peer: &PeerId, f: impl FnOnce(&PeerRecord) -> R) -> Result<Option<R>> {
        Ok(read(self.shard(peer)).get(peer).map(f))
    }

    fn write_record<R>(
        &self,
        peer: &PeerId,
        _durability: Durability,
        f: impl Fn(&mut PeerRecord, u64) -> Result<R>,
    ) -> Result<R> {
        let mut evicted_once = false;
        loop {
            let now = self.now_ms();
            let mut map = write(self.shard(peer));
            if let Some(record) = map.get_mut(peer) {
                let out = f(record, now)?;
                record.last_update_ms = now;
                if record.is_empty() {
                    map.remove(peer);
                    drop(map);
                    self.peer_count.fetch_sub(1, Ordering::SeqCst);
                }
                return Ok(out);
            }
            let mut record = PeerRecord::default();
            let out = f(&mut record, now)?;
            if record.is_empty() {
                return Ok(out);
            }
            let full = self.peer_count.load(Ordering::SeqCst) >= self.limits.max_peers;
            if !full || evicted_once {
                record.last_update_ms = now;
                map.insert(*peer, record);
                self.peer_count.fetch_add(1, Ordering::SeqCst);
                return Ok(out);
            }
            drop(map);
            if self.evict(peer) == 0 {
                return Err(PeerStoreError::StoreFull {
                    limit: self.limits.max_peers,
                });
            }
            evicted_once = true;
        }
    }

    fn purge_expired(&self) -> Result<(usize, Vec<PeerId>)> {
        let now = self.now_ms();
        let mut removed = 0;
        let mut changed = Vec::new();
        for shard in self.shards.iter() {
            let mut map = write(shard);
            let before = map.len();
            map.retain(|peer, record| {
                let n = record.purge_expired(now);
                if n > 0 {
                    removed += n;
                    changed.push(*peer);
                }
                !record.is_empty()
            });
            let dropped = before - map.len();
            drop(map);
            self.peer_count.fetch_sub(dropped, Ordering::SeqCst);
        }
        Ok((removed, changed))
    }

    fn peer_ids(&self) -> Result<Vec<PeerId>> {
        let mut peers = Vec::new();
        for shard in self.shards.iter() {
            peers.extend(read(shard).keys().copied());
        }
        Ok(peers)
    }

    fn count(&self) -> Result<usize> {
        Ok(self.peer_count.load(Ordering::SeqCst))
    }

    fn delete_record(&self, peer: &PeerId) -> Result<bool> {
        let removed = write(self.shard(peer)).remove(peer).is_some();
        if removed {
            self.peer_count.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(removed)
    }
}

impl_peer_store!(MemoryPeerStore);
