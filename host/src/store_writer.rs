//! The peerstore writer: the host's peerstore writes, off the async runtime.
//!
//! A persistent peerstore commits each write durably (redb: an `fsync`, about 4.6 ms),
//! which must not run on a tokio worker. [`StoreWriter`] takes writes as
//! [`PeerStoreOp`] values into a bounded queue and returns at once; one dedicated
//! thread (`weft-peerstore-writer`) takes whatever has queued up and applies it with
//! [`PeerStore::apply_batch`], one write transaction per batch on redb. The busier the
//! host, the larger the batches: N writes arriving while a commit runs cost one more
//! commit, not N.
//!
//! Reads go to the store directly (they do not wait for a disk flush). A read that
//! must see a write made just before awaits [`StoreWriter::flush_peer`] (or the
//! [`Ticket`] of that write) first: an async wait for the writer thread, which never
//! blocks a worker.
//!
//! The queue holds at most [`StoreWriter::DEFAULT_CAPACITY`] writes. When it is full,
//! a new write first replaces a queued one it supersedes (the same peer's protocol
//! list, the same metadata key, the same key), else the oldest latency sample goes,
//! else the oldest update that is not a removal or a disconnect, else the oldest write;
//! each is counted in [`StoreWriterStats`] and logged at `debug`. The peerstore is a
//! cache of what we learned, and the next identify refills it. A caller never waits and
//! the queue never grows past its bound.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use libp2p_identity::PeerId;
use tokio::sync::watch;
use tracing::debug;
use weft_peerstore::{PeerStore, PeerStoreOp};

/// Identifies one submitted write: [`StoreWriter::wait`] returns once it is applied
/// (or was dropped from a full queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

/// Counters of a [`StoreWriter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StoreWriterStats {
    /// Writes waiting in the queue now.
    pub queued: usize,
    /// Writes applied to the store (each one's result logged if it failed).
    pub applied: u64,
    /// Batches applied: calls to [`PeerStore::apply_batch`].
    pub batches: u64,
    /// Queued writes replaced by a later write that supersedes them (queue full).
    pub coalesced: u64,
    /// Queued writes dropped to make room (queue full).
    pub dropped: u64,
}

/// The host's peerstore writes, applied in batches on a thread of their own.
///
/// Cheap to clone; all clones feed the same thread. When the last clone is dropped the
/// thread applies what is still queued and ends. Build it inside or outside a tokio
/// runtime; its waits ([`StoreWriter::wait`], [`StoreWriter::flush`]) need no
/// particular runtime.
///
/// ```
/// # async fn demo() -> std::io::Result<()> {
/// use std::sync::Arc;
/// use weft_host::store_writer::StoreWriter;
/// use weft_peerstore::{MemoryPeerStore, PeerStore, PeerStoreOp};
///
/// let writer = StoreWriter::new(Arc::new(MemoryPeerStore::new()))?;
/// let peer = libp2p_identity::PeerId::random();
/// writer.submit(PeerStoreOp::AddProtocols { peer, protocols: vec!["/echo/1.0.0".into()] });
/// writer.flush_peer(&peer).await; // reads of `peer` now see the write
/// assert_eq!(writer.store().protocols(&peer).unwrap(), vec!["/echo/1.0.0".to_string()]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct StoreWriter {
    handle: Arc<Handle>,
}

impl fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreWriter")
            .field("store", &self.handle.shared.store)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Held by the clones; dropping the last one tells the thread to finish and waits
/// until it has applied what was queued and let go of the store, so that a store
/// reopened right after the host is gone (a redb file is locked while open) is free.
/// The host flushes the writer on shutdown, so the wait is for at most one batch.
struct Handle {
    shared: Arc<Shared>,
    applied: watch::Receiver<u64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                debug!("the peerstore writer thread panicked");
            }
        }
    }
}

struct Shared {
    store: Arc<dyn PeerStore>,
    queue: Mutex<Queue>,
    wake: Condvar,
    capacity: usize,
    applied: AtomicU64,
    batches: AtomicU64,
    coalesced: AtomicU64,
    dropped: AtomicU64,
}

