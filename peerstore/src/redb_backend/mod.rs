//! [`RedbPeerStore`]: the persistent backend, one `redb` file.

mod codec;
mod errors;
mod open;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use libp2p_identity::PeerId;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use crate::backend::{impl_peer_store, oldest, Durability, RecordStore, RecordStoreExt};
use crate::batch::PeerStoreOp;
use crate::clock::{now_ms, Clock, SystemClock};
use crate::error::{PeerStoreError, Result};
use crate::event::{EventSender, PeerStoreEvent};
use crate::limits::Limits;
use crate::record::PeerRecord;
use errors::storage;

/// The version of the file layout this build writes and reads. A file with another
/// version is refused with [`PeerStoreError::UnsupportedFormat`] and left untouched.
pub const FORMAT_VERSION: u64 = 1;

/// Peer id bytes → encoded peer record.
const PEERS: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("weft_peers");
/// Store-level records (the format version).
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("weft_peerstore_meta");
/// Key of the format version in [`META`].
const FORMAT_KEY: &str = "format_version";

/// Options of [`RedbPeerStore::open_with`].
#[derive(Debug, Clone)]
pub struct RedbOptions {
    /// Size bounds. Default: [`Limits::default`].
    pub limits: Limits,
    /// Time source for expiries. Default: [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// Page cache of the database, bytes. Default 32 MiB.
    pub cache_size: usize,
    /// Whether each write is on disk (`fsync`) before it returns. Default `true`.
    /// With `false`, writes are atomic but a crash may lose those made since the last
    /// [`RedbPeerStore::flush`].
    pub durable_writes: bool,
    /// Whether to verify every page checksum when opening (reads the whole file), so a
    /// damaged file is refused up front. Default `true`.
    pub verify_on_open: bool,
}

impl Default for RedbOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            clock: Arc::new(SystemClock),
            cache_size: 32 * 1024 * 1024,
            durable_writes: true,
            verify_on_open: true,
        }
    }
}

/// A peer store in one file, on the pure-Rust, ACID, crash-safe `redb` database.
///
/// Each write is one transaction: after a crash the file holds every write that had
/// returned (with [`RedbOptions::durable_writes`], the default) and none that had not.
/// Expiries are stored as UNIX time, so TTLs keep running while the process is stopped;
/// expired addresses are deleted when the store opens. Readers do not block each other
/// or the writer (MVCC); writes are serialised.
///
/// Opening checks a format-version record: a file that is damaged, of a newer format or
/// not a weft peer store gives an error and is never overwritten.
///
/// ```
/// use weft_peerstore::{PeerStore, RedbPeerStore, DEFAULT_ADDR_TTL};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("peers.redb");
/// let peer = libp2p_identity::PeerId::random();
/// let addr: multiaddr::Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse()?;
/// {
///     let store = RedbPeerStore::open(&path)?;
///     store.add_addrs(&peer, &[addr.clone()], DEFAULT_ADDR_TTL)?;
/// }
/// let store = RedbPeerStore::open(&path)?;
/// assert_eq!(store.addrs(&peer)?, vec![addr]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedbPeerStore {
    db: Database,
    path: PathBuf,
    options: RedbOptions,
    events: EventSender,
    commits: AtomicU64,
}

