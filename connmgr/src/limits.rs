//! Hard limits on connections, and the check that enforces one.

use std::net::IpAddr;

use multiaddr::{Multiaddr, Protocol};

use crate::{LimitError, LimitKind};

/// Hard limits; `None` means unlimited. The default limits nothing and exempts
/// loopback addresses from the per-IP limit.
///
/// Each limit is checked at the earliest moment it can be decided, so a refused
/// connection costs as little as possible:
///
/// | limit | checked in |
/// |---|---|
/// | pending inbound / outbound | `allow_inbound` / `allow_dial` |
/// | established inbound / outbound / total | both of those (early), and `established` |
/// | per peer | `allow_dial` when the peer is known (early), and `established` |
/// | per remote IP (inbound only) | `allow_inbound`, and `established` |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Inbound connections still in their handshake.
    pub max_pending_inbound: Option<usize>,
    /// Outbound dials still in their handshake.
    pub max_pending_outbound: Option<usize>,
    /// Established inbound connections.
    pub max_established_inbound: Option<usize>,
    /// Established outbound connections.
    pub max_established_outbound: Option<usize>,
    /// Established connections in both directions.
    pub max_established_total: Option<usize>,
    /// Established connections to one peer.
    pub max_established_per_peer: Option<usize>,
    /// Inbound connections, pending and established, from one remote IP address.
    /// Relayed (`/p2p-circuit`) addresses and addresses without an IP are not counted.
    pub max_inbound_per_ip: Option<usize>,
    /// Whether loopback addresses (127.0.0.0/8, ::1) escape `max_inbound_per_ip`.
    pub exempt_loopback_from_ip_limit: bool,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_pending_inbound: None,
            max_pending_outbound: None,
            max_established_inbound: None,
            max_established_outbound: None,
            max_established_total: None,
            max_established_per_peer: None,
            max_inbound_per_ip: None,
            exempt_loopback_from_ip_limit: true,
        }
    }
}

impl ConnectionLimits {
    /// Limits inbound connections still in their handshake.
    pub fn with_max_pending_inbound(mut self, limit: usize) -> Self {
        self.max_pending_inbound = Some(limit);
        self
    }

    /// Limits outbound dials still in their handshake.
    pub fn with_max_pending_outbound(mut self, limit: usize) -> Self {
        self.max_pending_outbound = Some(limit);
        self
    }

    /// Limits established inbound connections.
    pub fn with_max_established_inbound(mut self, limit: usize) -> Self {
        self.max_established_inbound = Some(limit);
        self
    }

    /// Limits established outbound connections.
    pub fn with_max_established_outbound(mut self, limit: usize) -> Self {
        self.max_established_outbound = Some(limit);
        self
    }

    /// Limits established connections in both directions.
    pub fn with_max_established_total(mut self, limit: usize) -> Self {
        self.max_established_total = Some(limit);
        self
    }

    /// Limits established connections to one peer.
    pub fn with_max_established_per_peer(mut self, limit: usize) -> Self {
        self.max_established_per_peer = Some(limit);
        self
    }

    /// Limits inbound connections from one remote IP address.
    pub fn with_max_inbound_per_ip(mut self, limit: usize) -> Self {
        self.max_inbound_per_ip = Some(limit);
        self
    }

    /// Whether loopback addresses escape the per-IP limit (default: yes).
    pub fn with_loopback_exempt(mut self, exempt: bool) -> Self {
        self.exempt_loopback_from_ip_limit = exempt;
        self
    }

    /// The IP address `remote` counts against for the per-IP limit, if any.
    pub(crate) fn counted_ip(&self, remote: &Multiaddr) -> Option<IpAddr> {
        self.max_inbound_per_ip?;
        let ip = remote_ip(remote)?;
        if self.exempt_loopback_from_ip_limit && ip.is_loopback() {
            return None;
        }
        Some(ip)
    }
}

/// The IP address a connection to `addr` goes to directly: the first `/ip4` or `/ip6`,
/// unless the address is relayed.
pub(crate) fn remote_ip(addr: &Multiaddr) -> Option<IpAddr> {
    if addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        return None;
    }
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// Refuses when `current` already reached `limit`.
pub(crate) fn check(
    limit: Option<usize>,
    current: usize,
    kind: LimitKind,
) -> Result<(), LimitError> {
    match limit {
        Some(limit) if current >= limit => Err(LimitError::Exceeded {
            kind,
            limit,
            current,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_ip_skips_relayed_and_ipless_addresses() {
        let direct: Multiaddr = "/ip4/1.2.3.4/tcp/5".parse().unwrap();
        assert_eq!(remote_ip(&direct), Some("1.2.3.4".parse().unwrap()));
        let v6: Multiaddr = "/ip6/::1/tcp/5".parse().unwrap();
        assert_eq!(remote_ip(&v6), Some("::1".parse().unwrap()));
        let relayed: Multiaddr =
            "/ip4/1.2.3.4/tcp/5/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
                .parse()
                .unwrap();
        assert_eq!(remote_ip(&relayed), None);
        let dns: Multiaddr = "/dns4/example.com/tcp/5".parse().unwrap();
        assert_eq!(remote_ip(&dns), None);
    }

    #[test]
    fn loopback_is_exempt_by_default_only() {
        let lo: Multiaddr = "/ip4/127.0.0.1/tcp/5".parse().unwrap();
        let limits = ConnectionLimits::default().with_max_inbound_per_ip(1);
        assert_eq!(limits.counted_ip(&lo), None);
        let strict = limits.with_loopback_exempt(false);
        assert_eq!(strict.counted_ip(&lo), Some("127.0.0.1".parse().unwrap()));
        // Without a per-IP limit nothing is counted.
        assert_eq!(ConnectionLimits::default().counted_ip(&lo), None);
    }

    #[test]
    fn check_refuses_at_the_limit() {
        assert!(check(None, 1_000, LimitKind::EstablishedTotal).is_ok());
        assert!(check(Some(2), 1, LimitKind::EstablishedTotal).is_ok());
        assert_eq!(
            check(Some(2), 2, LimitKind::EstablishedTotal),
            Err(LimitError::Exceeded {
                kind: LimitKind::EstablishedTotal,
                limit: 2,
                current: 2
            })
        );
    }
}
