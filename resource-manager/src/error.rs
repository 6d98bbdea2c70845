//! Denials: [`ResourceError`] names the scope ([`ScopeName`]) and the [`Resource`].

use std::fmt;

use libp2p_identity::PeerId;

use crate::resource::Resource;

/// Which scope a denial came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScopeName {
    /// The whole process.
    System,
    /// Connections before their handshake ends, streams before mss ends.
    Transient,
    /// The system scope of allowlisted connections.
    AllowlistSystem,
    /// The transient scope of allowlisted connections.
    AllowlistTransient,
    /// One remote peer.
    Peer(PeerId),
    /// One connection.
    Connection,
    /// All streams of one protocol.
    Protocol(String),
    /// The streams of one protocol with one peer.
    ProtocolPeer(String),
    /// One stream.
    Stream,
}

impl ScopeName {
    /// Every [`class`](Self::class), in declaration order.
    pub const CLASSES: [&'static str; 9] = [
        "system",
        "transient",
        "allowlist_system",
        "allowlist_transient",
        "peer",
        "connection",
        "protocol",
        "protocol_peer",
        "stream",
    ];

    /// The index of [`class`](Self::class) in [`CLASSES`](Self::CLASSES).
    pub(crate) fn class_index(&self) -> usize {
        match self {
            ScopeName::System => 0,
            ScopeName::Transient => 1,
            ScopeName::AllowlistSystem => 2,
            ScopeName::AllowlistTransient => 3,
            ScopeName::Peer(_) => 4,
            ScopeName::Connection => 5,
            ScopeName::Protocol(_) => 6,
            ScopeName::ProtocolPeer(_) => 7,
            ScopeName::Stream => 8,
        }
    }

    /// A bounded label for metrics: `system`, `transient`, `allowlist_system`,
    /// `allowlist_transient`, `peer`, `connection`, `protocol`, `protocol_peer`, `stream`.
    pub fn class(&self) -> &'static str {
        match self {
            ScopeName::System => "system",
            ScopeName::Transient => "transient",
            ScopeName::AllowlistSystem => "allowlist_system",
            ScopeName::AllowlistTransient => "allowlist_transient",
            ScopeName::Peer(_) => "peer",
            ScopeName::Connection => "connection",
            ScopeName::Protocol(_) => "protocol",
            ScopeName::ProtocolPeer(_) => "protocol_peer",
            ScopeName::Stream => "stream",
        }
    }
}

impl fmt::Display for ScopeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeName::System => f.write_str("system"),
            ScopeName::Transient => f.write_str("transient"),
            ScopeName::AllowlistSystem => f.write_str("allowlist system"),
            ScopeName::AllowlistTransient => f.write_str("allowlist transient"),
            ScopeName::Peer(peer) => write!(f, "peer {peer}"),
            ScopeName::Connection => f.write_str("connection"),
            ScopeName::Protocol(protocol) => write!(f, "protocol {protocol}"),
            ScopeName::ProtocolPeer(protocol) => write!(f, "protocol {protocol} (per peer)"),
            ScopeName::Stream => f.write_str("stream"),
        }
    }
}

/// A denied reservation: the scope that refused, the resource, and the figures.
///
/// Nothing was charged anywhere: every scope on the path is as it was. Denials are
/// temporary by nature; a caller may retry once usage went down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ResourceError {
    /// The scope that refused.
    pub scope: ScopeName,
    /// The resource it ran out of.
    pub resource: Resource,
    /// How much was asked for.
    pub requested: u64,
    /// The scope's usage of `resource` when it refused.
    pub used: u64,
    /// The scope's limit of `resource`.
    pub limit: u64,
    /// What the reservation's priority allowed: `limit` except for memory reserved at a
    /// priority below 255, where it is `limit * (priority + 1) / 256`.
    pub allowed: u64,
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: cannot reserve {}: {} of {} in use",
            self.scope,
            self.resource.quantity(self.requested),
            self.used,
            self.limit
        )?;
        if self.allowed < self.limit {
            write!(f, " (this priority may use up to {})", self.allowed)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_scope_resource_and_figures() {
        let peer = PeerId::random();
        let error = ResourceError {
            scope: ScopeName::Peer(peer),
            resource: Resource::StreamsInbound,
            requested: 1,
            used: 64,
            limit: 64,
            allowed: 64,
        };
        assert_eq!(
            error.to_string(),
            format!("peer {peer}: cannot reserve 1 inbound stream: 64 of 64 in use")
        );
        let memory = ResourceError {
            scope: ScopeName::Connection,
            resource: Resource::Memory,
            requested: 4096,
            used: 1000,
            limit: 2560,
            allowed: 1020,
        };
        assert_eq!(
            memory.to_string(),
            "connection: cannot reserve 4096 bytes of memory: 1000 of 2560 in use \
             (this priority may use up to 1020)"
        );
    }

    #[test]
    fn classes_are_bounded_labels() {
        let names = [
            ScopeName::System,
            ScopeName::Transient,
            ScopeName::AllowlistSystem,
            ScopeName::AllowlistTransient,
            ScopeName::Peer(PeerId::random()),
            ScopeName::Connection,
            ScopeName::Protocol("/a".into()),
            ScopeName::ProtocolPeer("/a".into()),
            ScopeName::Stream,
        ];
        for name in &names {
            assert_eq!(ScopeName::CLASSES[name.class_index()], name.class());
        }
        let mut classes: Vec<_> = names.iter().map(ScopeName::class).collect();
        classes.sort_unstable();
        classes.dedup();
        assert_eq!(classes.len(), names.len());
        assert_eq!(
            ScopeName::Protocol("/x/1".into()).to_string(),
            "protocol /x/1"
        );
    }
}
