//! Behaviour of the manager and its guards together.

use std::sync::Arc;
use std::thread;

use crate::*;

const MIB: u64 = 1 << 20;

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

fn remote() -> Multiaddr {
    addr("/ip4/192.0.2.1/tcp/4001")
}

fn manager() -> ResourceManager {
    ResourceManager::new(Limits::scaled(256 * MIB, 512))
}

fn assert_idle(manager: &ResourceManager) {
    let stats = manager.stats();
    assert!(stats.system.is_zero(), "system: {:?}", stats.system);
    assert!(
        stats.transient.is_zero(),
        "transient: {:?}",
        stats.transient
    );
    assert!(stats.allowlist_system.is_zero());
    assert!(stats.allowlist_transient.is_zero());
    assert!(stats.protocols.is_empty(), "{:?}", stats.protocols);
    assert_eq!((stats.peers, stats.protocol_peers), (0, 0));
}

#[test]
fn a_connection_moves_from_transient_to_its_peer() {
    let manager = manager();
    let mut conn = manager
        .open_connection(Direction::Inbound, &remote(), true)
        .unwrap();
    let stats = manager.stats();
    for usage in [stats.system, stats.transient] {
        assert_eq!(usage.connections_inbound, 1);
        assert_eq!(usage.pending_inbound, 1);
        assert_eq!(usage.fds, 1);
    }
    conn.reserve_memory(1000, 255).unwrap();
    assert_eq!(manager.stats().transient.memory, 1000);

    let peer = PeerId::random();
    conn.set_peer(peer).unwrap();
    assert_eq!(conn.peer(), Some(peer));
    let stats = manager.stats();
    assert!(stats.transient.is_zero(), "{:?}", stats.transient);
    assert_eq!(stats.system.pending_inbound, 0);
    assert_eq!(stats.system.connections_inbound, 1);
    assert_eq!(stats.system.memory, 1000);
    let at_peer = manager.peer_usage(&peer).unwrap();
    assert_eq!(at_peer.connections_inbound, 1);
    assert_eq!(at_peer.pending_inbound, 0);
    assert_eq!(at_peer.memory, 1000);
    assert_eq!(conn.memory_used(), 1000);

    drop(conn);
    assert_eq!(manager.peer_usage(&peer), None);
    assert_idle(&manager);
}

#[test]
fn a_full_transient_scope_denies_and_changes_nothing() {
    let mut limits = Limits::scaled(256 * MIB, 512);
    limits.transient = limits.transient.with_pending_inbound(2);
    let manager = ResourceManager::new(limits);
    let a = manager.open_connection(Direction::Inbound, &remote(), true);
    let b = manager.open_connection(Direction::Inbound, &remote(), true);
    let before = manager.stats();
    let error = manager
        .open_connection(Direction::Inbound, &remote(), true)
        .unwrap_err();
    assert_eq!(error.scope, ScopeName::Transient);
    assert_eq!(error.resource, Resource::PendingInbound);
    assert_eq!((error.used, error.limit), (2, 2));
    assert_eq!(
        error.to_string(),
        "transient: cannot reserve 1 pending inbound connection: 2 of 2 in use"
    );
    assert_eq!(manager.stats(), before);
    // Outbound connections are not pending.
    let c = manager.open_connection(Direction::Outbound, &remote(), true);
    assert!(c.is_ok());
    drop((a, b, c));
    assert_idle(&manager);
}

