//! Why a connection was refused.

use std::fmt;
use std::net::IpAddr;

use libp2p_identity::PeerId;

/// Which hard limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// Inbound connections still in their handshake.
    PendingInbound,
    /// Outbound dials still in their handshake.
    PendingOutbound,
    /// Established inbound connections.
    EstablishedInbound,
    /// Established outbound connections.
    EstablishedOutbound,
    /// Established connections in both directions.
    EstablishedTotal,
    /// Established connections to one peer.
    EstablishedPerPeer(PeerId),
    /// Inbound connections (pending and established) from one remote IP address
    /// (an IPv6 address stands for its prefix).
    PerIp(IpAddr),
    /// Inbound connections in their handshake from one remote IP address (an IPv6
    /// address stands for its prefix).
    PendingPerIp(IpAddr),
    /// Inbound relayed connections (pending and established) through one relay.
    RelayedPerRelay(PeerId),
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitKind::PendingInbound => f.write_str("pending inbound connections"),
            LimitKind::PendingOutbound => f.write_str("pending outbound connections"),
            LimitKind::EstablishedInbound => f.write_str("established inbound connections"),
            LimitKind::EstablishedOutbound => f.write_str("established outbound connections"),
            LimitKind::EstablishedTotal => f.write_str("established connections"),
            LimitKind::EstablishedPerPeer(peer) => {
                write!(f, "established connections to peer {peer}")
            }
            LimitKind::PerIp(ip) => write!(f, "inbound connections from {ip}"),
            LimitKind::PendingPerIp(ip) => write!(f, "pending inbound connections from {ip}"),
            LimitKind::RelayedPerRelay(relay) => {
                write!(f, "inbound relayed connections through {relay}")
            }
        }
    }
}

/// A connection refused by a [`ConnectionPolicy`](crate::ConnectionPolicy).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// A hard limit is reached: `current` connections of this kind exist, at most
    /// `limit` are allowed.
    #[error("limit on {kind} reached: {current} open, at most {limit} allowed")]
    Exceeded {
        /// Which limit.
        kind: LimitKind,
        /// The configured maximum.
        limit: usize,
        /// How many were open when the connection was refused.
        current: usize,
    },
    /// A custom policy refused the connection for its own reason.
    #[error("connection denied by policy: {reason}")]
    Denied {
        /// Why, in words for logs and the dialer.
        reason: String,
    },
}

impl LimitError {
    /// The limit that refused the connection, if a hard limit did.
    pub fn kind(&self) -> Option<LimitKind> {
        match self {
            LimitError::Exceeded { kind, .. } => Some(*kind),
            LimitError::Denied { .. } => None,
        }
    }
}

/// A manager configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The low watermark is above the high watermark.
    #[error("low watermark {low} is above high watermark {high}")]
    Watermarks {
        /// The low watermark given.
        low: usize,
        /// The high watermark given.
        high: usize,
    },
    /// A decaying tag needs a non-zero interval.
    #[error("decaying tag {0:?} has a zero interval")]
    ZeroInterval(String),
    /// A decaying tag with this name is already registered.
    #[error("decaying tag {0:?} is already registered")]
    DuplicateTag(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_names_limit_value_and_count() {
        let err = LimitError::Exceeded {
            kind: LimitKind::PendingInbound,
            limit: 4,
            current: 4,
        };
        assert_eq!(
            err.to_string(),
            "limit on pending inbound connections reached: 4 open, at most 4 allowed"
        );
        assert_eq!(err.kind(), Some(LimitKind::PendingInbound));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let err = LimitError::Exceeded {
            kind: LimitKind::PerIp(ip),
            limit: 1,
            current: 1,
        };
        assert!(err.to_string().contains("10.0.0.1"));
    }
}