struct Queue {
    ops: VecDeque<(u64, PeerStoreOp)>,
    /// The sequence number of the next write (the first is 1).
    next_seq: u64,
    /// The last write of each peer not yet applied.
    last_by_peer: HashMap<PeerId, u64>,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue holds no invariant a panicking thread could break half-way.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `new` makes `old` (an earlier write of the same peer) pointless.
fn supersedes(new: &PeerStoreOp, old: &PeerStoreOp) -> bool {
    if new.peer() != old.peer() {
        return false;
    }
    match (new, old) {
        (PeerStoreOp::SetProtocols { .. }, PeerStoreOp::SetProtocols { .. }) => true,
        (PeerStoreOp::PutMetadata { key: a, .. }, PeerStoreOp::PutMetadata { key: b, .. }) => {
            a == b
        }
        (PeerStoreOp::AddPubkey { key: a, .. }, PeerStoreOp::AddPubkey { key: b, .. }) => a == b,
        _ => false,
    }
}

/// Removals and disconnects: dropping one would leave wrong data behind, not just miss
/// an update.
fn is_essential(op: &PeerStoreOp) -> bool {
    matches!(
        op,
        PeerStoreOp::RemovePeer { .. }
            | PeerStoreOp::ClearAddrs { .. }
            | PeerStoreOp::RemoveAddrs { .. }
            | PeerStoreOp::RemoveProtocols { .. }
            | PeerStoreOp::RemoveMetadata { .. }
            | PeerStoreOp::Disconnected { .. }
    )
}

/// Frees one slot of a full queue for `new`; returns whether the freed write was
/// superseded (coalesced) rather than dropped.
fn make_room(ops: &mut VecDeque<(u64, PeerStoreOp)>, new: &PeerStoreOp) -> bool {
    if let Some(i) = ops.iter().position(|(_, old)| supersedes(new, old)) {
        if let Some((_, old)) = ops.remove(i) {
            debug!(peer = %old.peer(), "peerstore writer full: a queued write was superseded");
        }
        return true;
    }
    let victim = ops
        .iter()
        .position(|(_, op)| matches!(op, PeerStoreOp::RecordLatency { .. }))
        .or_else(|| ops.iter().position(|(_, op)| !is_essential(op)))
        .unwrap_or(0);
    if let Some((_, old)) = ops.remove(victim) {
        debug!(peer = %old.peer(), op = ?old, "peerstore writer full: dropped the oldest write of its kind");
    }
    false
}

impl StoreWriter {
    /// The default bound of the queue, in writes. A write is small (a peer id and a few
    /// addresses or protocol ids, well under 4 KiB within the peerstore's own limits),
    /// so a full queue stays within a few MiB.
    pub const DEFAULT_CAPACITY: usize = 4096;
    /// The most writes applied in one batch (one transaction).
    pub const MAX_BATCH: usize = 512;

    /// A writer for `store` with [`StoreWriter::DEFAULT_CAPACITY`]; starts its thread.
    pub fn new(store: Arc<dyn PeerStore>) -> std::io::Result<Self> {
        Self::with_capacity(store, Self::DEFAULT_CAPACITY)
    }

    /// A writer whose queue holds at most `capacity` writes (at least 1).
    pub fn with_capacity(store: Arc<dyn PeerStore>, capacity: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            store,
            queue: Mutex::new(Queue {
                ops: VecDeque::new(),
                next_seq: 1,
                last_by_peer: HashMap::new(),
                closed: false,
            }),
            wake: Condvar::new(),
            capacity: capacity.max(1),
            applied: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let (applied_tx, applied) = watch::channel(0);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("weft-peerstore-writer".into())
            .spawn(move || run(&thread_shared, &applied_tx))?;
        Ok(StoreWriter {
            handle: Arc::new(Handle {
                shared,
                applied,
                thread: Some(thread),
            }),
        })
    }

    /// The store written to; read from it directly (after [`StoreWriter::flush_peer`]
    /// when a read must see a write just submitted).
    pub fn store(&self) -> &Arc<dyn PeerStore> {
        &self.handle.shared.store
    }

