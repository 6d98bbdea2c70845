//! Property test: random sequences of open / set_peer / set_protocol / reserve / release
//! / drop never push a scope over its limit, a denial changes nothing, the counts agree
//! with a model of what is held, and everything returns to zero once all guards are gone.

use proptest::prelude::*;
use weft_resource_manager::{
    Allowlist, ConnectionScope, Direction, Limits, Multiaddr, PeerId, ResourceManager, ScopeLimit,
    ScopeUsage, Stats, StreamScope,
};

const PROTOCOLS: [&str; 3] = ["/a/1", "/b/1", "/c/1"];

#[derive(Debug, Clone)]
enum Op {
    OpenConnection {
        inbound: bool,
        trusted: bool,
        fd: bool,
    },
    SetPeer {
        conn: usize,
        peer: usize,
    },
    OpenStream {
        conn: usize,
        inbound: bool,
    },
    SetProtocol {
        stream: usize,
        protocol: usize,
    },
    ReserveConnection {
        conn: usize,
        bytes: usize,
        priority: u8,
    },
    ReleaseConnection {
        conn: usize,
        bytes: usize,
    },
    ReserveStream {
        stream: usize,
        bytes: usize,
        priority: u8,
    },
    ReleaseStream {
        stream: usize,
        bytes: usize,
    },
    DropConnection {
        conn: usize,
    },
    DropStream {
        stream: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let index = 0usize..8;
    prop_oneof![
        3 => (any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(inbound, trusted, fd)| Op::OpenConnection { inbound, trusted, fd }),
        3 => (index.clone(), 0usize..3).prop_map(|(conn, peer)| Op::SetPeer { conn, peer }),
        4 => (index.clone(), any::<bool>()).prop_map(|(conn, inbound)| Op::OpenStream { conn, inbound }),
        3 => (index.clone(), 0usize..3)
            .prop_map(|(stream, protocol)| Op::SetProtocol { stream, protocol }),
        2 => (index.clone(), 1usize..12_000, any::<u8>())
            .prop_map(|(conn, bytes, priority)| Op::ReserveConnection { conn, bytes, priority }),
        1 => (index.clone(), 1usize..12_000)
            .prop_map(|(conn, bytes)| Op::ReleaseConnection { conn, bytes }),
        3 => (index.clone(), 1usize..12_000, any::<u8>())
            .prop_map(|(stream, bytes, priority)| Op::ReserveStream { stream, bytes, priority }),
        1 => (index.clone(), 1usize..12_000)
            .prop_map(|(stream, bytes)| Op::ReleaseStream { stream, bytes }),
        1 => index.clone().prop_map(|conn| Op::DropConnection { conn }),
        2 => index.prop_map(|stream| Op::DropStream { stream }),
    ]
}

fn tight_limits() -> Limits {
    let trusted: Multiaddr = "/ip4/10.0.0.0/ipcidr/8".parse().unwrap();
    let mut limits = Limits::scaled(64 << 10, 6)
        .with_allowlist(Allowlist::new().with_addr(&trusted).unwrap())
        .with_protocol("/b/1", ScopeLimit::unlimited().with_streams(2, 2, 3))
        .with_protocol_peer("/c/1", ScopeLimit::unlimited().with_streams(1, 1, 1));
    limits.system = limits
        .system
        .with_connections(4, 4, 6)
        .with_pending_inbound(3)
        .with_streams(8, 8, 12);
    limits.transient = limits
        .transient
        .with_memory(24 << 10)
        .with_connections(3, 3, 4)
        .with_pending_inbound(2)
        .with_streams(4, 4, 5);
    limits.allowlist_system = limits
        .allowlist_system
        .with_memory(16 << 10)
        .with_connections(2, 2, 2);
    limits.allowlist_transient = limits
        .allowlist_transient
        .with_memory(8 << 10)
        .with_connections(2, 2, 2)
        .with_streams(2, 2, 2);
    limits.peer = limits
        .peer
        .with_memory(32 << 10)
        .with_connections(2, 2, 2)
        .with_streams(4, 4, 6);
    limits.connection = limits
        .connection
        .with_memory(16 << 10)
        .with_streams(3, 3, 4);
    limits.stream = limits.stream.with_memory(8 << 10);
    limits.protocol_peer = limits.protocol_peer.with_streams_inbound(2);
    limits
}

/// What the test holds, next to the guards.
struct Conn {
    guard: Option<ConnectionScope>,
    peer: Option<usize>,
    memory: u64,
}

struct Stream {
    guard: StreamScope,
    conn: usize,
    memory: u64,
}

struct World {
    manager: ResourceManager,
    limits: Limits,
    peers: [PeerId; 3],
    conns: Vec<Conn>,
    streams: Vec<Stream>,
}

fn within(usage: ScopeUsage, limit: ScopeLimit, what: &str) {
    assert!(
        usage.memory <= limit.memory,
        "{what}: {usage:?} over {limit:?}"
    );
    assert!(
        usage.connections_inbound <= limit.connections_inbound,
        "{what}: {usage:?}"
    );
    assert!(
        usage.connections_outbound <= limit.connections_outbound,
        "{what}: {usage:?}"
    );
    assert!(
        usage.connections_total <= limit.connections_total,
        "{what}: {usage:?}"
    );
    assert!(
        usage.pending_inbound <= limit.pending_inbound,
        "{what}: {usage:?}"
    );
    assert!(
        usage.streams_inbound <= limit.streams_inbound,
        "{what}: {usage:?}"
    );
    assert!(
        usage.streams_outbound <= limit.streams_outbound,
        "{what}: {usage:?}"
    );
    assert!(
        usage.streams_total <= limit.streams_total,
        "{what}: {usage:?}"
    );
    assert!(usage.fds <= limit.fds, "{what}: {usage:?}");
}

/// Everything the manager reports, for comparing before and after a denial.
type Snapshot = (Stats, Vec<Option<ScopeUsage>>, Vec<Option<ScopeUsage>>);

impl World {
    fn snapshot(&self) -> Snapshot {
        let peers = self
            .peers
            .iter()
            .map(|p| self.manager.peer_usage(p))
            .collect();
        let per_peer = PROTOCOLS
            .iter()
            .flat_map(|proto| self.peers.iter().map(move |p| (proto, p)))
            .map(|(proto, p)| self.manager.protocol_peer_usage(proto, p))
            .collect();
        (self.manager.stats(), peers, per_peer)
    }

