//! Bytes per peer at 100,000 peers with 8 addresses and 16 protocols each: heap bytes of
//! the memory backend (counted by a counting global allocator) and file bytes of the redb
//! backend. Run with `cargo bench -p weft-peerstore --bench footprint`.
//! (rust-libp2p has no peer store to compare with.)

mod common;

use std::alloc::System;
use std::sync::Arc;
use std::time::Instant;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use weft_peerstore::{Limits, ManualClock, MemoryPeerStore, PeerStore, RedbOptions, RedbPeerStore};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    let limits = Limits {
        max_peers: common::PEERS,
        ..Limits::default()
    };
    let clock = ManualClock::starting_now();

    let region = Region::new(GLOBAL);
    let memory = MemoryPeerStore::with_config(limits.clone(), Arc::new(clock.clone()));
    let started = Instant::now();
    let peers = common::populate(&memory, common::PEERS);
    let elapsed = started.elapsed();
    let stats = region.change();
    let held = stats.bytes_allocated as i64
        - stats.bytes_deallocated as i64
        - (peers.capacity() * std::mem::size_of::<libp2p_identity::PeerId>()) as i64;
    println!(
        "memory backend: {} peers x (8 addrs, 16 protocols): {:.0} heap bytes/peer, \
         populated in {:.2?} ({:.0} peers/s)",
        common::PEERS,
        held as f64 / common::PEERS as f64,
        elapsed,
        common::PEERS as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(memory.peer_count().unwrap(), common::PEERS);
    drop(memory);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("footprint.redb");
    let redb = RedbPeerStore::open_with(
        &path,
        RedbOptions {
            limits,
            clock: Arc::new(clock),
            durable_writes: false,
            ..RedbOptions::default()
        },
    )
    .unwrap();
    let started = Instant::now();
    common::populate(&redb, common::PEERS);
    redb.flush().unwrap();
    let elapsed = started.elapsed();
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "redb backend:   {} peers x (8 addrs, 16 protocols): {:.0} file bytes/peer \
         ({:.1} MiB), populated (non-durable writes + one flush) in {:.2?} ({:.0} peers/s)",
        common::PEERS,
        size as f64 / common::PEERS as f64,
        size as f64 / (1024.0 * 1024.0),
        elapsed,
        common::PEERS as f64 / elapsed.as_secs_f64()
    );
}
