//! Limits: one [`ScopeLimit`] per scope class, scaled from the one knob (the memory and
//! file descriptors weft may use), with per-protocol and per-peer overrides.

use std::collections::HashMap;

use libp2p_identity::PeerId;

use crate::allowlist::Allowlist;
use crate::machine::Machine;
use crate::resource::{Resource, RESOURCES};

/// One mebibyte.
const MIB: u64 = 1 << 20;
/// One gibibyte.
const GIB: u64 = 1 << 30;

/// The least system memory [`Limits::auto`] gives weft, however small the machine.
pub const AUTO_MIN_MEMORY: u64 = 256 * MIB;

/// The limits of one scope. `u64::MAX` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScopeLimit {
    /// Bytes of memory.
    pub memory: u64,
    /// Inbound connections.
    pub connections_inbound: u64,
    /// Outbound connections.
    pub connections_outbound: u64,
    /// Connections in either direction.
    pub connections_total: u64,
    /// Inbound connections whose handshake has not finished.
    pub pending_inbound: u64,
    /// Inbound streams.
    pub streams_inbound: u64,
    /// Outbound streams.
    pub streams_outbound: u64,
    /// Streams in either direction.
    pub streams_total: u64,
    /// File descriptors.
    pub fds: u64,
}

impl ScopeLimit {
    /// No limit on anything.
    pub const UNLIMITED: ScopeLimit = ScopeLimit {
        memory: u64::MAX,
        connections_inbound: u64::MAX,
        connections_outbound: u64::MAX,
        connections_total: u64::MAX,
        pending_inbound: u64::MAX,
        streams_inbound: u64::MAX,
        streams_outbound: u64::MAX,
        streams_total: u64::MAX,
        fds: u64::MAX,
    };

    /// No limit on anything (the same as [`ScopeLimit::UNLIMITED`]).
    pub fn unlimited() -> Self {
        Self::UNLIMITED
    }

    /// The limit of `resource`.
    pub fn get(&self, resource: Resource) -> u64 {
        match resource {
            Resource::Memory => self.memory,
            Resource::ConnectionsInbound => self.connections_inbound,
            Resource::ConnectionsOutbound => self.connections_outbound,
            Resource::ConnectionsTotal => self.connections_total,
            Resource::PendingInbound => self.pending_inbound,
            Resource::StreamsInbound => self.streams_inbound,
            Resource::StreamsOutbound => self.streams_outbound,
            Resource::StreamsTotal => self.streams_total,
            Resource::FileDescriptors => self.fds,
        }
    }

    /// All limits, indexed like [`Resource::ALL`].
    pub(crate) fn to_array(self) -> [u64; RESOURCES] {
        Resource::ALL.map(|r| self.get(r))
    }

    /// With `memory` bytes of memory.
    pub fn with_memory(mut self, memory: u64) -> Self {
        self.memory = memory;
        self
    }

    /// With these connection limits (inbound, outbound, total).
    pub fn with_connections(mut self, inbound: u64, outbound: u64, total: u64) -> Self {
        self.connections_inbound = inbound;
        self.connections_outbound = outbound;
        self.connections_total = total;
        self
    }

    /// With at most `pending` unfinished inbound connections.
    pub fn with_pending_inbound(mut self, pending: u64) -> Self {
        self.pending_inbound = pending;
        self
    }

    /// With these stream limits (inbound, outbound, total).
    pub fn with_streams(mut self, inbound: u64, outbound: u64, total: u64) -> Self {
        self.streams_inbound = inbound;
        self.streams_outbound = outbound;
        self.streams_total = total;
        self
    }

    /// With at most `inbound` inbound streams (the other stream limits unchanged).
    pub fn with_streams_inbound(mut self, inbound: u64) -> Self {
        self.streams_inbound = inbound;
        self
    }

    /// With at most `fds` file descriptors.
    pub fn with_fds(mut self, fds: u64) -> Self {
        self.fds = fds;
        self
    }
}

/// `base + increase * memory / 1 GiB`, saturating.
fn per_gib(base: u64, increase: u64, memory: u64) -> u64 {
    let grown = u128::from(increase) * u128::from(memory) / u128::from(GIB);
    base.saturating_add(u64::try_from(grown).unwrap_or(u64::MAX))
}