    fn live_conn(&mut self, i: usize) -> Option<&mut Conn> {
        let len = self.conns.len();
        if len == 0 {
            return None;
        }
        let conn = &mut self.conns[i % len];
        conn.guard.is_some().then_some(conn)
    }

    fn apply(&mut self, op: &Op) {
        let before = self.snapshot();
        let outcome: Result<(), weft_resource_manager::ResourceError> = match *op {
            Op::OpenConnection {
                inbound,
                trusted,
                fd,
            } => {
                let dir = if inbound {
                    Direction::Inbound
                } else {
                    Direction::Outbound
                };
                let addr: Multiaddr = if trusted {
                    "/ip4/10.1.1.1/tcp/1"
                } else {
                    "/ip4/192.0.2.1/tcp/1"
                }
                .parse()
                .unwrap();
                self.manager.open_connection(dir, &addr, fd).map(|guard| {
                    assert!(!guard.is_allowlisted() || trusted);
                    self.conns.push(Conn {
                        guard: Some(guard),
                        peer: None,
                        memory: 0,
                    });
                })
            }
            Op::SetPeer { conn, peer } => {
                let id = self.peers[peer];
                let Some(c) = self.live_conn(conn) else {
                    return;
                };
                let result = c.guard.as_mut().unwrap().set_peer(id);
                if result.is_ok() {
                    c.peer = Some(peer);
                }
                result
            }
            Op::OpenStream { conn, inbound } => {
                let dir = if inbound {
                    Direction::Inbound
                } else {
                    Direction::Outbound
                };
                let len = self.conns.len();
                let Some(c) = self.live_conn(conn) else {
                    return;
                };
                c.guard.as_ref().unwrap().open_stream(dir).map(|guard| {
                    self.streams.push(Stream {
                        guard,
                        conn: conn % len,
                        memory: 0,
                    });
                })
            }
            Op::SetProtocol { stream, protocol } => {
                if self.streams.is_empty() {
                    return;
                }
                let len = self.streams.len();
                self.streams[stream % len]
                    .guard
                    .set_protocol(PROTOCOLS[protocol])
            }
            Op::ReserveConnection {
                conn,
                bytes,
                priority,
            } => {
                let Some(c) = self.live_conn(conn) else {
                    return;
                };
                let result = c.guard.as_ref().unwrap().reserve_memory(bytes, priority);
                if result.is_ok() {
                    c.memory += bytes as u64;
                }
                result
            }
            Op::ReleaseConnection { conn, bytes } => {
                let Some(c) = self.live_conn(conn) else {
                    return;
                };
                c.guard.as_ref().unwrap().release_memory(bytes);
                c.memory -= (bytes as u64).min(c.memory);
                Ok(())
            }
            Op::ReserveStream {
                stream,
                bytes,
                priority,
            } => {
                if self.streams.is_empty() {
                    return;
                }
                let len = self.streams.len();
                let s = &mut self.streams[stream % len];
                let result = s.guard.reserve_memory(bytes, priority);
                if result.is_ok() {
                    s.memory += bytes as u64;
                }
                result
            }
            Op::ReleaseStream { stream, bytes } => {
                if self.streams.is_empty() {
                    return;
                }
                let len = self.streams.len();
                let s = &mut self.streams[stream % len];
                s.guard.release_memory(bytes);
                s.memory -= (bytes as u64).min(s.memory);
                Ok(())
            }
            Op::DropConnection { conn } => {
                let Some(c) = self.live_conn(conn) else {
                    return;
                };
                c.guard = None;
                c.memory = 0;
                Ok(())
            }
            Op::DropStream { stream } => {
                if !self.streams.is_empty() {
                    let len = self.streams.len();
                    self.streams.swap_remove(stream % len);
                }
                Ok(())
            }
        };
        if let Err(error) = outcome {
            assert_eq!(self.snapshot(), before, "a denial ({error}) changed usage");
            assert!(!error.to_string().is_empty());
        }
        self.check();
    }

