//! What a scope counts: [`Resource`], and the [`Direction`] of a connection or stream.

use std::fmt;

/// Who opened a connection or a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The remote opened it.
    Inbound,
    /// We opened it.
    Outbound,
}

/// One kind of resource a scope counts and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// Bytes of memory reserved before they are allocated.
    Memory,
    /// Connections the remote opened.
    ConnectionsInbound,
    /// Connections we opened.
    ConnectionsOutbound,
    /// Connections in either direction.
    ConnectionsTotal,
    /// Inbound connections whose handshake has not finished.
    PendingInbound,
    /// Streams the remote opened.
    StreamsInbound,
    /// Streams we opened.
    StreamsOutbound,
    /// Streams in either direction.
    StreamsTotal,
    /// File descriptors (sockets).
    FileDescriptors,
}

/// How many kinds of [`Resource`] there are.
pub(crate) const RESOURCES: usize = 9;

impl Resource {
    /// Every resource, in index order.
    pub const ALL: [Resource; RESOURCES] = [
        Resource::Memory,
        Resource::ConnectionsInbound,
        Resource::ConnectionsOutbound,
        Resource::ConnectionsTotal,
        Resource::PendingInbound,
        Resource::StreamsInbound,
        Resource::StreamsOutbound,
        Resource::StreamsTotal,
        Resource::FileDescriptors,
    ];

    /// A bounded, stable label for metrics (`blocked_resources{resource=...}`).
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::ConnectionsInbound => "connections_inbound",
            Resource::ConnectionsOutbound => "connections_outbound",
            Resource::ConnectionsTotal => "connections_total",
            Resource::PendingInbound => "pending_inbound",
            Resource::StreamsInbound => "streams_inbound",
            Resource::StreamsOutbound => "streams_outbound",
            Resource::StreamsTotal => "streams_total",
            Resource::FileDescriptors => "fds",
        }
    }

    /// The index of this resource in per-scope counter arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// `count` of this resource in words: "1 inbound stream", "4096 bytes of memory".
    pub(crate) fn quantity(self, count: u64) -> String {
        let (one, many) = match self {
            Resource::Memory => ("byte of memory", "bytes of memory"),
            Resource::ConnectionsInbound => ("inbound connection", "inbound connections"),
            Resource::ConnectionsOutbound => ("outbound connection", "outbound connections"),
            Resource::ConnectionsTotal => ("connection", "connections"),
            Resource::PendingInbound => {
                ("pending inbound connection", "pending inbound connections")
            }
            Resource::StreamsInbound => ("inbound stream", "inbound streams"),
            Resource::StreamsOutbound => ("outbound stream", "outbound streams"),
            Resource::StreamsTotal => ("stream", "streams"),
            Resource::FileDescriptors => ("file descriptor", "file descriptors"),
        };
        format!("{count} {}", if count == 1 { one } else { many })
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_follow_all() {
        for (i, r) in Resource::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn quantities_read_well() {
        assert_eq!(Resource::StreamsInbound.quantity(1), "1 inbound stream");
        assert_eq!(Resource::Memory.quantity(4096), "4096 bytes of memory");
        assert_eq!(Resource::FileDescriptors.quantity(2), "2 file descriptors");
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<_> = Resource::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Resource::ALL.len());
    }
}
