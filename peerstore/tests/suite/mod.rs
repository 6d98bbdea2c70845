//! The behavioural suite every `PeerStore` backend must pass: generic functions that take
//! a factory, instantiated per backend by `backend_suite!`.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use libp2p_identity::{Keypair, PeerId};
use multiaddr::Multiaddr;
use tokio::sync::broadcast::error::TryRecvError;
use weft_peerstore::*;

/// A store under test and whatever must live as long as it (a temporary directory).
pub struct Harness {
    pub store: Arc<dyn PeerStore>,
    pub clock: ManualClock,
    pub _keep: Option<tempfile::TempDir>,
}

/// Builds a fresh store with the given limits, on a manual clock.
pub type Factory = fn(Limits) -> Harness;

pub fn start_clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

pub fn addr(i: u32) -> Multiaddr {
    format!(
        "/ip4/10.0.{}.{}/tcp/{}",
        i / 256 % 256,
        i % 256,
        4000 + i % 1000
    )
    .parse()
    .unwrap()
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<PeerStoreEvent>) -> Vec<PeerStoreEvent> {
    let mut events = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) => events.push(e),
            Err(TryRecvError::Empty) => return events,
            Err(e) => panic!("unexpected receive error {e:?}"),
        }
    }
}

pub fn addresses_expire_with_their_ttl(factory: Factory) {
    let h = factory(Limits::default());
    let peer = PeerId::random();
    h.store.add_addrs(&peer, &[addr(1)], TEMP_ADDR_TTL).unwrap();
    h.store
        .add_addrs(&peer, &[addr(2)], DEFAULT_ADDR_TTL)
        .unwrap();
    h.store
        .add_addrs(&peer, &[addr(3)], PERMANENT_ADDR_TTL)
        .unwrap();
    h.store
        .add_addrs(&peer, &[addr(4)], CONNECTED_ADDR_TTL)
        .unwrap();
    assert_eq!(
        h.store.addrs(&peer).unwrap(),
        vec![addr(1), addr(2), addr(3), addr(4)]
    );

    h.clock.advance(TEMP_ADDR_TTL - Duration::from_millis(1));
    assert_eq!(h.store.addrs(&peer).unwrap().len(), 4);
    h.clock.advance(Duration::from_millis(1));
    assert_eq!(
        h.store.addrs(&peer).unwrap(),
        vec![addr(2), addr(3), addr(4)]
    );
    h.clock.advance(DEFAULT_ADDR_TTL);
    assert_eq!(h.store.addrs(&peer).unwrap(), vec![addr(3), addr(4)]);
    h.clock.advance(Duration::from_secs(10 * 365 * 24 * 3600));
    assert_eq!(h.store.addrs(&peer).unwrap(), vec![addr(3), addr(4)]);
    // A zero TTL adds nothing.
    h.store
        .add_addrs(&peer, &[addr(9)], Duration::ZERO)
        .unwrap();
    assert_eq!(h.store.addrs(&peer).unwrap().len(), 2);
}

pub fn add_keeps_the_longer_ttl_and_set_overrides(factory: Factory) {
    let h = factory(Limits::default());
    let peer = PeerId::random();
    h.store
        .add_addrs(&peer, &[addr(1)], DEFAULT_ADDR_TTL)
        .unwrap();
    // A shorter TTL does not shorten the stored one.
    h.store.add_addrs(&peer, &[addr(1)], TEMP_ADDR_TTL).unwrap();
    h.clock.advance(TEMP_ADDR_TTL + Duration::from_secs(1));
    assert_eq!(h.store.addrs(&peer).unwrap(), vec![addr(1)]);
    // Set overrides: now it is a temp address again, counted from now.
    h.store.set_addrs(&peer, &[addr(1)], TEMP_ADDR_TTL).unwrap();
    h.clock.advance(TEMP_ADDR_TTL);
    assert!(h.store.addrs(&peer).unwrap().is_empty());
    // Set with a zero TTL removes.
    h.store
        .set_addrs(&peer, &[addr(2), addr(3)], PERMANENT_ADDR_TTL)
        .unwrap();
    h.store
        .set_addrs(&peer, &[addr(2)], Duration::ZERO)
        .unwrap();
    assert_eq!(h.store.addrs(&peer).unwrap(), vec![addr(3)]);
    // Adding the same address twice in one call stores it once.
    h.store
        .add_addrs(&peer, &[addr(4), addr(4)], TEMP_ADDR_TTL)
        .unwrap();
    assert_eq!(h.store.addrs(&peer).unwrap(), vec![addr(3), addr(4)]);
}