/// The limits of every scope of a [`ResourceManager`](crate::ResourceManager).
///
/// Build them with [`Limits::auto`] (this machine) or [`Limits::scaled`] (the one knob),
/// then adjust fields or add overrides with the `with_*` setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The whole process.
    pub system: ScopeLimit,
    /// Connections before their handshake ends and streams before mss ends.
    pub transient: ScopeLimit,
    /// The system scope of allowlisted connections, used when [`system`](Self::system)
    /// or [`transient`](Self::transient) deny: a reserve on top of them.
    pub allowlist_system: ScopeLimit,
    /// The transient scope of allowlisted connections.
    pub allowlist_transient: ScopeLimit,
    /// The default of every peer scope.
    pub peer: ScopeLimit,
    /// Every connection scope.
    pub connection: ScopeLimit,
    /// Every stream scope.
    pub stream: ScopeLimit,
    /// The default of every protocol scope (all streams of one protocol).
    pub protocol: ScopeLimit,
    /// The default of every protocol-peer scope (the streams of one protocol with one peer).
    pub protocol_peer: ScopeLimit,
    /// Protocol scopes that differ from [`protocol`](Self::protocol), by protocol id.
    pub protocols: HashMap<String, ScopeLimit>,
    /// Protocol-peer scopes that differ from [`protocol_peer`](Self::protocol_peer), by
    /// protocol id (applies to every peer of that protocol).
    pub protocol_peers: HashMap<String, ScopeLimit>,
    /// Peer scopes that differ from [`peer`](Self::peer).
    pub peers: HashMap<PeerId, ScopeLimit>,
    /// Trusted addresses and peer ids.
    pub allowlist: Allowlist,
}

impl Limits {
    /// Scaled to this machine: weft may use 1/8 of its memory (at least
    /// [`AUTO_MIN_MEMORY`]) and 1/2 of the soft open-files limit. See [`Limits::scaled`].
    pub fn auto() -> Self {
        Self::for_machine(Machine::detect())
    }

    /// [`Limits::auto`] for the given machine facts.
    pub fn for_machine(machine: Machine) -> Self {
        let memory = (machine.memory / 8).max(AUTO_MIN_MEMORY);
        Self::scaled(memory, machine.fds / 2)
    }

    /// THE one knob: every limit scaled from the `memory` bytes and `fds` file descriptors
    /// weft may use (a base plus an increase per GiB of `memory`, go-libp2p style; fd
    /// limits are shares of `fds`). The figures are in the crate README.
    pub fn scaled(memory: u64, fds: u64) -> Self {
        // Each direction: 1024 + 2048 per GiB, and at least one per fd weft may use.
        let connections = per_gib(1024, 2048, memory).max(fds);
        let system = ScopeLimit {
            memory,
            connections_inbound: connections,
            connections_outbound: connections,
            connections_total: connections.saturating_mul(2),
            pending_inbound: 128,
            streams_inbound: per_gib(8192, 1024, memory),
            streams_outbound: per_gib(8192, 1024, memory),
            streams_total: per_gib(16384, 2048, memory),
            fds,
        };
        let transient = ScopeLimit {
            memory: memory / 4,
            connections_inbound: 256,
            connections_outbound: 256,
            connections_total: 256,
            pending_inbound: 128,
            streams_inbound: 1024,
            streams_outbound: 1024,
            streams_total: 1024,
            fds: fds / 4,
        };
        let allowlist_system = ScopeLimit {
            memory: memory / 8,
            connections_inbound: 256,
            connections_outbound: 256,
            connections_total: 256,
            pending_inbound: 64,
            streams_inbound: 2048,
            streams_outbound: 2048,
            streams_total: 4096,
            fds: fds / 8,
        };
        let allowlist_transient = ScopeLimit {
            memory: memory / 32,
            connections_inbound: 64,
            connections_outbound: 64,
            connections_total: 64,
            pending_inbound: 64,
            streams_inbound: 256,
            streams_outbound: 256,
            streams_total: 256,
            fds: fds / 16,
        };
        let peer = ScopeLimit {
            memory: 128 * MIB,
            // A peer id costs nothing to make: what one peer may hold is bounded by its
            // memory and streams, not by a connection count (see the README).
            connections_inbound: system.connections_inbound,
            connections_outbound: system.connections_outbound,
            connections_total: system.connections_total,
            pending_inbound: u64::MAX,
            streams_inbound: 1024,
            streams_outbound: 2048,
            streams_total: 3072,
            fds: u64::MAX,
        };
        let connection = ScopeLimit {
            memory: 128 * MIB,
            connections_inbound: 1,
            connections_outbound: 1,
            connections_total: 1,
            pending_inbound: 1,
            streams_inbound: 512,
            streams_outbound: 512,
            streams_total: 1024,
            fds: 1,
        };
        let stream = ScopeLimit {
            memory: 128 * MIB,
            streams_inbound: 1,
            streams_outbound: 1,
            streams_total: 1,
            ..ScopeLimit::UNLIMITED
        };
        let protocol = ScopeLimit {
            streams_inbound: system.streams_inbound / 2,
            ..ScopeLimit::UNLIMITED
        };
        let protocol_peer = ScopeLimit {
            streams_inbound: 512,
            ..ScopeLimit::UNLIMITED
        };
        Limits {
            system,
            transient,
            allowlist_system,
            allowlist_transient,
            peer,
            connection,
            stream,
            protocol,
            protocol_peer,
            protocols: HashMap::new(),
            protocol_peers: HashMap::new(),
            peers: HashMap::new(),
            allowlist: Allowlist::new(),
        }
    }

