//! Hard limits on connections, and the check that enforces one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};

use crate::{LimitError, LimitKind};

/// Hard limits; `None` means unlimited. The default limits nothing and exempts
/// exactly `127.0.0.1` and `::1` from the per-IP limits.
///
/// The per-IP limits count IPv4 addresses one by one and IPv6 addresses by prefix
/// ([`ipv6_prefix_len`](Self::ipv6_prefix_len), /64 by default: what one subscriber
/// usually gets), so an attacker cannot get around them by taking many addresses of
/// one IPv6 subnet.
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
/// | pending per remote IP (inbound only) | `allow_inbound` |
/// | relayed per relay (inbound only) | `allow_inbound`, and `established` |
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
    /// Relayed (`/p2p-circuit`) addresses and addresses without an IP are not counted
    /// (relayed ones count against [`max_relayed_inbound_per_relay`](Self::max_relayed_inbound_per_relay)).
    pub max_inbound_per_ip: Option<usize>,
    /// Inbound connections still in their handshake from one remote IP address (or
    /// IPv6 prefix).
    pub max_pending_inbound_per_ip: Option<usize>,
    /// Inbound relayed (`/p2p-circuit`) connections, pending and established, through
    /// one relay (the `/p2p/<relay>` before `/p2p-circuit` in the remote address):
    /// the relay stands in for the IP address its circuits hide, so many circuits
    /// through one relay cannot take every inbound slot.
    pub max_relayed_inbound_per_relay: Option<usize>,
    /// IPv6 addresses sharing this many leading bits count as one address for the
    /// per-IP limits (default 64; 128 counts each address alone).
    pub ipv6_prefix_len: u8,
    /// Whether exactly `127.0.0.1` and `::1` escape the per-IP limits. Other
    /// loopback addresses (`127.0.0.2`, ...) are counted, so tests can play attackers
    /// from them.
    pub exempt_loopback_from_ip_limit: bool,
}

/// The default IPv6 prefix length of the per-IP limits.
pub const DEFAULT_IPV6_PREFIX_LEN: u8 = 64;

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
            max_pending_inbound_per_ip: None,
            max_relayed_inbound_per_relay: None,
            ipv6_prefix_len: DEFAULT_IPV6_PREFIX_LEN,
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

    /// Limits inbound connections in their handshake from one remote IP address.
    pub fn with_max_pending_inbound_per_ip(mut self, limit: usize) -> Self {
        self.max_pending_inbound_per_ip = Some(limit);
        self
    }

    /// Limits inbound relayed connections, pending and established, through one
    /// relay.
    pub fn with_max_relayed_inbound_per_relay(mut self, limit: usize) -> Self {
        self.max_relayed_inbound_per_relay = Some(limit);
        self
    }

    /// Groups IPv6 addresses by their first `bits` bits for the per-IP limits
    /// (clamped to 0..=128).
    pub fn with_ipv6_prefix_len(mut self, bits: u8) -> Self {
        self.ipv6_prefix_len = bits.min(128);
        self
    }

    /// Whether `127.0.0.1` and `::1` escape the per-IP limits (default: yes).
    pub fn with_loopback_exempt(mut self, exempt: bool) -> Self {
        self.exempt_loopback_from_ip_limit = exempt;
        self
    }

    /// The key `remote` counts against for the per-IP limits, if any: its IPv4
    /// address, or its IPv6 address masked to the prefix.
    pub(crate) fn counted_ip(&self, remote: &Multiaddr) -> Option<IpAddr> {
        if self.max_inbound_per_ip.is_none() && self.max_pending_inbound_per_ip.is_none() {
            return None;
        }
        let ip = remote_ip(remote)?;
        let exempt = ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST);
        if self.exempt_loopback_from_ip_limit && exempt {
            return None;
        }
        Some(ip_group(ip, self.ipv6_prefix_len))
    }
}

impl ConnectionLimits {
    /// The relay `remote` counts against for the per-relay limit, if any: the peer
    /// id just before the first `/p2p-circuit` of a relayed address.
    pub(crate) fn counted_relay(&self, remote: &Multiaddr) -> Option<PeerId> {
        self.max_relayed_inbound_per_relay?;
        relay_of(remote)
    }
}

/// The relay of a relayed address: the `/p2p/<relay>` just before its first
/// `/p2p-circuit`; `None` for a direct address or one that does not name its relay.
pub(crate) fn relay_of(addr: &Multiaddr) -> Option<PeerId> {
    let mut relay = None;
    for p in addr.iter() {
        match p {
            Protocol::P2pCircuit => return relay,
            Protocol::P2p(peer) => relay = Some(peer),
            _ => relay = None,
        }
    }
    None
}