#[test]
fn the_allowlist_admits_trusted_addresses_when_the_system_is_full() {
    let mut limits = Limits::scaled(256 * MIB, 512).with_allowlist(
        Allowlist::new()
            .with_addr(addr("/ip4/10.0.0.0/ipcidr/8"))
            .unwrap(),
    );
    limits.system = limits.system.with_connections(1, 1, 2);
    let manager = ResourceManager::new(limits);
    let first = manager
        .open_connection(Direction::Inbound, &remote(), true)
        .unwrap();
    assert!(!first.is_allowlisted());
    let error = manager
        .open_connection(Direction::Inbound, &remote(), true)
        .unwrap_err();
    assert_eq!(error.scope, ScopeName::System);
    assert_eq!(error.resource, Resource::ConnectionsInbound);

    let mut trusted = manager
        .open_connection(Direction::Inbound, &addr("/ip4/10.9.8.7/tcp/1"), true)
        .unwrap();
    assert!(trusted.is_allowlisted());
    let stats = manager.stats();
    assert_eq!(stats.allowlist_system.connections_inbound, 1);
    assert_eq!(stats.allowlist_transient.pending_inbound, 1);
    assert_eq!(stats.system.connections_inbound, 1);

    let peer = PeerId::random();
    trusted.set_peer(peer).unwrap();
    let stream = trusted.open_stream(Direction::Inbound).unwrap();
    let stats = manager.stats();
    assert_eq!(stats.allowlist_transient.streams_inbound, 1);
    assert_eq!(stats.allowlist_system.streams_inbound, 1);
    assert!(stats.transient.streams_inbound == 0 && stats.system.streams_inbound == 0);
    drop((first, trusted, stream));
    assert_idle(&manager);
}

#[test]
fn per_peer_connection_limit_names_the_peer() {
    let mut limits = Limits::scaled(256 * MIB, 512);
    limits.peer = limits.peer.with_connections(8, 8, 8);
    let manager = ResourceManager::new(limits.clone());
    let peer = PeerId::random();
    let mut conns = Vec::new();
    for _ in 0..8 {
        let mut conn = manager
            .open_connection(Direction::Outbound, &remote(), true)
            .unwrap();
        conn.set_peer(peer).unwrap();
        conns.push(conn);
    }
    let mut ninth = manager
        .open_connection(Direction::Outbound, &remote(), true)
        .unwrap();
    let error = ninth.set_peer(peer).unwrap_err();
    assert_eq!(error.scope, ScopeName::Peer(peer));
    assert_eq!(error.resource, Resource::ConnectionsOutbound);
    assert_eq!(ninth.peer(), None);
    assert_eq!(manager.stats().transient.connections_outbound, 1);
    // Another peer is unaffected, and an allowlisted peer id has no per-peer limit.
    ninth.set_peer(PeerId::random()).unwrap();
    drop((conns, ninth));
    assert_idle(&manager);

    let trusted = PeerId::random();
    let manager = ResourceManager::new(limits.with_allowlist(Allowlist::new().with_peer(trusted)));
    let conns: Vec<_> = (0..20)
        .map(|_| {
            let mut conn = manager
                .open_connection(Direction::Outbound, &remote(), true)
                .unwrap();
            conn.set_peer(trusted).unwrap();
            conn
        })
        .collect();
    assert_eq!(
        manager.peer_usage(&trusted).unwrap().connections_outbound,
        20
    );
    drop(conns);
    assert_idle(&manager);
}

