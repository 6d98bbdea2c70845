//! The persistent backend across reopens and against hostile files: committed data comes
//! back, expired addresses do not, and damaged, foreign or newer-format files give clear
//! errors and are left byte-for-byte untouched.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libp2p_identity::{Keypair, PeerId};
use multiaddr::Multiaddr;
use weft_peerstore::*;

fn addr(i: u32) -> Multiaddr {
    format!("/ip4/192.168.0.{i}/tcp/4001").parse().unwrap()
}

fn options(clock: &ManualClock) -> RedbOptions {
    RedbOptions {
        clock: Arc::new(clock.clone()),
        ..RedbOptions::default()
    }
}

/// Deterministic pseudo-random bytes (xorshift), enough to look like garbage.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

fn write_sample_store(path: &Path) -> PeerId {
    let store = RedbPeerStore::open(path).unwrap();
    let peer = PeerId::random();
    store
        .add_addrs(&peer, &[addr(1)], PERMANENT_ADDR_TTL)
        .unwrap();
    store.set_protocols(&peer, &["/ipfs/ping/1.0.0"]).unwrap();
    peer
}

fn assert_refused_untouched(path: &Path, check: impl Fn(&PeerStoreError) -> bool) {
    let before = std::fs::read(path).unwrap();
    let err = RedbPeerStore::open(path).unwrap_err();
    assert!(check(&err), "unexpected error: {err:?}");
    assert!(!err.to_string().is_empty());
    // (Not assert_eq: printing a whole file on failure helps nobody.)
    assert!(
        std::fs::read(path).unwrap() == before,
        "the file was modified"
    );
}

#[test]
fn reopen_keeps_committed_data_and_drops_expired_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.redb");
    let clock = ManualClock::starting_now();
    let key = Keypair::generate_ecdsa().public();
    let peer = key.to_peer_id();
    {
        let store = RedbPeerStore::open_with(&path, options(&clock)).unwrap();
        store.add_addrs(&peer, &[addr(1)], TEMP_ADDR_TTL).unwrap();
        store
            .add_addrs(&peer, &[addr(2)], DEFAULT_ADDR_TTL)
            .unwrap();
        store
            .add_addrs(&peer, &[addr(3)], CONNECTED_ADDR_TTL)
            .unwrap();
        store.add_pubkey(&peer, &key).unwrap();
        store.set_protocols(&peer, &["/a", "/b"]).unwrap();
        store.set_agent_version(&peer, "go-libp2p/0.40").unwrap();
        store.put_metadata(&peer, "raw", &[1, 2, 3]).unwrap();
        store
            .record_latency(&peer, Duration::from_millis(30))
            .unwrap();
        store.flush().unwrap();
        let temp_only = PeerId::random();
        store
            .add_addrs(&temp_only, &[addr(9)], TEMP_ADDR_TTL)
            .unwrap();
    }
    {
        let store = RedbPeerStore::open_with(&path, options(&clock)).unwrap();
        assert_eq!(store.addrs(&peer).unwrap(), vec![addr(1), addr(2), addr(3)]);
        assert_eq!(store.pubkey(&peer).unwrap(), Some(key.clone()));
        assert_eq!(store.protocols(&peer).unwrap(), vec!["/a", "/b"]);
        assert_eq!(
            store.agent_version(&peer).unwrap().as_deref(),
            Some("go-libp2p/0.40")
        );
        assert_eq!(store.metadata(&peer, "raw").unwrap(), Some(vec![1, 2, 3]));
        assert_eq!(
            store.latency(&peer).unwrap(),
            Some(Duration::from_millis(30))
        );
        assert_eq!(store.peer_count().unwrap(), 2);
    }
    // Time passes while the store is closed: the stored UNIX expiry decides.
    clock.advance(TEMP_ADDR_TTL);
    let store = RedbPeerStore::open_with(&path, options(&clock)).unwrap();
    assert_eq!(store.addrs(&peer).unwrap(), vec![addr(2), addr(3)]);
    // The peer that only had a temp address was deleted when the store opened.
    assert_eq!(store.peers().unwrap(), vec![peer]);
    drop(store);
    clock.advance(DEFAULT_ADDR_TTL);
    let store = RedbPeerStore::open_with(&path, options(&clock)).unwrap();
    assert_eq!(store.addrs(&peer).unwrap(), vec![addr(3)]);
}

#[test]
fn ttls_run_in_real_time_while_the_store_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.redb");
    let peer = PeerId::random();
    {
        let store = RedbPeerStore::open(&path).unwrap();
        store
            .add_addrs(&peer, &[addr(1)], Duration::from_millis(300))
            .unwrap();
        store
            .add_addrs(&peer, &[addr(2)], DEFAULT_ADDR_TTL)
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(400));
    let store = RedbPeerStore::open(&path).unwrap();
    assert_eq!(store.addrs(&peer).unwrap(), vec![addr(2)]);
}

#[test]
fn a_second_handle_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.redb");
    let _store = RedbPeerStore::open(&path).unwrap();
    assert!(matches!(
        RedbPeerStore::open(&path),
        Err(PeerStoreError::AlreadyOpen)
    ));
}

#[test]
fn random_bytes_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    for (i, len) in [1usize, 100, 4096, 64 * 1024].into_iter().enumerate() {
        let path = dir.path().join(format!("garbage-{i}.redb"));
        std::fs::write(&path, garbage(len, 0x9e37_79b9_7f4a_7c15 + i as u64)).unwrap();
        assert_refused_untouched(&path, |e| matches!(e, PeerStoreError::Corrupt(_)));
    }
}

