//! Trusted addresses and peer ids: allowlisted connections get scopes of their own, so
//! they still get in when the normal limits are full.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};

/// Why an address cannot be an allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowlistError {
    /// The entry does not start with `/ip4/...` or `/ip6/...`.
    #[error("allowlist entry {0} does not start with /ip4 or /ip6")]
    NotIp(Multiaddr),
    /// The `/ipcidr/N` prefix length is longer than the address.
    #[error("allowlist entry {0} has a prefix length longer than its address")]
    BadPrefix(Multiaddr),
    /// Something follows the address (and its `/ipcidr`): a port, `/p2p/...` and the like.
    #[error("allowlist entry {0} must be /ip4/A, /ip6/A or either with /ipcidr/N, nothing after (use allow_peer for peer ids)")]
    TrailingProtocol(Multiaddr),
}

/// Trusted IP networks and peer ids.
///
/// A connection from (or to) an allowlisted address is charged to the allowlist's own
/// system and transient scopes when the normal ones deny. A peer id on the list is
/// exempt from the default per-peer limits (an explicit per-peer override still applies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    nets: Vec<IpNet>,
    peers: HashSet<PeerId>,
}

impl Allowlist {
    /// An empty allowlist.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts every address under `prefix`: `/ip4/1.2.3.4`, `/ip6/2001:db8::1`, or either
    /// with `/ipcidr/N` for a whole network (`/ip4/10.0.0.0/ipcidr/8`).
    ///
    /// # Errors
    ///
    /// [`AllowlistError`] when `prefix` is not of that form.
    pub fn allow(&mut self, prefix: impl Borrow<Multiaddr>) -> Result<(), AllowlistError> {
        let prefix = prefix.borrow();
        let mut parts = prefix.iter();
        let addr = match parts.next() {
            Some(Protocol::Ip4(ip)) => IpAddr::V4(ip),
            Some(Protocol::Ip6(ip)) => IpAddr::V6(ip),
            _ => return Err(AllowlistError::NotIp(prefix.clone())),
        };
        let max_len = if addr.is_ipv4() { 32 } else { 128 };
        let len = match parts.next() {
            None => max_len,
            Some(Protocol::Ipcidr(len)) => len,
            Some(_) => return Err(AllowlistError::TrailingProtocol(prefix.clone())),
        };
        if parts.next().is_some() {
            return Err(AllowlistError::TrailingProtocol(prefix.clone()));
        }
        let net = IpNet::new(addr, len).map_err(|_| AllowlistError::BadPrefix(prefix.clone()))?;
        self.nets.push(net.trunc());
        Ok(())
    }

    /// Trusts `peer`.
    pub fn allow_peer(&mut self, peer: PeerId) {
        self.peers.insert(peer);
    }

    /// [`allow`](Self::allow), builder style.
    ///
    /// # Errors
    ///
    /// [`AllowlistError`] when `prefix` is not of the accepted form.
    pub fn with_addr(mut self, prefix: impl Borrow<Multiaddr>) -> Result<Self, AllowlistError> {
        self.allow(prefix)?;
        Ok(self)
    }

    /// [`allow_peer`](Self::allow_peer), builder style.
    pub fn with_peer(mut self, peer: PeerId) -> Self {
        self.allow_peer(peer);
        self
    }

    /// Whether `addr` is trusted: its first component is an IP inside an allowed network,
    /// or it ends in `/p2p/<id>` of an allowed peer.
    pub fn contains(&self, addr: &Multiaddr) -> bool {
        let ip_trusted = match addr.iter().next() {
            Some(Protocol::Ip4(ip)) => self.contains_ip(IpAddr::V4(ip)),
            Some(Protocol::Ip6(ip)) => self.contains_ip(IpAddr::V6(ip)),
            _ => false,
        };
        ip_trusted
            || matches!(addr.iter().last(), Some(Protocol::P2p(peer)) if self.contains_peer(&peer))
    }

    /// Whether `ip` is inside an allowed network.
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// Whether `peer` is trusted.
    pub fn contains_peer(&self, peer: &PeerId) -> bool {
        self.peers.contains(peer)
    }

    /// Whether nothing is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn single_addresses_and_networks() {
        let list = Allowlist::new()
            .with_addr(addr("/ip4/192.0.2.7"))
            .unwrap()
            .with_addr(addr("/ip4/10.1.2.3/ipcidr/8"))
            .unwrap()
            .with_addr(addr("/ip6/2001:db8::/ipcidr/32"))
            .unwrap();
        assert!(list.contains(&addr("/ip4/192.0.2.7/tcp/4001")));
        assert!(!list.contains(&addr("/ip4/192.0.2.8/tcp/4001")));
        assert!(list.contains(&addr("/ip4/10.200.0.1/udp/1/quic-v1")));
        assert!(!list.contains(&addr("/ip4/11.0.0.1/tcp/1")));
        assert!(list.contains(&addr("/ip6/2001:db8:ffff::1/tcp/1")));
        assert!(!list.contains(&addr("/ip6/2001:db9::1/tcp/1")));
        assert!(list.contains(&addr("/ip6/::ffff:10.0.0.1/tcp/1")));
        assert!(!list.contains(&addr("/dns4/example.com/tcp/1")));
    }

    #[test]
    fn peers_and_p2p_suffixes() {
        let peer = PeerId::random();
        let list = Allowlist::new().with_peer(peer);
        assert!(list.contains_peer(&peer));
        assert!(!list.contains_peer(&PeerId::random()));
        assert!(list.contains(&addr(&format!("/ip4/203.0.113.1/tcp/1/p2p/{peer}"))));
        assert!(!list.contains(&addr("/ip4/203.0.113.1/tcp/1")));
        assert!(!list.is_empty());
        assert!(Allowlist::new().is_empty());
    }

    #[test]
    fn malformed_entries_are_refused() {
        let mut list = Allowlist::new();
        // Owned or borrowed, both work.
        list.allow(addr("/ip4/198.51.100.0/ipcidr/24")).unwrap();
        assert!(list.contains(&addr("/ip4/198.51.100.77/tcp/1")));
        let mut list = Allowlist::new();
        assert!(matches!(
            list.allow(addr("/dns4/example.com")),
            Err(AllowlistError::NotIp(_))
        ));
        assert!(matches!(
            list.allow(addr("/ip4/1.2.3.4/tcp/1")),
            Err(AllowlistError::TrailingProtocol(_))
        ));
        assert!(matches!(
            list.allow(addr("/ip4/1.2.3.4/ipcidr/8/tcp/1")),
            Err(AllowlistError::TrailingProtocol(_))
        ));
        assert!(matches!(
            list.allow(addr("/ip4/1.2.3.4/ipcidr/33")),
            Err(AllowlistError::BadPrefix(_))
        ));
        assert!(list.is_empty());
        let error = list.allow(addr("/ip4/1.2.3.4/tcp/1")).unwrap_err();
        assert!(error.to_string().contains("/ip4/1.2.3.4/tcp/1"));
    }
}
