//! Operations per second of both backends on a store of 100,000 peers with 8 addresses
//! and 16 protocols each: add addresses, get addresses, supports-protocol.
//! Run with `cargo bench -p weft-peerstore --bench peerstore_ops`.
//! (rust-libp2p has no peer store to compare with.)

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use weft_peerstore::{
    Limits, ManualClock, MemoryPeerStore, PeerStore, RedbOptions, RedbPeerStore, DEFAULT_ADDR_TTL,
};

fn bench_store(
    c: &mut Criterion,
    name: &str,
    store: &dyn PeerStore,
    peers: &[libp2p_identity::PeerId],
) {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let mut i = 0usize;
    group.bench_function("add_addrs (8 known addrs, refresh)", |b| {
        b.iter(|| {
            i = (i + 7919) % peers.len();
            store
                .add_addrs(&peers[i], &common::addrs(i), DEFAULT_ADDR_TTL)
                .unwrap();
        })
    });
    let mut i = 0usize;
    group.bench_function("addrs (get 8)", |b| {
        b.iter(|| {
            i = (i + 7919) % peers.len();
            black_box(store.addrs(&peers[i]).unwrap());
        })
    });
    let mut i = 0usize;
    group.bench_function("supports_protocols (2 of 16)", |b| {
        b.iter(|| {
            i = (i + 7919) % peers.len();
            black_box(
                store
                    .supports_protocols(
                        &peers[i],
                        &["/meshsub/1.1.0", "/unknown/1.0.0", "/ipfs/kad/1.0.0"],
                    )
                    .unwrap(),
            );
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let limits = Limits {
        max_peers: common::PEERS,
        ..Limits::default()
    };
    let clock = ManualClock::starting_now();

    let memory = MemoryPeerStore::with_config(limits.clone(), Arc::new(clock.clone()));
    let peers = common::populate(&memory, common::PEERS);
    bench_store(c, "memory", &memory, &peers);
    drop(memory);

    let dir = tempfile::tempdir().unwrap();
    let fast = RedbOptions {
        limits,
        clock: Arc::new(clock),
        durable_writes: false,
        ..RedbOptions::default()
    };
    let path = dir.path().join("ops.redb");
    let peers = {
        let redb = RedbPeerStore::open_with(&path, fast.clone()).unwrap();
        let peers = common::populate(&redb, common::PEERS);
        redb.flush().unwrap();
        peers
    };
    let durable = RedbPeerStore::open_with(
        &path,
        RedbOptions {
            durable_writes: true,
            ..fast.clone()
        },
    )
    .unwrap();
    bench_store(c, "redb (durable writes)", &durable, &peers);
    drop(durable);
    let relaxed = RedbPeerStore::open_with(&path, fast).unwrap();
    bench_store(c, "redb (non-durable writes)", &relaxed, &peers);
}

criterion_group!(peerstore, benches);
criterion_main!(peerstore);