    /// Queues a write and returns at once; never waits for the disk or the thread.
    pub fn submit(&self, op: PeerStoreOp) -> Ticket {
        let shared = &self.handle.shared;
        let seq = {
            let mut queue = shared.lock();
            let seq = queue.next_seq;
            queue.next_seq += 1;
            if queue.ops.len() >= shared.capacity {
                let counter = if make_room(&mut queue.ops, &op) {
                    &shared.coalesced
                } else {
                    &shared.dropped
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            queue.last_by_peer.insert(*op.peer(), seq);
            queue.ops.push_back((seq, op));
            seq
        };
        shared.wake.notify_one();
        Ticket(seq)
    }

    /// Waits (asynchronously) until the write of `ticket` and every earlier one are
    /// applied or dropped.
    pub async fn wait(&self, ticket: Ticket) {
        let mut applied = self.handle.applied.clone();
        // An error means the thread is gone (a backend panicked): nothing to wait for.
        let _ = applied.wait_for(|done| *done >= ticket.0).await;
    }

    /// Waits until every write about `peer` submitted so far is applied: afterwards
    /// reads of `peer` see them. Returns at once when none is pending.
    pub async fn flush_peer(&self, peer: &PeerId) {
        let pending = self.handle.shared.lock().last_by_peer.get(peer).copied();
        if let Some(seq) = pending {
            self.wait(Ticket(seq)).await;
        }
    }

    /// Waits until every write submitted so far is applied (for example before a
    /// process exits).
    pub async fn flush(&self) {
        let last = self.handle.shared.lock().next_seq - 1;
        self.wait(Ticket(last)).await;
    }

    /// The writer's counters.
    pub fn stats(&self) -> StoreWriterStats {
        let shared = &self.handle.shared;
        StoreWriterStats {
            queued: shared.lock().ops.len(),
            applied: shared.applied.load(Ordering::Relaxed),
            batches: shared.batches.load(Ordering::Relaxed),
            coalesced: shared.coalesced.load(Ordering::Relaxed),
            dropped: shared.dropped.load(Ordering::Relaxed),
        }
    }
}

/// The writer thread: takes what has queued up, applies it as one batch, repeats;
/// ends once every handle is gone and the queue is empty.
fn run(shared: &Shared, applied_tx: &watch::Sender<u64>) {
    loop {
        let batch: Vec<(u64, PeerStoreOp)> = {
            let mut queue = shared.lock();
            while queue.ops.is_empty() && !queue.closed {
                queue = shared
                    .wake
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if queue.ops.is_empty() {
                return;
            }
            let n = queue.ops.len().min(StoreWriter::MAX_BATCH);
            queue.ops.drain(..n).collect()
        };
        let Some(&(upto, _)) = batch.last() else {
            continue;
        };
        let ops: Vec<PeerStoreOp> = batch.into_iter().map(|(_, op)| op).collect();
        match shared.store.apply_batch(&ops) {
            Ok(results) => {
                for (op, result) in ops.iter().zip(results) {
                    if let Err(e) = result {
                        debug!(peer = %op.peer(), error = %e, ?op, "peerstore write failed");
                    }
                }
            }
            Err(e) => debug!(error = %e, writes = ops.len(), "peerstore batch failed"),
        }
        shared
            .applied
            .fetch_add(ops.len() as u64, Ordering::Relaxed);
        shared.batches.fetch_add(1, Ordering::Relaxed);
        shared.lock().last_by_peer.retain(|_, seq| *seq > upto);
        applied_tx.send_replace(upto);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;
    use weft_peerstore::{MemoryPeerStore, RedbPeerStore, CONNECTED_ADDR_TTL};

    const WAIT: Duration = Duration::from_secs(30);

    fn addr(i: u32) -> multiaddr::Multiaddr {
        format!("/ip4/10.0.{}.{}/tcp/4001", i / 256 % 256, i % 256)
            .parse()
            .unwrap()
    }

    fn add(peer: PeerId, i: u32) -> PeerStoreOp {
        PeerStoreOp::AddAddrs {
            peer,
            addrs: vec![addr(i)],
            ttl: CONNECTED_ADDR_TTL,
        }
    }

    fn redb() -> (tempfile::TempDir, Arc<RedbPeerStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbPeerStore::open(dir.path().join("peers.redb")).unwrap());
        (dir, store)
    }

    /// A store that holds each batch until the test lets it through: a disk as slow as
    /// the test wants, in front of a real one.
    #[derive(Debug)]
    struct Gate {
        inner: Arc<dyn PeerStore>,
        entered: Mutex<mpsc::Sender<usize>>,
        open: Mutex<mpsc::Receiver<()>>,
    }

    fn gate(inner: Arc<dyn PeerStore>) -> (Arc<Gate>, mpsc::Receiver<usize>, mpsc::Sender<()>) {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (open_tx, open_rx) = mpsc::channel();
        let gate = Arc::new(Gate {
            inner,
            entered: Mutex::new(entered_tx),
            open: Mutex::new(open_rx),
        });
        (gate, entered_rx, open_tx)
    }

    impl Gate {
        fn pass(&self, ops: usize) {
            let _ = self.entered.lock().unwrap().send(ops);
            let _ = self.open.lock().unwrap().recv_timeout(WAIT);
        }
    }

    /// Forwards everything to the inner store; batches wait at the gate.
    macro_rules! forward {
        ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
            $(fn $name(&self, $($arg: $ty),*) -> $ret { self.inner.$name($($arg),*) })*
        };
    }

    impl PeerStore for Gate {
        forward! {
            add_addrs(p: &PeerId, a: &[multiaddr::Multiaddr], t: Duration) -> weft_peerstore::Result<()>;
            set_addrs(p: &PeerId, a: &[multiaddr::Multiaddr], t: Duration) -> weft_peerstore::Result<()>;
            update_addrs(p: &PeerId, o: Duration, n: Duration) -> weft_peerstore::Result<()>;
            remove_addrs(p: &PeerId, a: &[multiaddr::Multiaddr]) -> weft_peerstore::Result<()>;
            clear_addrs(p: &PeerId) -> weft_peerstore::Result<()>;
            addrs(p: &PeerId) -> weft_peerstore::Result<Vec<multiaddr::Multiaddr>>;
            gc() -> weft_peerstore::Result<usize>;
            add_pubkey(p: &PeerId, k: &libp2p_identity::PublicKey) -> weft_peerstore::Result<()>;
            pubkey(p: &PeerId) -> weft_peerstore::Result<Option<libp2p_identity::PublicKey>>;
            set_protocols(p: &PeerId, x: &[&str]) -> weft_peerstore::Result<()>;
            add_protocols(p: &PeerId, x: &[&str]) -> weft_peerstore::Result<()>;
            remove_protocols(p: &PeerId, x: &[&str]) -> weft_peerstore::Result<()>;
            protocols(p: &PeerId) -> weft_peerstore::Result<Vec<String>>;
            supports_protocols(p: &PeerId, x: &[&str]) -> weft_peerstore::Result<Vec<String>>;
            first_supported_protocol(p: &PeerId, x: &[&str]) -> weft_peerstore::Result<Option<String>>;
            put_metadata(p: &PeerId, k: &str, v: &[u8]) -> weft_peerstore::Result<()>;
            metadata(p: &PeerId, k: &str) -> weft_peerstore::Result<Option<Vec<u8>>>;
            remove_metadata(p: &PeerId, k: &str) -> weft_peerstore::Result<()>;
            record_latency(p: &PeerId, r: Duration) -> weft_peerstore::Result<()>;
            latency(p: &PeerId) -> weft_peerstore::Result<Option<Duration>>;
            peers() -> weft_peerstore::Result<Vec<PeerId>>;
            peer_count() -> weft_peerstore::Result<usize>;
            remove_peer(p: &PeerId) -> weft_peerstore::Result<()>;
            subscribe() -> tokio::sync::broadcast::Receiver<weft_peerstore::PeerStoreEvent>;
        }

        fn apply_batch(
            &self,
            ops: &[PeerStoreOp],
        ) -> weft_peerstore::Result<Vec<weft_peerstore::Result<()>>> {
            self.pass(ops.len());
            self.inner.apply_batch(ops)
        }
    }

    #[tokio::test]
    async fn writes_to_a_redb_file_are_batched_into_fewer_transactions() {
        let (_dir, store) = redb();
        let (gate, entered, open) = gate(store.clone());
        let writer = StoreWriter::new(gate).unwrap();
        let peers: Vec<PeerId> = (0..200).map(|_| PeerId::random()).collect();
        // The first write starts a batch, which the gate holds like a slow disk ...
        writer.submit(add(peers[0], 0));
        assert_eq!(entered.recv_timeout(WAIT).unwrap(), 1);
        // ... while the other 199 arrive; they go in the next batch, one transaction.
        for (i, peer) in peers.iter().enumerate().skip(1) {
            writer.submit(add(*peer, i as u32));
        }
        open.send(()).unwrap();
        assert_eq!(entered.recv_timeout(WAIT).unwrap(), 199);
        open.send(()).unwrap();
        tokio::time::timeout(WAIT, writer.flush()).await.unwrap();
        assert_eq!(store.write_transactions(), 2, "200 writes, 2 commits");
        assert_eq!(store.peer_count().unwrap(), 200);
        let stats = writer.stats();
        assert_eq!((stats.applied, stats.batches, stats.dropped), (200, 2, 0));
    }

    #[tokio::test]
    async fn the_caller_never_waits_on_the_disk_and_the_queue_stays_bounded() {
        let (_dir, store) = redb();
        let (gate, entered, open) = gate(store.clone());
        let writer = StoreWriter::with_capacity(gate, 64).unwrap();
        let peer = PeerId::random();
        writer.submit(add(peer, 0));
        // The thread is stuck in a "disk write" until we open the gate; every submit
        // below returns regardless (were it to wait, this test would hang here).
        assert_eq!(entered.recv_timeout(WAIT).unwrap(), 1);
        for i in 1..1000u64 {
            writer.submit(PeerStoreOp::RecordLatency {
                peer,
                rtt: Duration::from_millis(i),
            });
        }
        writer.submit(PeerStoreOp::RemovePeer { peer });
        let stats = writer.stats();
        assert_eq!(stats.queued, 64);
        assert_eq!(stats.dropped, 1000 - 64);
        open.send(()).unwrap();
        assert_eq!(entered.recv_timeout(WAIT).unwrap(), 64);
        open.send(()).unwrap();
        tokio::time::timeout(WAIT, writer.flush()).await.unwrap();
        // The removal, essential, survived the drops of latency samples.
        assert!(!store.peers().unwrap().contains(&peer));
        assert_eq!(store.write_transactions(), 2);
    }

    #[test]
    fn a_full_queue_coalesces_a_superseded_write_before_dropping_anything() {
        let store: Arc<dyn PeerStore> = Arc::new(MemoryPeerStore::new());
        let (gate, entered, open) = gate(store.clone());
        let writer = StoreWriter::with_capacity(gate, 3).unwrap();
        let peer = PeerId::random();
        writer.submit(add(peer, 0));
        assert_eq!(entered.recv_timeout(WAIT).unwrap(), 1);
        let protocols = |p: &str| PeerStoreOp::SetProtocols {
            peer,
            protocols: vec![p.to_string()],
        };
        writer.submit(protocols("/old"));
        writer.submit(PeerStoreOp::Disconnected { peer });
        writer.submit(add(peer, 1));
        // Full: the new protocol list replaces the queued one.
        writer.submit(protocols("/new"));
        let stats = writer.stats();
        assert_eq!((stats.queued, stats.coalesced, stats.dropped), (3, 1, 0));
        // Full again, nothing superseded: the oldest non-essential update (the address)
        // goes, never the disconnect.
        writer.submit(PeerStoreOp::RecordLatency {
            peer,
            rtt: Duration::from_millis(5),
        });
        assert_eq!(writer.stats().dropped, 1);
        open.send(()).unwrap();
        assert_eq!(entered.recv_timeout(WAIT).unwrap(), 3);
        open.send(()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async { tokio::time::timeout(WAIT, writer.flush()).await.unwrap() });
        assert_eq!(store.protocols(&peer).unwrap(), vec!["/new".to_string()]);
        assert_eq!(store.addrs(&peer).unwrap(), vec![addr(0)]);
        assert!(store.latency(&peer).unwrap().is_some());
    }

    #[tokio::test]
    async fn flush_peer_makes_reads_see_the_writes_of_that_peer() {
        let (_dir, store) = redb();
        let writer = StoreWriter::new(store.clone()).unwrap();
        let peer = PeerId::random();
        let idle = PeerId::random();
        for i in 0..50 {
            writer.submit(add(peer, i));
        }
        tokio::time::timeout(WAIT, writer.flush_peer(&peer))
            .await
            .unwrap();
        assert_eq!(store.addrs(&peer).unwrap().len(), 50);
        // Nothing pending for a peer: returns at once.
        tokio::time::timeout(WAIT, writer.flush_peer(&idle))
            .await
            .unwrap();
        assert!(store.write_transactions() <= 50);
    }

    #[tokio::test]
    async fn dropping_the_last_handle_applies_what_is_queued() {
        let (dir, store) = redb();
        let path = store.path().to_path_buf();
        let peer = PeerId::random();
        {
            let writer = StoreWriter::new(store.clone()).unwrap();
            for i in 0..20 {
                writer.submit(add(peer, i));
            }
        }
        drop(store);
        // The thread holds the last reference to the store until it is done: opening
        // the file again succeeds once it has let go.
        let reopened = tokio::time::timeout(WAIT, async {
            loop {
                match RedbPeerStore::open(&path) {
                    Ok(s) => break s,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(reopened.addrs(&peer).unwrap().len(), 20);
        drop(dir);
    }
}
