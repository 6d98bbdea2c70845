//! Peerstore writes on a real redb file (durable, the default): direct calls, one
//! commit each, against the host's `StoreWriter`, which batches them on its own thread.
//! Reports the time a caller spends per write (what a tokio worker would be blocked
//! for), the time until all writes are on disk, and the number of commits.
//!
//! `cargo bench -p weft-host --bench store_writer -- [writes]` (default 1000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;
use weft_host::store_writer::StoreWriter;
use weft_peerstore::{PeerStore, PeerStoreOp, RedbPeerStore, CONNECTED_ADDR_TTL};

fn addr(i: usize) -> multiaddr::Multiaddr {
    format!("/ip4/10.1.{}.{}/tcp/4001", i / 256 % 256, i % 256)
        .parse()
        .expect("a valid address")
}

fn per_write(d: Duration, n: usize) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6 / n as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let peers: Vec<PeerId> = (0..n).map(|_| PeerId::random()).collect();

    let dir = tempfile::tempdir()?;
    let direct = RedbPeerStore::open(dir.path().join("direct.redb"))?;
    let started = Instant::now();
    for (i, peer) in peers.iter().enumerate() {
        direct.add_addrs(peer, &[addr(i)], CONNECTED_ADDR_TTL)?;
    }
    let direct_time = started.elapsed();
    println!(
        "direct:      {n} writes, {} commits, caller {} per write, all on disk after {:.3} s",
        direct.write_transactions(),
        per_write(direct_time, n),
        direct_time.as_secs_f64()
    );

    let store = Arc::new(RedbPeerStore::open(dir.path().join("writer.redb"))?);
    let writer = StoreWriter::new(store.clone())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let started = Instant::now();
    for (i, peer) in peers.iter().enumerate() {
        writer.submit(PeerStoreOp::AddAddrs {
            peer: *peer,
            addrs: vec![addr(i)],
            ttl: CONNECTED_ADDR_TTL,
        });
    }
    let submit_time = started.elapsed();
    runtime.block_on(writer.flush());
    let total = started.elapsed();
    let stats = writer.stats();
    println!(
        "StoreWriter: {n} writes, {} commits ({} batches, {} dropped), caller {} per write, all on disk after {:.3} s",
        store.write_transactions(),
        stats.batches,
        stats.dropped,
        per_write(submit_time, n),
        total.as_secs_f64()
    );
    assert_eq!(store.peer_count()?, n);
    Ok(())
}
