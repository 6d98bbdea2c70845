//! The address classifier: which kind of network an IP address (or the IP address
//! at the start of a multiaddr) belongs to.
//!
//! The dial ranker uses it to decide whether a peer is local (dial its loopback and
//! private addresses first) or remote (its private addresses are probably someone
//! else's network: dial them last). A [`Classifier`] can be told to take some
//! classes as public: tests inside network namespaces use the documentation and
//! benchmarking ranges as if they were the internet.

use multiaddr::{Multiaddr, Protocol};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The kind of network an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddrClass {
    /// `127.0.0.0/8`, `::1`: this machine.
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16` (RFC 1918), `fc00::/7` (unique local, RFC 4193).
    Private,
    /// `169.254/16`, `fe80::/10`: one link only.
    LinkLocal,
    /// `100.64/10` (RFC 6598, carrier-grade NAT).
    Shared,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`: examples in
    /// documents, never routed.
    Documentation,
    /// `198.18/15`, `2001:2::/48`: network benchmarking, never routed.
    Benchmarking,
    /// `0.0.0.0`, `::`, multicast, broadcast, `240/4` and other addresses no peer
    /// can be reached at.
    Unusable,
    /// Everything else: reachable over the internet.
    Public,
    /// A name (`/dns*`, `/dnsaddr`) or a non-IP address (`/memory`): no class until
    /// resolved.
    Name,
}

impl AddrClass {
    /// Whether this class is on this machine or a local network: loopback, private,
    /// link-local or shared (CGNAT).
    pub fn is_local(self) -> bool {
        matches!(
            self,
            AddrClass::Loopback | AddrClass::Private | AddrClass::LinkLocal | AddrClass::Shared
        )
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    u128::from(ip) & mask == u128::from(net) & mask
}

/// The class of an IPv4 address.
pub fn classify_v4(ip: Ipv4Addr) -> AddrClass {
    if ip.is_loopback() {
        AddrClass::Loopback
    } else if ip.is_private() {
        AddrClass::Private
    } else if ip.is_link_local() {
        AddrClass::LinkLocal
    } else if in_v4(ip, [100, 64, 0, 0], 10) {
        AddrClass::Shared
    } else if in_v4(ip, [192, 0, 2, 0], 24)
        || in_v4(ip, [198, 51, 100, 0], 24)
        || in_v4(ip, [203, 0, 113, 0], 24)
    {
        AddrClass::Documentation
    } else if in_v4(ip, [198, 18, 0, 0], 15) {
        AddrClass::Benchmarking
    } else if ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || in_v4(ip, [0, 0, 0, 0], 8)
        || in_v4(ip, [240, 0, 0, 0], 4)
    {
        AddrClass::Unusable
    } else {
        AddrClass::Public
    }
}

/// The class of an IPv6 address. IPv4-mapped addresses (`::ffff:a.b.c.d`) take the
/// class of their IPv4 address.
pub fn classify_v6(ip: Ipv6Addr) -> AddrClass {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if ip.is_loopback() {
        AddrClass::Loopback
    } else if in_v6(ip, Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7) {
        AddrClass::Private
    } else if in_v6(ip, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10) {
        AddrClass::LinkLocal
    } else if in_v6(ip, Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32) {
        AddrClass::Documentation
    } else if in_v6(ip, Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 0), 48) {
        AddrClass::Benchmarking
    } else if ip.is_unspecified() || ip.is_multicast() {
        AddrClass::Unusable
    } else {
        AddrClass::Public
    }
}