/// The address an IP counts as for the per-IP limits: IPv4 (and IPv4-mapped IPv6) as
/// itself, IPv6 masked to its first `prefix_len` bits.
pub fn ip_group(ip: IpAddr, prefix_len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u32::from(prefix_len.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
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
    fn only_127_0_0_1_and_v6_loopback_are_exempt_by_default() {
        let lo: Multiaddr = "/ip4/127.0.0.1/tcp/5".parse().unwrap();
        let lo6: Multiaddr = "/ip6/::1/tcp/5".parse().unwrap();
        let other: Multiaddr = "/ip4/127.0.0.2/tcp/5".parse().unwrap();
        let limits = ConnectionLimits::default().with_max_inbound_per_ip(1);
        assert_eq!(limits.counted_ip(&lo), None);
        assert_eq!(limits.counted_ip(&lo6), None);
        assert_eq!(
            limits.counted_ip(&other),
            Some("127.0.0.2".parse().unwrap())
        );
        let strict = limits.with_loopback_exempt(false);
        assert_eq!(strict.counted_ip(&lo), Some("127.0.0.1".parse().unwrap()));
        // Without a per-IP limit nothing is counted.
        assert_eq!(ConnectionLimits::default().counted_ip(&lo), None);
        let pending_only = ConnectionLimits::default().with_max_pending_inbound_per_ip(1);
        assert_eq!(
            pending_only.counted_ip(&other),
            Some("127.0.0.2".parse().unwrap())
        );
    }

    #[test]
    fn ipv6_addresses_are_grouped_by_prefix() {
        let limits = ConnectionLimits::default().with_max_inbound_per_ip(1);
        let a: Multiaddr = "/ip6/2001:db8:1:2:aaaa::1/tcp/5".parse().unwrap();
        let b: Multiaddr = "/ip6/2001:db8:1:2:ffff:1:2:3/tcp/5".parse().unwrap();
        let c: Multiaddr = "/ip6/2001:db8:1:3::1/tcp/5".parse().unwrap();
        let key = |m: &Multiaddr| limits.counted_ip(m).unwrap();
        // The same /64: one key, the network address.
        assert_eq!(key(&a), key(&b));
        assert_eq!(key(&a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        // Another /64: another key.
        assert_ne!(key(&a), key(&c));
        // A /48 puts all three together; /128 keeps each alone.
        let wide = limits.clone().with_ipv6_prefix_len(48);
        assert_eq!(wide.counted_ip(&a), wide.counted_ip(&c));
        let exact = limits.clone().with_ipv6_prefix_len(200);
        assert_eq!(exact.ipv6_prefix_len, 128);
        assert_ne!(exact.counted_ip(&a), exact.counted_ip(&b));
        // IPv4 and IPv4-mapped IPv6 count as the IPv4 address.
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(ip_group(mapped, 64), v4);
        assert_eq!(ip_group(v4, 0), v4);
        assert_eq!(
            ip_group("2001:db8::1".parse().unwrap(), 0),
            "::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn relayed_addresses_count_against_the_relay_that_carries_them() {
        let relay: PeerId = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
            .parse()
            .unwrap();
        let through: Multiaddr = format!("/ip4/1.2.3.4/tcp/5/p2p/{relay}/p2p-circuit")
            .parse()
            .unwrap();
        let limits = ConnectionLimits::default().with_max_relayed_inbound_per_relay(4);
        assert_eq!(limits.counted_relay(&through), Some(relay));
        // With the target's id after it, still the relay.
        let dialed = through.clone().with(Protocol::P2p(PeerId::random()));
        assert_eq!(limits.counted_relay(&dialed), Some(relay));
        // Direct addresses, and a circuit that does not name its relay, count nowhere.
        let direct: Multiaddr = format!("/ip4/1.2.3.4/tcp/5/p2p/{relay}").parse().unwrap();
        assert_eq!(limits.counted_relay(&direct), None);
        let anonymous: Multiaddr = "/ip4/1.2.3.4/tcp/5/p2p-circuit".parse().unwrap();
        assert_eq!(limits.counted_relay(&anonymous), None);
        // Without the limit nothing is counted.
        assert_eq!(ConnectionLimits::default().counted_relay(&through), None);
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