#[test]
fn streams_move_from_transient_to_their_protocol() {
    let limits = Limits::scaled(256 * MIB, 512).with_protocol_peer(
        "/echo/1.0.0",
        ScopeLimit::unlimited().with_streams_inbound(2),
    );
    let manager = ResourceManager::new(limits);
    let mut conn = manager
        .open_connection(Direction::Inbound, &remote(), true)
        .unwrap();
    let peer = PeerId::random();
    conn.set_peer(peer).unwrap();

    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut stream = conn.open_stream(Direction::Inbound).unwrap();
        assert_eq!(manager.stats().transient.streams_inbound, 1);
        stream.set_protocol("/echo/1.0.0").unwrap();
        assert_eq!(stream.protocol(), Some("/echo/1.0.0"));
        stream.reserve_memory(4096, 255).unwrap();
        streams.push(stream);
    }
    let stats = manager.stats();
    assert_eq!(stats.transient.streams_inbound, 0);
    assert_eq!(stats.protocols["/echo/1.0.0"].streams_inbound, 2);
    assert_eq!(stats.protocols["/echo/1.0.0"].memory, 8192);
    assert_eq!(conn.usage().streams_inbound, 2);
    assert_eq!(conn.memory_used(), 8192);
    assert_eq!(manager.peer_usage(&peer).unwrap().memory, 8192);

    let mut third = conn.open_stream(Direction::Inbound).unwrap();
    let error = third.set_protocol("/echo/1.0.0").unwrap_err();
    assert_eq!(error.scope, ScopeName::ProtocolPeer("/echo/1.0.0".into()));
    assert_eq!(error.resource, Resource::StreamsInbound);
    assert_eq!(third.protocol(), None);
    assert_eq!(manager.stats().transient.streams_inbound, 1);
    // Another protocol still takes it.
    third.set_protocol("/other/1.0.0").unwrap();
    assert_eq!(manager.stats().transient.streams_inbound, 0);
    assert_eq!(manager.stats().protocols.len(), 2);

    drop(third);
    assert_eq!(manager.stats().protocols.len(), 1);
    drop(streams);
    drop(conn);
    assert_idle(&manager);
}

#[test]
fn memory_priority_leaves_room_for_higher_priorities() {
    let mut limits = Limits::scaled(256 * MIB, 512);
    limits.connection = limits.connection.with_memory(256 * 1024);
    let manager = ResourceManager::new(limits);
    let conn = manager
        .open_connection(Direction::Outbound, &remote(), true)
        .unwrap();
    // Priority 101 may fill 102/256 of the connection's 256 KiB.
    conn.reserve_memory(102 * 1024, 101).unwrap();
    let error = conn.reserve_memory(1, 101).unwrap_err();
    assert_eq!(error.scope, ScopeName::Connection);
    assert_eq!((error.limit, error.allowed), (256 * 1024, 102 * 1024));
    conn.reserve_memory(154 * 1024, 255).unwrap();
    assert!(conn.reserve_memory(1, 255).is_err());
    conn.release_memory(usize::MAX);
    assert_eq!(conn.memory_used(), 0);
    drop(conn);
    assert_idle(&manager);
}

#[test]
fn streams_opened_before_the_peer_is_known_are_counted_once() {
    let manager = manager();
    let mut conn = manager
        .open_connection(Direction::Inbound, &remote(), true)
        .unwrap();
    let early = conn.open_stream(Direction::Outbound).unwrap();
    early.reserve_memory(100, 255).unwrap();
    let mut negotiated = conn.open_stream(Direction::Inbound).unwrap();
    negotiated.set_protocol("/a").unwrap();
    let transient = manager.stats().transient;
    assert_eq!(transient.streams_total, 2);
    assert_eq!(transient.connections_total, 1);
    assert_eq!(transient.memory, 100);
    assert_eq!(manager.stats().protocol_peers, 0);

    let peer = PeerId::random();
    conn.set_peer(peer).unwrap();
    let transient = manager.stats().transient;
    // Only the stream not yet past mss stays in transient.
    assert_eq!(transient.connections_total, 0);
    assert_eq!(transient.streams_outbound, 1);
    assert_eq!(transient.streams_inbound, 0);
    assert_eq!(transient.memory, 100);
    assert_eq!(manager.peer_usage(&peer).unwrap().streams_total, 2);

    drop(early);
    assert!(manager.stats().transient.is_zero());
    drop(negotiated);
    drop(conn);
    assert_idle(&manager);
}

#[test]
fn streams_may_outlive_their_connection_scope() {
    let manager = manager();
    let mut conn = manager
        .open_connection(Direction::Outbound, &remote(), true)
        .unwrap();
    let peer = PeerId::random();
    conn.set_peer(peer).unwrap();
    let mut stream = conn.open_stream(Direction::Outbound).unwrap();
    stream.reserve_memory(10, 0).unwrap();
    drop(conn);
    assert_eq!(manager.stats().system.connections_total, 0);
    assert_eq!(manager.peer_usage(&peer).unwrap().streams_outbound, 1);
    stream.set_protocol("/late").unwrap();
    drop(stream);
    assert_idle(&manager);
}