pub fn disconnect_downgrades_connected_addresses(factory: Factory) {
    let h = factory(Limits::default());
    let peer = PeerId::random();
    h.store
        .add_addrs(&peer, &[addr(1)], CONNECTED_ADDR_TTL)
        .unwrap();
    h.store
        .add_addrs(&peer, &[addr(2)], PERMANENT_ADDR_TTL)
        .unwrap();
    h.store.add_addrs(&peer, &[addr(3)], TEMP_ADDR_TTL).unwrap();
    h.store.on_disconnected(&peer).unwrap();
    h.clock
        .advance(RECENTLY_CONNECTED_ADDR_TTL - Duration::from_secs(1));
    assert_eq!(h.store.addrs(&peer).unwrap(), vec![addr(1), addr(2)]);
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(h.store.addrs(&peer).unwrap(), vec![addr(2)]);
    // update_addrs with a zero new TTL removes the matching addresses only.
    h.store
        .add_addrs(&peer, &[addr(5)], OWN_OBSERVED_ADDR_TTL)
        .unwrap();
    h.store
        .update_addrs(&peer, OWN_OBSERVED_ADDR_TTL, Duration::ZERO)
        .unwrap();
    assert_eq!(h.store.addrs(&peer).unwrap(), vec![addr(2)]);
    // On an unknown peer it is a no-op, not an error.
    h.store.on_disconnected(&PeerId::random()).unwrap();
}

pub fn remove_clear_and_remove_peer(factory: Factory) {
    let h = factory(Limits::default());
    let peer = PeerId::random();
    h.store
        .add_addrs(&peer, &[addr(1), addr(2), addr(3)], DEFAULT_ADDR_TTL)
        .unwrap();
    h.store.remove_addrs(&peer, &[addr(2)]).unwrap();
    assert_eq!(h.store.addrs(&peer).unwrap(), vec![addr(1), addr(3)]);
    h.store.add_protocols(&peer, &["/a"]).unwrap();
    h.store.clear_addrs(&peer).unwrap();
    assert!(h.store.addrs(&peer).unwrap().is_empty());
    assert_eq!(h.store.peers().unwrap(), vec![peer]);
    let mut rx = h.store.subscribe();
    h.store.remove_peer(&peer).unwrap();
    assert!(h.store.protocols(&peer).unwrap().is_empty());
    assert_eq!(h.store.peer_count().unwrap(), 0);
    assert_eq!(drain(&mut rx), vec![PeerStoreEvent::PeerRemoved { peer }]);
    // Removing from an unknown peer neither fails nor creates it.
    h.store.remove_addrs(&peer, &[addr(1)]).unwrap();
    h.store.remove_protocols(&peer, &["/a"]).unwrap();
    h.store.remove_metadata(&peer, "k").unwrap();
    assert_eq!(h.store.peer_count().unwrap(), 0);
}