    /// Limits hold, and the counts agree with what the test holds.
    fn check(&self) {
        let stats = self.manager.stats();
        let l = &self.limits;
        within(stats.system, l.system, "system");
        within(stats.transient, l.transient, "transient");
        within(
            stats.allowlist_system,
            l.allowlist_system,
            "allowlist system",
        );
        within(
            stats.allowlist_transient,
            l.allowlist_transient,
            "allowlist transient",
        );
        for (name, usage) in &stats.protocols {
            within(*usage, l.protocol_limit(name), name);
        }
        for (i, peer) in self.peers.iter().enumerate() {
            if let Some(usage) = self.manager.peer_usage(peer) {
                within(usage, l.peer_limit(peer), "peer");
                let conns = self
                    .conns
                    .iter()
                    .filter(|c| c.guard.is_some() && c.peer == Some(i))
                    .count() as u64;
                assert_eq!(usage.connections_total, conns, "peer connections");
                let streams = self
                    .streams
                    .iter()
                    .filter(|s| self.conns[s.conn].peer == Some(i))
                    .count() as u64;
                assert_eq!(usage.streams_total, streams, "peer streams");
            }
            for proto in PROTOCOLS {
                if let Some(usage) = self.manager.protocol_peer_usage(proto, peer) {
                    within(usage, l.protocol_peer_limit(proto), "protocol peer");
                }
            }
        }
        let live_conns = self.conns.iter().filter(|c| c.guard.is_some()).count() as u64;
        assert_eq!(
            stats.system.connections_total + stats.allowlist_system.connections_total,
            live_conns
        );
        assert_eq!(
            stats.system.streams_total + stats.allowlist_system.streams_total,
            self.streams.len() as u64
        );
        let memory: u64 = self.conns.iter().map(|c| c.memory).sum::<u64>()
            + self.streams.iter().map(|s| s.memory).sum::<u64>();
        assert_eq!(stats.system.memory + stats.allowlist_system.memory, memory);
        for (i, conn) in self.conns.iter().enumerate() {
            if let Some(guard) = &conn.guard {
                within(guard.usage(), l.connection, "connection");
                let streams: Vec<_> = self.streams.iter().filter(|s| s.conn == i).collect();
                assert_eq!(guard.usage().streams_total, streams.len() as u64);
                let stream_memory: u64 = streams.iter().map(|s| s.memory).sum();
                assert_eq!(guard.memory_used(), conn.memory + stream_memory);
                assert_eq!(guard.peer(), conn.peer.map(|p| self.peers[p]));
            }
        }
        for stream in &self.streams {
            within(stream.guard.usage(), l.stream, "stream");
            assert_eq!(stream.guard.memory_used(), stream.memory);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn usage_stays_within_limits_and_returns_to_zero(ops in proptest::collection::vec(op(), 1..120)) {
        let limits = tight_limits();
        let mut world = World {
            manager: ResourceManager::new(limits.clone()),
            limits,
            peers: [PeerId::random(), PeerId::random(), PeerId::random()],
            conns: Vec::new(),
            streams: Vec::new(),
        };
        for op in &ops {
            world.apply(op);
        }
        let manager = world.manager.clone();
        drop(world);
        let stats = manager.stats();
        prop_assert!(stats.system.is_zero(), "system leaked: {:?}", stats.system);
        prop_assert!(stats.transient.is_zero(), "transient leaked: {:?}", stats.transient);
        prop_assert!(stats.allowlist_system.is_zero());
        prop_assert!(stats.allowlist_transient.is_zero());
        prop_assert!(stats.protocols.is_empty(), "protocol scopes left: {:?}", stats.protocols);
        prop_assert_eq!(stats.peers, 0);
        prop_assert_eq!(stats.protocol_peers, 0);
    }
}