    /// With `limit` for the protocol scope of `protocol` (all its streams).
    pub fn with_protocol(mut self, protocol: impl Into<String>, limit: ScopeLimit) -> Self {
        self.protocols.insert(protocol.into(), limit);
        self
    }

    /// With `limit` for each peer's share of `protocol` (its protocol-peer scopes).
    pub fn with_protocol_peer(mut self, protocol: impl Into<String>, limit: ScopeLimit) -> Self {
        self.protocol_peers.insert(protocol.into(), limit);
        self
    }

    /// With `limit` for the peer scope of `peer`.
    pub fn with_peer(mut self, peer: PeerId, limit: ScopeLimit) -> Self {
        self.peers.insert(peer, limit);
        self
    }

    /// With `allowlist` as the trusted addresses and peer ids.
    pub fn with_allowlist(mut self, allowlist: Allowlist) -> Self {
        self.allowlist = allowlist;
        self
    }

    /// The limit of the peer scope of `peer`: its override, else unlimited for an
    /// allowlisted peer id, else the default [`peer`](Self::peer).
    pub fn peer_limit(&self, peer: &PeerId) -> ScopeLimit {
        match self.peers.get(peer) {
            Some(limit) => *limit,
            None if self.allowlist.contains_peer(peer) => ScopeLimit::UNLIMITED,
            None => self.peer,
        }
    }

    /// The limit of the protocol scope of `protocol`.
    pub fn protocol_limit(&self, protocol: &str) -> ScopeLimit {
        self.protocols
            .get(protocol)
            .copied()
            .unwrap_or(self.protocol)
    }

