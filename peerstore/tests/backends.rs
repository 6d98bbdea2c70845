//! Runs the behavioural suite (`tests/suite`) against both backends: the same calls must
//! give the same results from `MemoryPeerStore` and `RedbPeerStore`.

mod suite;

use std::sync::Arc;

use suite::{start_clock, Harness};
use weft_peerstore::{Limits, MemoryPeerStore, RedbOptions, RedbPeerStore};

fn memory(limits: Limits) -> Harness {
    let clock = start_clock();
    Harness {
        store: Arc::new(MemoryPeerStore::with_config(
            limits,
            Arc::new(clock.clone()),
        )),
        clock,
        _keep: None,
    }
}

fn redb(limits: Limits) -> Harness {
    let clock = start_clock();
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        limits,
        clock: Arc::new(clock.clone()),
        ..RedbOptions::default()
    };
    let store = RedbPeerStore::open_with(dir.path().join("peers.redb"), options).unwrap();
    Harness {
        store: Arc::new(store),
        clock,
        _keep: Some(dir),
    }
}

backend_suite!(memory_backend, super::memory, 60);
backend_suite!(redb_backend, super::redb, 10);