impl fmt::Debug for RedbPeerStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbPeerStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RedbPeerStore {
    /// Opens (or creates) the store at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, RedbOptions::default())
    }

    /// Opens (or creates) the store at `path`.
    pub fn open_with(path: impl AsRef<Path>, options: RedbOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let span = tracing::debug_span!("peerstore_open", path = %path.display());
        let _entered = span.enter();
        let db = open::open_database(&path, &options)?;
        let store = Self {
            db,
            path,
            events: EventSender::new(options.limits.event_capacity),
            options,
            commits: AtomicU64::new(0),
        };
        let (expired, _) = store.purge_expired()?;
        tracing::debug!(expired, "peer store opened");
        Ok(store)
    }

    /// The file of this store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every earlier write durable (needed only for writes made without `fsync`:
    /// latency samples, or all writes with `durable_writes: false`).
    pub fn flush(&self) -> Result<()> {
        let txn = self.db.begin_write().map_err(storage)?;
        self.commit(txn)
    }

    /// The number of write transactions committed since the store was opened: one per
    /// write call, one per [`crate::PeerStore::apply_batch`] however many ops it holds
    /// (a diagnostic, for example to see that a writer batches).
    pub fn write_transactions(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    fn commit(&self, txn: WriteTransaction) -> Result<()> {
        txn.commit().map_err(storage)?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Applies `ops` in one write transaction (see [`crate::PeerStore::apply_batch`]).
    fn apply_batch_in_one_transaction(&self, ops: &[PeerStoreOp]) -> Result<Vec<Result<()>>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let durability = if ops.iter().any(PeerStoreOp::is_durable) {
            Durability::Durable
        } else {
            Durability::Relaxed
        };
        let view = TxnView {
            store: self,
            txn: self.begin_write(durability)?,
            events: self.events.deferring(),
        };
        let results = ops.iter().map(|op| op.apply_to(&view)).collect();
        let TxnView { txn, events, .. } = view;
        self.commit(txn)?;
        events.release();
        Ok(results)
    }

    /// The body of a record write inside `txn`: `None` if nothing is to be stored (a
    /// new peer whose record stayed empty), else the evicted peers.
    fn write_in<R>(
        &self,
        txn: &WriteTransaction,
        now: u64,
        peer: &PeerId,
        f: &impl Fn(&mut PeerRecord, u64) -> Result<R>,
    ) -> Result<(R, Option<Vec<PeerId>>)> {
        let key = peer.to_bytes();
        let mut table = txn.open_table(PEERS).map_err(storage)?;
        let existing = match table.get(key.as_slice()).map_err(storage)? {
            Some(value) => Some(codec::decode(value.value())?),
            None => None,
        };
        let is_new = existing.is_none();
        let mut record = existing.unwrap_or_default();
        let out = f(&mut record, now)?;
        record.last_update_ms = now;
        let mut evicted = Vec::new();
        if record.is_empty() {
            if is_new {
                return Ok((out, None));
            }
            table.remove(key.as_slice()).map_err(storage)?;
        } else {
            let count = usize::try_from(table.len().map_err(storage)?).unwrap_or(usize::MAX);
            if is_new && count >= self.options.limits.max_peers {
                evicted = self.evict_in(&mut table, &key)?;
                if evicted.is_empty() {
                    return Err(PeerStoreError::StoreFull {
                        limit: self.options.limits.max_peers,
                    });
                }
            }
            table
                .insert(key.as_slice(), codec::encode(&record).as_slice())
                .map_err(storage)?;
        }
        Ok((out, Some(evicted)))
    }

    /// Deletes expired addresses inside `txn`; returns their number and the peers whose
    /// addresses changed.
    fn purge_in(&self, txn: &WriteTransaction, now: u64) -> Result<(usize, Vec<PeerId>)> {
        let mut removed = 0;
        let mut changed = Vec::new();
        let mut table = txn.open_table(PEERS).map_err(storage)?;
        let mut updates: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (key, value) = entry.map_err(storage)?;
            let Some((peer, mut record)) = decode_entry(key.value(), value.value()) else {
                continue;
            };
            let n = record.purge_expired(now);
            if n > 0 {
                removed += n;
                changed.push(peer);
                let new_value = (!record.is_empty()).then(|| codec::encode(&record));
                updates.push((key.value().to_vec(), new_value));
            }
        }
        for (key, value) in &updates {
            match value {
                Some(value) => table.insert(key.as_slice(), value.as_slice()),
                None => table.remove(key.as_slice()),
            }
            .map_err(storage)?;
        }
        Ok((removed, changed))
    }

    fn begin_write(&self, durability: Durability) -> Result<redb::WriteTransaction> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        if durability == Durability::Relaxed || !self.options.durable_writes {
            txn.set_durability(redb::Durability::None)
                .map_err(storage)?;
        }
        Ok(txn)
    }

    /// Deletes the oldest non-connected peers other than `keep`.
    fn evict_in(
        &self,
        table: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
        keep: &[u8],
    ) -> Result<Vec<PeerId>> {
        let mut candidates = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (key, value) = entry.map_err(storage)?;
            if key.value() == keep {
                continue;
            }
            let Some((peer, record)) = decode_entry(key.value(), value.value()) else {
                continue;
            };
            if !record.is_connected() {
                candidates.push((record.last_update_ms, peer));
            }
        }
        let mut evicted = Vec::new();
        for (_, peer) in oldest(candidates, self.options.limits.eviction_batch()) {
            table.remove(peer.to_bytes().as_slice()).map_err(storage)?;
            tracing::debug!(%peer, "peer store full: evicted peer");
            evicted.push(peer);
        }
        Ok(evicted)
    }
}

fn peer_from_key(key: &[u8]) -> Result<PeerId> {
    PeerId::from_bytes(key).map_err(|e| PeerStoreError::Corrupt(format!("bad peer id key: {e}")))
}

/// Decodes a table entry for a whole-table scan. A damaged entry is logged and skipped,
/// so one bad record does not make the store unusable: it stays in the file untouched,
/// reading or writing that peer reports [`PeerStoreError::Corrupt`], and
/// [`crate::PeerStore::remove_peer`] deletes it.
fn decode_entry(key: &[u8], value: &[u8]) -> Option<(PeerId, PeerRecord)> {
    match peer_from_key(key).and_then(|peer| Ok((peer, codec::decode(value)?))) {
        Ok(entry) => Some(entry),
        Err(e) => {
            tracing::warn!(error = %e, "skipping a damaged peer store entry");
            None
        }
    }
}

impl RecordStore for RedbPeerStore {
    fn limits(&self) -> &Limits {
        &self.options.limits
    }

    fn now_ms(&self) -> u64 {
        now_ms(self.options.clock.as_ref())
    }

    fn events(&self) -> &EventSender {
        &self.events
    }

