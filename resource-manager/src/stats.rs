//! Usage snapshots for diagnostics and metrics.

use std::collections::BTreeMap;

use crate::resource::{Resource, RESOURCES};

/// What one scope uses right now, field by field like [`ScopeLimit`](crate::ScopeLimit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ScopeUsage {
    /// Bytes of memory reserved.
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

impl ScopeUsage {
    /// The usage of `resource`.
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

    /// Whether nothing is in use.
    pub fn is_zero(&self) -> bool {
        *self == ScopeUsage::default()
    }

    /// From counters indexed like [`Resource::ALL`].
    pub(crate) fn from_array(values: [u64; RESOURCES]) -> Self {
        let [memory, connections_inbound, connections_outbound, connections_total, pending_inbound, streams_inbound, streams_outbound, streams_total, fds] =
            values;
        ScopeUsage {
            memory,
            connections_inbound,
            connections_outbound,
            connections_total,
            pending_inbound,
            streams_inbound,
            streams_outbound,
            streams_total,
            fds,
        }
    }
}

/// A snapshot of a [`ResourceManager`](crate::ResourceManager)'s usage.
///
/// Each scope is read on its own, so under concurrent use the figures of different
/// scopes may be a few operations apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// The system scope.
    pub system: ScopeUsage,
    /// The transient scope.
    pub transient: ScopeUsage,
    /// The allowlist's system scope.
    pub allowlist_system: ScopeUsage,
    /// The allowlist's transient scope.
    pub allowlist_transient: ScopeUsage,
    /// Every live protocol scope, by protocol id.
    pub protocols: BTreeMap<String, ScopeUsage>,
    /// How many peer scopes are live (peers with a connection scope).
    pub peers: usize,
    /// How many protocol-peer scopes are live.
    pub protocol_peers: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_order_matches_resources() {
        let usage = ScopeUsage::from_array([1, 2, 3, 4, 5, 6, 7, 8, 9]);
        for (i, r) in Resource::ALL.iter().enumerate() {
            assert_eq!(usage.get(*r), i as u64 + 1);
        }
        assert!(!usage.is_zero());
        assert!(ScopeUsage::default().is_zero());
    }
}
