//! Identifiers and directions of connections.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies one connection for its whole life, from the first limit check to its close.
///
/// The host allocates ids (usually with [`ConnectionId::next`]) and hands the same id to
/// [`ConnectionPolicy::established`](crate::ConnectionPolicy::established),
/// [`closed`](crate::ConnectionPolicy::closed) and
/// [`stream_count_changed`](crate::ConnectionPolicy::stream_count_changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(u64);

/// The process-wide source of [`ConnectionId::next`].
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

impl ConnectionId {
    /// A fresh id, unique within this process.
    pub fn next() -> ConnectionId {
        ConnectionId(NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed))
    }

    /// An id from a number the caller chose (the caller keeps them unique).
    pub const fn from_raw(raw: u64) -> ConnectionId {
        ConnectionId(raw)
    }

    /// The number behind this id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

/// Who opened the transport connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// The remote dialed us.
    Inbound,
    /// We dialed the remote.
    Outbound,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_ids_are_distinct_and_increasing() {
        let a = ConnectionId::next();
        let b = ConnectionId::next();
        assert!(b.get() > a.get());
        assert_ne!(a, b);
        assert_eq!(ConnectionId::from_raw(7).get(), 7);
        assert_eq!(ConnectionId::from_raw(7).to_string(), "conn-7");
    }
}