pub fn gc_deletes_expired_addresses_and_empty_peers(factory: Factory) {
    let h = factory(Limits::default());
    let (a, b) = (PeerId::random(), PeerId::random());
    h.store.add_addrs(&a, &[addr(1)], TEMP_ADDR_TTL).unwrap();
    h.store.add_addrs(&b, &[addr(2)], TEMP_ADDR_TTL).unwrap();
    h.store.add_addrs(&b, &[addr(3)], DEFAULT_ADDR_TTL).unwrap();
    let mut rx = h.store.subscribe();
    assert_eq!(h.store.gc().unwrap(), 0);
    h.clock.advance(TEMP_ADDR_TTL);
    assert_eq!(h.store.gc().unwrap(), 2);
    assert_eq!(h.store.peers().unwrap(), vec![b]);
    assert_eq!(h.store.addrs(&b).unwrap(), vec![addr(3)]);
    let mut changed: Vec<PeerId> = drain(&mut rx)
        .into_iter()
        .map(|e| match e {
            PeerStoreEvent::AddressesChanged { peer } => peer,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    changed.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(changed, expected);
}

pub fn keys_must_match_the_peer_id(factory: Factory) {
    let h = factory(Limits::default());
    let ed = Keypair::generate_ed25519().public();
    let ecdsa = Keypair::generate_ecdsa().public();
    let ed_peer = ed.to_peer_id();
    let ecdsa_peer = ecdsa.to_peer_id();
    // Ed25519 ids inline their key: known without storing it.
    assert_eq!(h.store.pubkey(&ed_peer).unwrap(), Some(ed.clone()));
    // ECDSA ids are hashes: unknown until stored.
    assert_eq!(h.store.pubkey(&ecdsa_peer).unwrap(), None);
    let mut rx = h.store.subscribe();
    h.store.add_pubkey(&ecdsa_peer, &ecdsa).unwrap();
    assert_eq!(h.store.pubkey(&ecdsa_peer).unwrap(), Some(ecdsa.clone()));
    assert_eq!(
        drain(&mut rx),
        vec![PeerStoreEvent::KeyAdded { peer: ecdsa_peer }]
    );
    let err = h.store.add_pubkey(&ed_peer, &ecdsa).unwrap_err();
    match err {
        PeerStoreError::KeyMismatch { peer, key_peer } => {
            assert_eq!(*peer, ed_peer);
            assert_eq!(*key_peer, ecdsa_peer);
        }
        other => panic!("expected KeyMismatch, got {other:?}"),
    }
    let random = PeerId::random();
    assert!(matches!(
        h.store.add_pubkey(&random, &ed),
        Err(PeerStoreError::KeyMismatch { .. })
    ));
    assert_eq!(h.store.pubkey(&random).unwrap(), None);
    assert!(drain(&mut rx).is_empty());
}

pub fn protocol_book(factory: Factory) {
    let h = factory(Limits::default());
    let peer = PeerId::random();
    let mut rx = h.store.subscribe();
    h.store.set_protocols(&peer, &["/a", "/b", "/c"]).unwrap();
    h.store.add_protocols(&peer, &["/c", "/d"]).unwrap();
    h.store.remove_protocols(&peer, &["/a", "/zzz"]).unwrap();
    assert_eq!(h.store.protocols(&peer).unwrap(), vec!["/b", "/c", "/d"]);
    assert_eq!(
        h.store
            .supports_protocols(&peer, &["/d", "/x", "/b"])
            .unwrap(),
        vec!["/d", "/b"]
    );
    assert_eq!(
        h.store
            .first_supported_protocol(&peer, &["/x", "/c", "/b"])
            .unwrap(),
        Some("/c".to_owned())
    );
    assert_eq!(
        h.store.first_supported_protocol(&peer, &["/x"]).unwrap(),
        None
    );
    assert!(h
        .store
        .supports_protocols(&PeerId::random(), &["/b"])
        .unwrap()
        .is_empty());
    h.store.set_protocols(&peer, &["/b", "/e"]).unwrap();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        drain(&mut rx),
        vec![
            PeerStoreEvent::ProtocolsChanged {
                peer,
                added: s(&["/a", "/b", "/c"]),
                removed: vec![]
            },
            PeerStoreEvent::ProtocolsChanged {
                peer,
                added: s(&["/d"]),
                removed: vec![]
            },
            PeerStoreEvent::ProtocolsChanged {
                peer,
                added: vec![],
                removed: s(&["/a"])
            },
            PeerStoreEvent::ProtocolsChanged {
                peer,
                added: s(&["/e"]),
                removed: s(&["/c", "/d"])
            },
        ]
    );
    // No change, no event.
    h.store.add_protocols(&peer, &["/b"]).unwrap();
    assert!(drain(&mut rx).is_empty());
}

pub fn metadata_and_versions(factory: Factory) {
    let h = factory(Limits::default());
    let peer = PeerId::random();
    let mut rx = h.store.subscribe();
    h.store.set_agent_version(&peer, "weft/0.1.0").unwrap();
    h.store.set_protocol_version(&peer, "ipfs/0.1.0").unwrap();
    h.store
        .put_metadata(&peer, "blob", &[0, 1, 2, 255])
        .unwrap();
    assert_eq!(
        h.store.agent_version(&peer).unwrap().as_deref(),
        Some("weft/0.1.0")
    );
    assert_eq!(
        h.store.protocol_version(&peer).unwrap().as_deref(),
        Some("ipfs/0.1.0")
    );
    assert_eq!(
        h.store.metadata(&peer, "blob").unwrap(),
        Some(vec![0, 1, 2, 255])
    );
    assert_eq!(h.store.metadata(&peer, "other").unwrap(), None);
    h.store.put_metadata(&peer, "blob", &[7]).unwrap();
    assert_eq!(h.store.metadata(&peer, "blob").unwrap(), Some(vec![7]));
    h.store.remove_metadata(&peer, "blob").unwrap();
    assert_eq!(h.store.metadata(&peer, "blob").unwrap(), None);
    let keys: Vec<String> = drain(&mut rx)
        .into_iter()
        .map(|e| match e {
            PeerStoreEvent::MetadataChanged { key, .. } => key,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        keys,
        ["AgentVersion", "ProtocolVersion", "blob", "blob", "blob"]
    );
}

pub fn latency_is_a_moving_average(factory: Factory) {
    let h = factory(Limits::default());
    let peer = PeerId::random();
    assert_eq!(h.store.latency(&peer).unwrap(), None);
    h.store
        .record_latency(&peer, Duration::from_millis(100))
        .unwrap();
    assert_eq!(
        h.store.latency(&peer).unwrap(),
        Some(Duration::from_millis(100))
    );
    h.store
        .record_latency(&peer, Duration::from_millis(200))
        .unwrap();
    // 0.9 * 100 ms + 0.1 * 200 ms
    assert_eq!(
        h.store.latency(&peer).unwrap(),
        Some(Duration::from_millis(110))
    );
}

pub fn bounds_give_errors_and_change_nothing(factory: Factory) {
    let limits = Limits {
        max_addrs_per_peer: 4,
        max_addr_len: 64,
        max_protocols_per_peer: 3,
        max_protocol_len: 16,
        max_metadata_entries_per_peer: 2,
        max_metadata_key_len: 8,
        max_metadata_value_len: 32,
        ..Limits::default()
    };
    let h = factory(limits);
    let peer = PeerId::random();
    let s = &h.store;
    s.add_addrs(&peer, &[addr(1), addr(2), addr(3)], DEFAULT_ADDR_TTL)
        .unwrap();
    assert!(matches!(
        s.add_addrs(&peer, &[addr(4), addr(5)], DEFAULT_ADDR_TTL),
        Err(PeerStoreError::TooManyAddresses {
            count: 5,
            limit: 4,
            ..
        })
    ));
    assert!(matches!(
        s.set_addrs(&peer, &[addr(4), addr(5)], DEFAULT_ADDR_TTL),
        Err(PeerStoreError::TooManyAddresses { .. })
    ));
    assert_eq!(s.addrs(&peer).unwrap(), vec![addr(1), addr(2), addr(3)]);
    // Re-adding stored addresses is within bounds; expired ones free their slot.
    s.add_addrs(
        &peer,
        &[addr(1), addr(2), addr(3), addr(4)],
        DEFAULT_ADDR_TTL,
    )
    .unwrap();
    s.set_addrs(&peer, &[addr(1)], TEMP_ADDR_TTL).unwrap();
    h.clock.advance(TEMP_ADDR_TTL);
    s.add_addrs(&peer, &[addr(5)], DEFAULT_ADDR_TTL).unwrap();
    assert_eq!(
        s.addrs(&peer).unwrap(),
        vec![addr(2), addr(3), addr(4), addr(5)]
    );

    let long: Multiaddr = format!("/dns4/{}/tcp/1", "a".repeat(100)).parse().unwrap();
    assert!(matches!(
        s.add_addrs(&PeerId::random(), &[long], DEFAULT_ADDR_TTL),
        Err(PeerStoreError::AddressTooLong { limit: 64, .. })
    ));

    s.set_protocols(&peer, &["/a", "/b"]).unwrap();
    assert!(matches!(
        s.add_protocols(&peer, &["/c", "/d"]),
        Err(PeerStoreError::TooManyProtocols {
            count: 4,
            limit: 3,
            ..
        })
    ));
    assert!(matches!(
        s.set_protocols(&peer, &["/1", "/2", "/3", "/4"]),
        Err(PeerStoreError::TooManyProtocols { .. })
    ));
    assert!(matches!(
        s.add_protocols(&peer, &["/a-protocol-id-that-is-too-long"]),
        Err(PeerStoreError::InvalidProtocolId { limit: 16, .. })
    ));
    assert!(matches!(
        s.add_protocols(&peer, &[""]),
        Err(PeerStoreError::InvalidProtocolId { len: 0, .. })
    ));
    assert_eq!(s.protocols(&peer).unwrap(), vec!["/a", "/b"]);

    s.put_metadata(&peer, "k1", b"v").unwrap();
    assert!(matches!(
        s.put_metadata(&peer, "k2", &[0; 33]),
        Err(PeerStoreError::MetadataValueTooLarge { len: 33, limit: 32 })
    ));
    assert!(matches!(
        s.put_metadata(&peer, "key-too-long", b"v"),
        Err(PeerStoreError::InvalidMetadataKey { .. })
    ));
    s.put_metadata(&peer, "k2", &[0; 32]).unwrap();
    assert!(matches!(
        s.put_metadata(&peer, "k3", b"v"),
        Err(PeerStoreError::TooManyMetadataEntries { limit: 2, .. })
    ));
    // Replacing an existing entry is fine at the limit.
    s.put_metadata(&peer, "k1", b"w").unwrap();
    assert_eq!(s.metadata(&peer, "k1").unwrap(), Some(b"w".to_vec()));
    assert_eq!(s.metadata(&peer, "k3").unwrap(), None);
}

pub fn full_store_evicts_the_oldest_unconnected_peer(factory: Factory) {
    let h = factory(Limits {
        max_peers: 3,
        ..Limits::default()
    });
    let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
    // peers[0] is the oldest, but connected.
    h.store
        .add_addrs(&peers[0], &[addr(0)], CONNECTED_ADDR_TTL)
        .unwrap();
    h.clock.advance(Duration::from_secs(1));
    h.store
        .add_addrs(&peers[1], &[addr(1)], DEFAULT_ADDR_TTL)
        .unwrap();
    h.clock.advance(Duration::from_secs(1));
    h.store
        .add_addrs(&peers[2], &[addr(2)], DEFAULT_ADDR_TTL)
        .unwrap();
    h.clock.advance(Duration::from_secs(1));
    // Touching peers[1] makes peers[2] the oldest unconnected one.
    h.store.add_protocols(&peers[1], &["/p"]).unwrap();
    h.clock.advance(Duration::from_secs(1));
    let mut rx = h.store.subscribe();
    h.store
        .add_addrs(&peers[3], &[addr(3)], DEFAULT_ADDR_TTL)
        .unwrap();
    assert_eq!(h.store.peer_count().unwrap(), 3);
    let mut held = h.store.peers().unwrap();
    held.sort();
    let mut expected = vec![peers[0], peers[1], peers[3]];
    expected.sort();
    assert_eq!(held, expected);
    assert!(drain(&mut rx).contains(&PeerStoreEvent::PeerEvicted { peer: peers[2] }));

    // With every peer connected nothing can go: the new peer is refused.
    for p in [&peers[1], &peers[3]] {
        h.store
            .add_addrs(p, &[addr(9)], CONNECTED_ADDR_TTL)
            .unwrap();
    }
    assert!(matches!(
        h.store.add_addrs(&peers[4], &[addr(4)], DEFAULT_ADDR_TTL),
        Err(PeerStoreError::StoreFull { limit: 3 })
    ));
    assert_eq!(h.store.peer_count().unwrap(), 3);
    // Writes to peers already held still work.
    h.store.add_protocols(&peers[0], &["/q"]).unwrap();
}

pub fn batches_apply_in_order_like_the_calls(factory: Factory) {
    let h = factory(Limits::default());
    let key = Keypair::generate_ed25519().public();
    let p = key.to_peer_id();
    let q = PeerId::random();
    let gone = PeerId::random();
    h.store
        .add_addrs(&gone, &[addr(7)], DEFAULT_ADDR_TTL)
        .unwrap();
    let mut rx = h.store.subscribe();
    let ops = vec![
        PeerStoreOp::AddAddrs {
            peer: p,
            addrs: vec![addr(1)],
            ttl: CONNECTED_ADDR_TTL,
        },
        PeerStoreOp::AddPubkey {
            peer: p,
            key: key.clone(),
        },
        PeerStoreOp::SetProtocols {
            peer: p,
            protocols: vec!["/a".into(), "/b".into()],
        },
        PeerStoreOp::PutMetadata {
            peer: p,
            key: AGENT_VERSION_KEY.into(),
            value: b"agent/1".to_vec(),
        },
        // Sees the connected address added three ops earlier, in the same batch.
        PeerStoreOp::Disconnected { peer: p },
        PeerStoreOp::RemoveProtocols {
            peer: p,
            protocols: vec!["/a".into()],
        },
        PeerStoreOp::RecordLatency {
            peer: p,
            rtt: Duration::from_millis(20),
        },
        // Fails (the key is p's): changes nothing, the rest still applies.
        PeerStoreOp::AddPubkey {
            peer: q,
            key: key.clone(),
        },
        PeerStoreOp::AddProtocols {
            peer: q,
            protocols: vec!["/c".into()],
        },
        PeerStoreOp::RemovePeer { peer: gone },
    ];
    let results = h.store.apply_batch(&ops).unwrap();
    assert_eq!(results.len(), ops.len());
    for (i, r) in results.iter().enumerate() {
        if i == 7 {
            assert!(
                matches!(r, Err(PeerStoreError::KeyMismatch { .. })),
                "{r:?}"
            );
        } else {
            assert!(r.is_ok(), "op {i}: {r:?}");
        }
    }
    assert_eq!(h.store.pubkey(&p).unwrap(), Some(key));
    assert_eq!(h.store.protocols(&p).unwrap(), vec!["/b".to_string()]);
    assert_eq!(
        h.store.agent_version(&p).unwrap().as_deref(),
        Some("agent/1")
    );
    assert_eq!(
        h.store.latency(&p).unwrap(),
        Some(Duration::from_millis(20))
    );
    assert_eq!(h.store.protocols(&q).unwrap(), vec!["/c".to_string()]);
    assert_eq!(h.store.pubkey(&q).unwrap(), None);
    assert!(!h.store.peers().unwrap().contains(&gone));
    assert_eq!(h.store.addrs(&p).unwrap(), vec![addr(1)]);
    // The disconnect in the batch downgraded the address: gone after 15 minutes.
    h.clock
        .advance(RECENTLY_CONNECTED_ADDR_TTL + Duration::from_secs(1));
    assert!(h.store.addrs(&p).unwrap().is_empty());

    let events = drain(&mut rx);
    for expected in [
        PeerStoreEvent::AddressesChanged { peer: p },
        PeerStoreEvent::KeyAdded { peer: p },
        PeerStoreEvent::PeerRemoved { peer: gone },
    ] {
        assert!(events.contains(&expected), "{expected:?} not in {events:?}");
    }
    assert!(h.store.apply_batch(&[]).unwrap().is_empty());
}

pub fn slow_subscribers_lag_and_never_block_writers(factory: Factory) {
    let h = factory(Limits {
        event_capacity: 4,
        ..Limits::default()
    });
    let mut slow = h.store.subscribe();
    let peer = PeerId::random();
    for i in 0..20u32 {
        h.store.put_metadata(&peer, "k", &i.to_be_bytes()).unwrap();
    }
    match slow.try_recv() {
        Err(TryRecvError::Lagged(missed)) => assert_eq!(missed, 16),
        other => panic!("expected Lagged, got {other:?}"),
    }
    // After the lag report it gets the newest four.
    assert_eq!(drain(&mut slow).len(), 4);
}

pub fn concurrent_readers_and_writers_agree(factory: Factory, writes_per_thread: u32) {
    let h = factory(Limits::default());
    let peers: Vec<PeerId> = (0..8).map(|_| PeerId::random()).collect();
    std::thread::scope(|scope| {
        for (t, peer) in peers.iter().enumerate() {
            let store = h.store.clone();
            scope.spawn(move || {
                for i in 0..writes_per_thread {
                    store
                        .add_addrs(peer, &[addr(t as u32 * 1000 + i)], DEFAULT_ADDR_TTL)
                        .unwrap();
                    store.add_protocols(peer, &[&format!("/p/{i}")]).unwrap();
                }
            });
        }
        for _ in 0..4 {
            let store = h.store.clone();
            let peers = peers.clone();
            scope.spawn(move || {
                for _ in 0..writes_per_thread {
                    for peer in &peers {
                        // Each write adds an address before its protocol: a reader may
                        // see one more address than protocols, never fewer.
                        let protocols = store.protocols(peer).unwrap().len();
                        let addrs = store.addrs(peer).unwrap().len();
                        assert!(addrs >= protocols, "{addrs} addrs < {protocols} protocols");
                    }
                }
            });
        }
    });
    for (t, peer) in peers.iter().enumerate() {
        let expected: Vec<Multiaddr> = (0..writes_per_thread)
            .map(|i| addr(t as u32 * 1000 + i))
            .collect();
        assert_eq!(h.store.addrs(peer).unwrap(), expected);
        assert_eq!(
            h.store.protocols(peer).unwrap().len(),
            writes_per_thread as usize
        );
    }
    assert_eq!(h.store.peer_count().unwrap(), peers.len());
}

pub async fn concurrent_tokio_tasks(factory: Factory) {
    let h = factory(Limits::default());
    let mut tasks = Vec::new();
    for t in 0..16u32 {
        let store = h.store.clone();
        tasks.push(tokio::spawn(async move {
            let peer = PeerId::random();
            for i in 0..5 {
                store
                    .add_addrs(&peer, &[addr(t * 100 + i)], DEFAULT_ADDR_TTL)
                    .unwrap();
                tokio::task::yield_now().await;
            }
            store
                .set_agent_version(&peer, &format!("agent-{t}"))
                .unwrap();
            (peer, t)
        }));
    }
    for task in tasks {
        let (peer, t) = task.await.unwrap();
        assert_eq!(h.store.addrs(&peer).unwrap().len(), 5);
        assert_eq!(
            h.store.agent_version(&peer).unwrap(),
            Some(format!("agent-{t}"))
        );
    }
    assert_eq!(h.store.peer_count().unwrap(), 16);
}

/// Instantiates every suite test for one backend.
#[macro_export]
macro_rules! backend_suite {
    ($name:ident, $factory:expr, $concurrent_writes:expr) => {
        mod $name {
            use super::suite;

            #[test]
            fn addresses_expire_with_their_ttl() {
                suite::addresses_expire_with_their_ttl($factory);
            }
            #[test]
            fn add_keeps_the_longer_ttl_and_set_overrides() {
                suite::add_keeps_the_longer_ttl_and_set_overrides($factory);
            }
            #[test]
            fn disconnect_downgrades_connected_addresses() {
                suite::disconnect_downgrades_connected_addresses($factory);
            }
            #[test]
            fn remove_clear_and_remove_peer() {
                suite::remove_clear_and_remove_peer($factory);
            }
            #[test]
            fn gc_deletes_expired_addresses_and_empty_peers() {
                suite::gc_deletes_expired_addresses_and_empty_peers($factory);
            }
            #[test]
            fn keys_must_match_the_peer_id() {
                suite::keys_must_match_the_peer_id($factory);
            }
            #[test]
            fn protocol_book() {
                suite::protocol_book($factory);
            }
            #[test]
            fn metadata_and_versions() {
                suite::metadata_and_versions($factory);
            }
            #[test]
            fn latency_is_a_moving_average() {
                suite::latency_is_a_moving_average($factory);
            }
            #[test]
            fn bounds_give_errors_and_change_nothing() {
                suite::bounds_give_errors_and_change_nothing($factory);
            }
            #[test]
            fn full_store_evicts_the_oldest_unconnected_peer() {
                suite::full_store_evicts_the_oldest_unconnected_peer($factory);
            }
            #[test]
            fn batches_apply_in_order_like_the_calls() {
                suite::batches_apply_in_order_like_the_calls($factory);
            }
            #[test]
            fn slow_subscribers_lag_and_never_block_writers() {
                suite::slow_subscribers_lag_and_never_block_writers($factory);
            }
            #[test]
            fn concurrent_readers_and_writers_agree() {
                suite::concurrent_readers_and_writers_agree($factory, $concurrent_writes);
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_tokio_tasks() {
                suite::concurrent_tokio_tasks($factory).await;
            }
        }
    };
}