    /// The limit of each protocol-peer scope of `protocol`.
    pub fn protocol_peer_limit(&self, protocol: &str) -> ScopeLimit {
        self.protocol_peers
            .get(protocol)
            .copied()
            .unwrap_or(self.protocol_peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_keeps_the_agreed_defaults_as_floors() {
        let limits = Limits::scaled(256 * MIB, 512);
        assert_eq!(limits.system.memory, 256 * MIB);
        assert_eq!(limits.system.connections_inbound, 1024 + 512);
        assert_eq!(limits.system.connections_total, 2 * (1024 + 512));
        assert_eq!(limits.system.pending_inbound, 128);
        assert_eq!(limits.system.streams_inbound, 8192 + 256);
        assert_eq!(limits.system.fds, 512);
        assert_eq!(limits.transient.fds, 128);
        assert_eq!(limits.transient.connections_total, 256);
        assert_eq!(limits.transient.streams_total, 1024);
        assert_eq!(limits.peer.memory, 128 * MIB);
        assert_eq!(
            limits.peer.connections_total,
            limits.system.connections_total
        );
        assert_eq!(limits.peer.streams_inbound, 1024);
        assert_eq!(limits.peer.streams_outbound, 2048);
        assert_eq!(limits.connection.memory, 128 * MIB);
        assert_eq!(limits.connection.streams_inbound, 512);
        assert_eq!(limits.connection.streams_outbound, 512);
        assert_eq!(limits.protocol_peer.streams_inbound, 512);
        let zero = Limits::scaled(0, 0);
        assert_eq!(zero.system.connections_inbound, 1024);
        assert_eq!(zero.system.connections_total, 2048);
        assert_eq!(zero.system.streams_outbound, 8192);
    }

    #[test]
    fn scaled_grows_per_gib() {
        let small = Limits::scaled(GIB, 1000);
        let big = Limits::scaled(4 * GIB, 1000);
        assert_eq!(small.system.connections_inbound, 3072);
        assert_eq!(big.system.connections_inbound, 1024 + 4 * 2048);
        // Never fewer connections than fds.
        let many_fds = Limits::scaled(GIB, 50_000);
        assert_eq!(many_fds.system.connections_outbound, 50_000);
        assert_eq!(big.system.streams_total, 16384 + 4 * 2048);
        assert_eq!(big.protocol.streams_inbound, big.system.streams_inbound / 2);
        let huge = Limits::scaled(u64::MAX, u64::MAX);
        assert_eq!(huge.system.memory, u64::MAX);
        assert!(huge.system.connections_total > 2048);
    }

    #[test]
    fn auto_takes_an_eighth_of_memory_and_half_the_fds() {
        let limits = Limits::for_machine(Machine {
            memory: 16 * GIB,
            fds: 1024,
        });
        assert_eq!(limits.system.memory, 2 * GIB);
        assert_eq!(limits.system.fds, 512);
        let tiny = Limits::for_machine(Machine {
            memory: 512 * MIB,
            fds: 256,
        });
        assert_eq!(tiny.system.memory, AUTO_MIN_MEMORY);
        assert_eq!(tiny.system.fds, 128);
        let here = Limits::auto();
        assert!(here.system.memory >= AUTO_MIN_MEMORY);
    }

    #[test]
    fn overrides_win_over_defaults() {
        let peer = PeerId::random();
        let limits = Limits::scaled(GIB, 1024)
            .with_protocol(
                "/echo/1.0.0",
                ScopeLimit::unlimited().with_streams_inbound(4),
            )
            .with_protocol_peer(
                "/echo/1.0.0",
                ScopeLimit::unlimited().with_streams_inbound(1),
            )
            .with_peer(peer, ScopeLimit::unlimited().with_memory(MIB));
        assert_eq!(limits.protocol_limit("/echo/1.0.0").streams_inbound, 4);
        assert_eq!(
            limits.protocol_limit("/other").streams_inbound,
            limits.protocol.streams_inbound
        );
        assert_eq!(limits.protocol_peer_limit("/echo/1.0.0").streams_inbound, 1);
        assert_eq!(limits.protocol_peer_limit("/other").streams_inbound, 512);
        assert_eq!(limits.peer_limit(&peer).memory, MIB);
        let trusted = PeerId::random();
        let limits = limits.with_allowlist(Allowlist::new().with_peer(trusted));
        assert_eq!(limits.peer_limit(&trusted), ScopeLimit::UNLIMITED);
        assert_eq!(limits.peer_limit(&PeerId::random()), limits.peer);
    }

    #[test]
    fn scope_limit_setters_and_array() {
        let limit = ScopeLimit::unlimited()
            .with_connections(1, 2, 3)
            .with_streams(4, 5, 6)
            .with_pending_inbound(7)
            .with_fds(8)
            .with_memory(9);
        assert_eq!(limit.to_array(), [9, 1, 2, 3, 7, 4, 5, 6, 8]);
    }
}