#[test]
fn truncated_files_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.redb");
    write_sample_store(&original);
    let bytes = std::fs::read(&original).unwrap();
    for (i, keep) in [16, 512, 4096, bytes.len() / 2, bytes.len() - 1]
        .into_iter()
        .enumerate()
    {
        let path = dir.path().join(format!("truncated-{i}.redb"));
        std::fs::write(&path, &bytes[..keep]).unwrap();
        assert_refused_untouched(&path, |e| {
            matches!(e, PeerStoreError::Corrupt(_) | PeerStoreError::Storage(_))
        });
    }
}

#[test]
fn a_future_format_version_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.redb");
    write_sample_store(&path);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<'_, &str, u64> =
                redb::TableDefinition::new("weft_peerstore_meta");
            let mut table = txn.open_table(meta).unwrap();
            table.insert("format_version", FORMAT_VERSION + 1).unwrap();
        }
        txn.commit().unwrap();
    }
    assert_refused_untouched(&path, |e| {
        matches!(
            e,
            PeerStoreError::UnsupportedFormat { found, supported }
                if *found == FORMAT_VERSION + 1 && *supported == FORMAT_VERSION
        )
    });
}

#[test]
fn a_foreign_redb_file_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let other: redb::TableDefinition<'_, u64, u64> = redb::TableDefinition::new("other");
            txn.open_table(other).unwrap().insert(1, 2).unwrap();
        }
        txn.commit().unwrap();
    }
    assert_refused_untouched(&path, |e| matches!(e, PeerStoreError::Corrupt(_)));
}

#[test]
fn a_corrupt_record_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad-record.redb");
    let good = write_sample_store(&path);
    let victim = PeerId::random();
    let damaged: &[u8] = &[0x0a, 0x05, 1, 2, 3]; // a field promising 5 bytes, then 3
    let peers: redb::TableDefinition<'_, &[u8], &[u8]> = redb::TableDefinition::new("weft_peers");
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(peers)
            .unwrap()
            .insert(victim.to_bytes().as_slice(), damaged)
            .unwrap();
        txn.commit().unwrap();
    }
    {
        // One damaged record does not make the store unusable...
        let store = RedbPeerStore::open(&path).unwrap();
        assert_eq!(store.addrs(&good).unwrap(), vec![addr(1)]);
        assert_eq!(store.gc().unwrap(), 0);
        // ...reading or writing it is a clear error, and it is left as it was...
        assert!(matches!(
            store.addrs(&victim),
            Err(PeerStoreError::Corrupt(_))
        ));
        assert!(matches!(
            store.add_protocols(&victim, &["/x"]),
            Err(PeerStoreError::Corrupt(_))
        ));
    }
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
        let table = txn.open_table(peers).unwrap();
        let stored = table.get(victim.to_bytes().as_slice()).unwrap().unwrap();
        assert_eq!(stored.value(), damaged);
    }
    // ...until it is removed on purpose.
    let store = RedbPeerStore::open(&path).unwrap();
    store.remove_peer(&victim).unwrap();
    store.add_protocols(&victim, &["/x"]).unwrap();
    assert_eq!(store.protocols(&victim).unwrap(), vec!["/x"]);
}

#[test]
fn a_batch_is_one_write_transaction_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.redb");
    let peers: Vec<PeerId> = (0..100).map(|_| PeerId::random()).collect();
    {
        let store = RedbPeerStore::open(&path).unwrap();
        let before = store.write_transactions();
        let ops: Vec<PeerStoreOp> = peers
            .iter()
            .enumerate()
            .map(|(i, peer)| PeerStoreOp::AddAddrs {
                peer: *peer,
                addrs: vec![addr(i as u32 % 250)],
                ttl: PERMANENT_ADDR_TTL,
            })
            .collect();
        let results = store.apply_batch(&ops).unwrap();
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(store.write_transactions() - before, 1);
        // The same writes one by one: one transaction each.
        let before = store.write_transactions();
        for op in &ops[..10] {
            store.remove_peer(op.peer()).unwrap();
        }
        assert_eq!(store.write_transactions() - before, 10);
        // An empty batch commits nothing.
        let before = store.write_transactions();
        assert!(store.apply_batch(&[]).unwrap().is_empty());
        assert_eq!(store.write_transactions(), before);
    }
    let store = RedbPeerStore::open(&path).unwrap();
    assert_eq!(store.peer_count().unwrap(), 90);
    assert_eq!(store.addrs(&peers[99]).unwrap(), vec![addr(99)]);
}

#[test]
fn a_failed_op_in_a_batch_changes_nothing_and_the_rest_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.redb");
    let key = Keypair::generate_ed25519().public();
    let other = PeerId::random();
    {
        let store = RedbPeerStore::open(&path).unwrap();
        let ops = [
            PeerStoreOp::AddPubkey {
                peer: other,
                key: key.clone(),
            },
            PeerStoreOp::AddAddrs {
                peer: other,
                addrs: vec![addr(3)],
                ttl: PERMANENT_ADDR_TTL,
            },
        ];
        let results = store.apply_batch(&ops).unwrap();
        assert!(matches!(
            results[0],
            Err(PeerStoreError::KeyMismatch { .. })
        ));
        assert!(results[1].is_ok());
    }
    let store = RedbPeerStore::open(&path).unwrap();
    assert_eq!(store.pubkey(&other).unwrap(), None);
    assert_eq!(store.addrs(&other).unwrap(), vec![addr(3)]);
}