#[test]
fn concurrent_reservations_never_exceed_the_limit() {
    let mut limits = Limits::scaled(256 * MIB, 512);
    limits.system = limits.system.with_memory(64 * 1024);
    let manager = ResourceManager::new(limits);
    let mut conns = Vec::new();
    for _ in 0..4 {
        let mut conn = manager
            .open_connection(Direction::Inbound, &remote(), false)
            .unwrap();
        conn.set_peer(PeerId::random()).unwrap();
        conns.push(Arc::new(conn));
    }
    let workers: Vec<_> = conns
        .iter()
        .map(|conn| {
            let conn = conn.clone();
            let manager = manager.clone();
            thread::spawn(move || {
                let stream = conn.open_stream(Direction::Inbound).unwrap();
                for i in 0..20_000usize {
                    let bytes = 1 + i % 30_000;
                    if stream.reserve_memory(bytes, 255).is_ok() {
                        assert!(manager.stats().system.memory <= 64 * 1024);
                        stream.release_memory(bytes);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    drop(conns);
    assert_idle(&manager);
}

#[test]
fn the_manager_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ResourceManager>();
    check::<ConnectionScope>();
    check::<StreamScope>();
    check::<ResourceError>();
}

#[test]
fn every_refusal_a_caller_sees_is_counted_once_for_the_scope_that_refused() {
    let mut limits = Limits::scaled(256 * MIB, 512)
        .with_protocol_peer("/p", ScopeLimit::unlimited().with_streams_inbound(1))
        .with_allowlist(
            Allowlist::new()
                .with_addr(addr("/ip4/10.0.0.0/ipcidr/8"))
                .unwrap(),
        );
    limits.system.connections_inbound = 1;
    limits.connection = limits.connection.with_memory(1000).with_streams(2, 2, 4);
    let manager = ResourceManager::new(limits);
    assert_eq!(manager.denials().total(), 0);

    let mut conn = manager
        .open_connection(Direction::Inbound, &remote(), true)
        .unwrap();
    // open_connection: the system's inbound connections.
    assert!(manager
        .open_connection(Direction::Inbound, &remote(), true)
        .is_err());
    // Refused by the normal scopes, admitted by the allowlist's: not a refusal.
    let trusted = manager
        .open_connection(Direction::Inbound, &addr("/ip4/10.1.2.3/tcp/1"), true)
        .unwrap();
    // reserve_memory on the connection: its own limit.
    assert!(conn.reserve_memory(2000, 255).is_err());
    conn.set_peer(PeerId::random()).unwrap();
    // set_protocol: the protocol-peer scope allows one inbound /p stream.
    let mut first = conn.open_stream(Direction::Inbound).unwrap();
    first.set_protocol("/p").unwrap();
    let mut second = conn.open_stream(Direction::Inbound).unwrap();
    assert!(second.set_protocol("/p").is_err());
    // open_stream: the connection's two inbound streams are taken.
    assert!(conn.open_stream(Direction::Inbound).is_err());
    // reserve_memory on a stream: the connection above it.
    assert!(first.reserve_memory(5000, 255).is_err());

    let denials = manager.denials();
    let nonzero: Vec<_> = denials.iter().filter(|d| d.2 > 0).collect();
    assert_eq!(
        nonzero,
        vec![
            ("system", Resource::ConnectionsInbound, 1),
            ("connection", Resource::Memory, 2),
            ("connection", Resource::StreamsInbound, 1),
            ("protocol_peer", Resource::StreamsInbound, 1),
        ]
    );
    drop((first, second, trusted, conn));
    assert_eq!(manager.denials(), denials, "giving back is not refusing");
}