/// The class of an IP address.
pub fn classify_ip(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Classifies addresses, optionally taking some classes as public.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classifier {
    as_public: Vec<AddrClass>,
}

impl Classifier {
    /// The classifier of the real internet: every class as [`classify_ip`] says.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `classes` as [`AddrClass::Public`] (for tests inside network
    /// namespaces that use the documentation and benchmarking ranges as the
    /// internet).
    pub fn with_public(mut self, classes: &[AddrClass]) -> Self {
        self.as_public.extend_from_slice(classes);
        self
    }

    /// The class of an IP address, overrides applied.
    pub fn ip(&self, ip: IpAddr) -> AddrClass {
        let class = classify_ip(ip);
        if self.as_public.contains(&class) {
            AddrClass::Public
        } else {
            class
        }
    }

    /// The class of the IP address a multiaddr starts with; [`AddrClass::Name`] for
    /// a name or a non-IP address.
    pub fn addr(&self, addr: &Multiaddr) -> AddrClass {
        leading_ip(addr).map_or(AddrClass::Name, |ip| self.ip(ip))
    }
}

/// The IP address a multiaddr starts with, if it starts with one.
pub(crate) fn leading_ip(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[(&str, AddrClass)] = &[
        ("127.0.0.1", AddrClass::Loopback),
        ("127.255.0.9", AddrClass::Loopback),
        ("::1", AddrClass::Loopback),
        ("::ffff:127.0.0.1", AddrClass::Loopback),
        ("10.1.2.3", AddrClass::Private),
        ("172.16.0.1", AddrClass::Private),
        ("172.31.255.255", AddrClass::Private),
        ("172.32.0.1", AddrClass::Public),
        ("192.168.1.1", AddrClass::Private),
        ("fd12:3456::1", AddrClass::Private),
        ("fc00::1", AddrClass::Private),
        ("169.254.3.4", AddrClass::LinkLocal),
        ("fe80::1", AddrClass::LinkLocal),
        ("febf::1", AddrClass::LinkLocal),
        ("fec0::1", AddrClass::Public),
        ("100.64.0.1", AddrClass::Shared),
        ("100.127.255.255", AddrClass::Shared),
        ("100.128.0.1", AddrClass::Public),
        ("192.0.2.7", AddrClass::Documentation),
        ("198.51.100.1", AddrClass::Documentation),
        ("203.0.113.200", AddrClass::Documentation),
        ("2001:db8::5", AddrClass::Documentation),
        ("198.18.0.1", AddrClass::Benchmarking),
        ("198.19.255.1", AddrClass::Benchmarking),
        ("198.20.0.1", AddrClass::Public),
        ("2001:2::1", AddrClass::Benchmarking),
        ("2001:2:1::1", AddrClass::Public),
        ("0.0.0.0", AddrClass::Unusable),
        ("::", AddrClass::Unusable),
        ("224.0.0.1", AddrClass::Unusable),
        ("ff02::1", AddrClass::Unusable),
        ("255.255.255.255", AddrClass::Unusable),
        ("8.8.8.8", AddrClass::Public),
        ("2606:4700::1111", AddrClass::Public),
        ("::ffff:8.8.8.8", AddrClass::Public),
    ];

    #[test]
    fn classifies_ipv4_and_ipv6_ranges() {
        for (ip, class) in TABLE {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(classify_ip(parsed), *class, "{ip}");
        }
    }

    #[test]
    fn overrides_turn_test_ranges_public_and_names_have_no_class() {
        let c = Classifier::new().with_public(&[AddrClass::Documentation, AddrClass::Benchmarking]);
        let doc: Multiaddr = "/ip4/192.0.2.1/tcp/1".parse().unwrap();
        let bench: Multiaddr = "/ip6/2001:2::1/udp/1/quic-v1".parse().unwrap();
        let lan: Multiaddr = "/ip4/10.0.0.1/tcp/1".parse().unwrap();
        assert_eq!(c.addr(&doc), AddrClass::Public);
        assert_eq!(c.addr(&bench), AddrClass::Public);
        assert_eq!(c.addr(&lan), AddrClass::Private);
        assert_eq!(Classifier::new().addr(&doc), AddrClass::Documentation);
        let name: Multiaddr = "/dns4/example.com/tcp/1".parse().unwrap();
        assert_eq!(c.addr(&name), AddrClass::Name);
        assert!(AddrClass::Shared.is_local() && !AddrClass::Public.is_local());
    }
}