    fn read_record<R>(&self, peer: &PeerId, f: impl FnOnce(&PeerRecord) -> R) -> Result<Option<R>> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(PEERS).map_err(storage)?;
        let Some(value) = table.get(peer.to_bytes().as_slice()).map_err(storage)? else {
            return Ok(None);
        };
        let record = codec::decode(value.value())?;
        Ok(Some(f(&record)))
    }

    fn write_record<R>(
        &self,
        peer: &PeerId,
        durability: Durability,
        f: impl Fn(&mut PeerRecord, u64) -> Result<R>,
    ) -> Result<R> {
        let now = self.now_ms();
        let txn = self.begin_write(durability)?;
        // On an error the transaction is dropped, which aborts it.
        let (out, evicted) = self.write_in(&txn, now, peer, &f)?;
        let Some(evicted) = evicted else {
            txn.abort().map_err(storage)?;
            return Ok(out);
        };
        self.commit(txn)?;
        self.events.send_all(
            evicted
                .into_iter()
                .map(|peer| PeerStoreEvent::PeerEvicted { peer }),
        );
        Ok(out)
    }

    fn purge_expired(&self) -> Result<(usize, Vec<PeerId>)> {
        let now = self.now_ms();
        let txn = self.begin_write(Durability::Durable)?;
        let (removed, changed) = self.purge_in(&txn, now)?;
        if changed.is_empty() {
            txn.abort().map_err(storage)?;
        } else {
            self.commit(txn)?;
        }
        Ok((removed, changed))
    }

    fn peer_ids(&self) -> Result<Vec<PeerId>> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(PEERS).map_err(storage)?;
        let mut peers = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (key, _) = entry.map_err(storage)?;
            match peer_from_key(key.value()) {
                Ok(peer) => peers.push(peer),
                Err(e) => tracing::warn!(error = %e, "skipping a damaged peer store entry"),
            }
        }
        Ok(peers)
    }

    fn count(&self) -> Result<usize> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(PEERS).map_err(storage)?;
        let len = table.len().map_err(storage)?;
        Ok(usize::try_from(len).unwrap_or(usize::MAX))
    }

    fn delete_record(&self, peer: &PeerId) -> Result<bool> {
        let txn = self.begin_write(Durability::Durable)?;
        let existed = delete_in(&txn, peer)?;
        if existed {
            self.commit(txn)?;
        } else {
            txn.abort().map_err(storage)?;
        }
        Ok(existed)
    }
}

fn delete_in(txn: &WriteTransaction, peer: &PeerId) -> Result<bool> {
    let mut table = txn.open_table(PEERS).map_err(storage)?;
    let removed = table.remove(peer.to_bytes().as_slice()).map_err(storage)?;
    Ok(removed.is_some())
}

/// The store as seen from inside one write transaction: what
/// [`RedbPeerStore::apply_batch_in_one_transaction`] applies a batch's ops to. Reads see
/// the batch's earlier writes; events wait for the commit.
struct TxnView<'a> {
    store: &'a RedbPeerStore,
    txn: WriteTransaction,
    events: EventSender,
}

impl fmt::Debug for TxnView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxnView")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl RecordStore for TxnView<'_> {
    fn limits(&self) -> &Limits {
        self.store.limits()
    }

    fn now_ms(&self) -> u64 {
        self.store.now_ms()
    }

    fn events(&self) -> &EventSender {
        &self.events
    }

    fn read_record<R>(&self, peer: &PeerId, f: impl FnOnce(&PeerRecord) -> R) -> Result<Option<R>> {
        let table = self.txn.open_table(PEERS).map_err(storage)?;
        let Some(value) = table.get(peer.to_bytes().as_slice()).map_err(storage)? else {
            return Ok(None);
        };
        let record = codec::decode(value.value())?;
        Ok(Some(f(&record)))
    }

    fn write_record<R>(
        &self,
        peer: &PeerId,
        _durability: Durability,
        f: impl Fn(&mut PeerRecord, u64) -> Result<R>,
    ) -> Result<R> {
        let (out, evicted) = self.store.write_in(&self.txn, self.now_ms(), peer, &f)?;
        self.events.send_all(
            evicted
                .into_iter()
                .flatten()
                .map(|peer| PeerStoreEvent::PeerEvicted { peer }),
        );
        Ok(out)
    }

    fn purge_expired(&self) -> Result<(usize, Vec<PeerId>)> {
        self.store.purge_in(&self.txn, self.now_ms())
    }

    fn peer_ids(&self) -> Result<Vec<PeerId>> {
        let table = self.txn.open_table(PEERS).map_err(storage)?;
        let mut peers = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (key, _) = entry.map_err(storage)?;
            if let Ok(peer) = peer_from_key(key.value()) {
                peers.push(peer);
            }
        }
        Ok(peers)
    }

    fn count(&self) -> Result<usize> {
        let table = self.txn.open_table(PEERS).map_err(storage)?;
        let len = table.len().map_err(storage)?;
        Ok(usize::try_from(len).unwrap_or(usize::MAX))
    }

    fn delete_record(&self, peer: &PeerId) -> Result<bool> {
        delete_in(&self.txn, peer)
    }
}

impl_peer_store!(TxnView<'_>);

impl_peer_store!(
    RedbPeerStore,
    apply_batch = RedbPeerStore::apply_batch_in_one_transaction
);
