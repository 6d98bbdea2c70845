//! Ranking a peer's addresses before any delay: which ones are out at once, and in
//! which order the rest are tried.
//!
//! The order, most important key first:
//!
//! 1. **Locality.** When the peer is local (it shares a non-public network with us,
//!    or has no public address at all), its loopback addresses come first, then its
//!    private, link-local and shared (CGNAT) ones, then the public ones. Otherwise
//!    the public ones come first and the local ones last: a remote peer's private
//!    address is most likely someone else's network.
//! 2. **Transport.** QUIC before TCP before anything else, among the kinds a
//!    transport of the host can dial: an address no transport takes is out before
//!    ranking, so QUIC ranks first as soon as a QUIC transport is added.
//! 3. **Address family.** IPv6 and IPv4 interleaved (RFC 8305, Happy Eyeballs v2),
//!    the preferred family first (IPv6 by default); names (`/dns*` left unresolved,
//!    `/memory`) after the IP addresses of their group. Otherwise the given order
//!    is kept.
//!
//! When the attempts start is the [`Schedule`](super::schedule::Schedule)'s concern.

use super::classify::{AddrClass, Classifier};
use crate::transport::split_peer_id;
use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};
use std::fmt;
use std::sync::Arc;

/// Whether some transport of the host can dial an address (without `/p2p/`).
pub type DialableFn = Arc<dyn Fn(&Multiaddr) -> bool + Send + Sync>;

/// Why an address was left out before any attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No transport of the host can dial it (for example `/webrtc`, or `/quic-v1`
    /// while no QUIC transport exists).
    NoTransport,
    /// An address no peer can be reached at (unspecified, multicast, broadcast).
    Unusable,
    /// Its `/p2p/` suffix names another peer than the one dialed.
    WrongPeer(PeerId),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NoTransport => f.write_str("no transport can dial it"),
            Rejection::Unusable => f.write_str("no peer can be reached at it"),
            Rejection::WrongPeer(p) => write!(f, "it names another peer ({p})"),
        }
    }
}

/// The kind of transport an address needs, in the order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TransportKind {
    /// `/udp/<port>/quic-v1`: secure and multiplexed in one round trip.
    Quic,
    /// `/tcp/<port>`.
    Tcp,
    /// Anything else a transport takes (`/memory`, `/ws`, ...).
    Other,
}

/// The kind of transport an address needs.
pub fn transport_kind(addr: &Multiaddr) -> TransportKind {
    let mut saw_udp = false;
    for p in addr.iter() {
        match p {
            Protocol::Udp(_) => saw_udp = true,
            Protocol::QuicV1 if saw_udp => return TransportKind::Quic,
            Protocol::Tcp(_) => {
                // Plain TCP only: `/tcp/../ws` and friends are another transport.
                let rest = addr
                    .iter()
                    .skip_while(|q| !matches!(q, Protocol::Tcp(_)))
                    .skip(1)
                    .any(|q| !matches!(q, Protocol::P2p(_)));
                return if rest {
                    TransportKind::Other
                } else {
                    TransportKind::Tcp
                };
            }
            _ => {}
        }
    }
    TransportKind::Other
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V6,
    V4,
    Name,
}

fn family(addr: &Multiaddr) -> Family {
    match addr.iter().next() {
        Some(Protocol::Ip6(_)) => Family::V6,
        Some(Protocol::Ip4(_)) => Family::V4,
        _ => Family::Name,
    }
}

/// How addresses are ranked: what the host can dial, how addresses are classified,
/// which networks we are on, the preferred family, and the peer dialed.
#[derive(Clone)]
pub struct Ranker {
    dialable: DialableFn,
    classifier: Classifier,
    local_classes: Vec<AddrClass>,
    prefer_ipv6: bool,
    peer: Option<PeerId>,
}

impl fmt::Debug for Ranker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ranker")
            .field("classifier", &self.classifier)
            .field("local_classes", &self.local_classes)
            .field("prefer_ipv6", &self.prefer_ipv6)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Ranker {
    /// A ranker for a host whose transports dial what `dialable` accepts. By default
    /// the real internet's classes, no local network of ours, IPv6 first, no peer.
    pub fn new(dialable: DialableFn) -> Self {
        Ranker {
            dialable,
            classifier: Classifier::new(),
            local_classes: Vec::new(),
            prefer_ipv6: true,
            peer: None,
        }
    }

    /// The address classifier (overrides for tests).
    pub fn with_classifier(mut self, classifier: Classifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// The classes of our own addresses (where we listen): a peer with an address
    /// of one of these local classes is on a network we share.
    pub fn with_local_classes(mut self, classes: Vec<AddrClass>) -> Self {
        self.local_classes = classes;
        self
    }

    /// Whether IPv6 goes first (default) or IPv4.
    pub fn with_prefer_ipv6(mut self, prefer_ipv6: bool) -> Self {
        self.prefer_ipv6 = prefer_ipv6;
        self
    }

    /// The peer dialed: addresses naming another peer are out.
    pub fn with_peer(mut self, peer: Option<PeerId>) -> Self {
        self.peer = peer;
        self
    }

    /// The classifier in use.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// Whether the address would be left out, and why.
    pub fn reject(&self, addr: &Multiaddr) -> Option<Rejection> {
        let (bare, named) = split_peer_id(addr);
        if let (Some(expected), Some(named)) = (self.peer, named) {
            if expected != named {
                return Some(Rejection::WrongPeer(named));
            }
        }
        if self.classifier.addr(&bare) == AddrClass::Unusable {
            return Some(Rejection::Unusable);
        }
        if !(self.dialable)(&bare) {
            return Some(Rejection::NoTransport);
        }
        None
    }

    /// Whether the peer with these addresses counts as local: it has an address on
    /// a local network of a class we are on too, or it has no public address.
    pub fn peer_is_local(&self, addrs: &[Multiaddr]) -> bool {
        let classes: Vec<AddrClass> = addrs.iter().map(|a| self.classifier.addr(a)).collect();
        let shares = classes
            .iter()
            .any(|c| c.is_local() && self.local_classes.contains(c));
        let any_public = classes
            .iter()
            .any(|c| matches!(c, AddrClass::Public | AddrClass::Name));
        shares || (!any_public && classes.iter().any(|c| c.is_local()))
    }

    fn tier(&self, class: AddrClass, local_peer: bool) -> u8 {
        match (local_peer, class) {
            (true, AddrClass::Loopback) => 0,
            (true, c) if c.is_local() => 1,
            (true, _) => 2,
            (false, c) if c.is_local() => 1,
            (false, _) => 0,
        }
    }

    /// Ranks `addrs`: the dialable ones in the order to try them (duplicates
    /// dropped), and the ones left out with the reason.
    pub fn rank(&self, addrs: &[Multiaddr]) -> Ranking {
        let mut rejected = Vec::new();
        let mut kept: Vec<Multiaddr> = Vec::new();
        for addr in addrs {
            if kept.contains(addr) {
                continue;
            }
            match self.reject(addr) {
                Some(why) => rejected.push((addr.clone(), why)),
                None => kept.push(addr.clone()),
            }
        }
        let local_peer = self.peer_is_local(&kept);
        let key = |a: &Multiaddr| {
            (
                self.tier(self.classifier.addr(a), local_peer),
                transport_kind(a),
            )
        };
        // A stable sort: within a group the given order stays.
        kept.sort_by_key(key);
        let mut ranked = Vec::with_capacity(kept.len());
        let mut rest = kept.as_slice();
        while let Some(first) = rest.first() {
            let k = key(first);
            let len = rest.iter().take_while(|a| key(a) == k).count();
            let (group, tail) = rest.split_at(len);
            ranked.extend(self.interleave(group));
            rest = tail;
        }
        Ranking { ranked, rejected }
    }

    /// One group's addresses, the preferred family first, then alternating; names
    /// last.
    fn interleave(&self, group: &[Multiaddr]) -> Vec<Multiaddr> {
        let (first, second) = if self.prefer_ipv6 {
            (Family::V6, Family::V4)
        } else {
            (Family::V4, Family::V6)
        };
        let of = |f: Family| group.iter().filter(move |a| family(a) == f);
        let mut a = of(first).peekable();
        let mut b = of(second).peekable();
        let mut out = Vec::with_capacity(group.len());
        while a.peek().is_some() || b.peek().is_some() {
            out.extend(a.next().cloned());
            out.extend(b.next().cloned());
        }
        out.extend(of(Family::Name).cloned());
        out
    }
}

/// What [`Ranker::rank`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranking {
    /// The addresses to try, best first.
    pub ranked: Vec<Multiaddr>,
    /// The addresses left out, and why.
    pub rejected: Vec<(Multiaddr, Rejection)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_and_memory() -> DialableFn {
        Arc::new(|a: &Multiaddr| {
            matches!(transport_kind(a), TransportKind::Tcp | TransportKind::Other)
                && a.iter().all(|p| {
                    matches!(
                        p,
                        Protocol::Ip4(_)
                            | Protocol::Ip6(_)
                            | Protocol::Tcp(_)
                            | Protocol::Memory(_)
                    )
                })
        })
    }

    fn with_quic() -> DialableFn {
        Arc::new(|a: &Multiaddr| {
            a.iter().all(|p| {
                matches!(
                    p,
                    Protocol::Ip4(_)
                        | Protocol::Ip6(_)
                        | Protocol::Tcp(_)
                        | Protocol::Udp(_)
                        | Protocol::QuicV1
                )
            })
        })
    }

    fn addrs(list: &[&str]) -> Vec<Multiaddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn strings(list: &[Multiaddr]) -> Vec<String> {
        list.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn undialable_addresses_are_out_and_quic_ranks_first_once_a_transport_takes_it() {
        let input = addrs(&[
            "/ip4/1.1.1.1/tcp/1",
            "/ip4/1.1.1.1/udp/1/quic-v1",
            "/ip4/1.1.1.1/udp/1/webrtc-direct",
            "/ip4/0.0.0.0/tcp/1",
            "/ip6/2606::1/tcp/1",
            "/ip4/1.1.1.1/tcp/1",
        ]);
        let tcp_only = Ranker::new(tcp_and_memory()).rank(&input);
        assert_eq!(
            strings(&tcp_only.ranked),
            ["/ip6/2606::1/tcp/1", "/ip4/1.1.1.1/tcp/1"]
        );
        let why: Vec<Rejection> = tcp_only.rejected.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(
            why,
            [
                Rejection::NoTransport,
                Rejection::NoTransport,
                Rejection::Unusable
            ]
        );
        let quic = Ranker::new(with_quic()).rank(&input);
        assert_eq!(
            strings(&quic.ranked),
            [
                "/ip4/1.1.1.1/udp/1/quic-v1",
                "/ip6/2606::1/tcp/1",
                "/ip4/1.1.1.1/tcp/1"
            ]
        );
    }

    #[test]
    fn families_interleave_preferred_first() {
        let input = addrs(&[
            "/ip4/1.0.0.1/tcp/1",
            "/ip4/1.0.0.2/tcp/1",
            "/ip4/1.0.0.3/tcp/1",
            "/ip6/2606::1/tcp/1",
            "/ip6/2606::2/tcp/1",
        ]);
        let v6 = Ranker::new(tcp_and_memory()).rank(&input);
        assert_eq!(
            strings(&v6.ranked),
            [
                "/ip6/2606::1/tcp/1",
                "/ip4/1.0.0.1/tcp/1",
                "/ip6/2606::2/tcp/1",
                "/ip4/1.0.0.2/tcp/1",
                "/ip4/1.0.0.3/tcp/1"
            ]
        );
        let v4 = Ranker::new(tcp_and_memory())
            .with_prefer_ipv6(false)
            .rank(&input);
        assert_eq!(
            strings(&v4.ranked),
            [
                "/ip4/1.0.0.1/tcp/1",
                "/ip6/2606::1/tcp/1",
                "/ip4/1.0.0.2/tcp/1",
                "/ip6/2606::2/tcp/1",
                "/ip4/1.0.0.3/tcp/1"
            ]
        );
    }

    #[test]
    fn local_addresses_go_first_only_for_a_local_peer() {
        let input = addrs(&[
            "/ip4/8.8.8.8/tcp/1",
            "/ip4/192.168.1.5/tcp/1",
            "/ip4/127.0.0.1/tcp/1",
        ]);
        // A remote peer: public first, its private and loopback addresses last.
        let remote = Ranker::new(tcp_and_memory()).rank(&input);
        assert_eq!(strings(&remote.ranked)[0], "/ip4/8.8.8.8/tcp/1");
        // We listen on loopback too: the peer is local, loopback first, then private.
        let local = Ranker::new(tcp_and_memory())
            .with_local_classes(vec![AddrClass::Loopback])
            .rank(&input);
        assert_eq!(
            strings(&local.ranked),
            [
                "/ip4/127.0.0.1/tcp/1",
                "/ip4/192.168.1.5/tcp/1",
                "/ip4/8.8.8.8/tcp/1"
            ]
        );
        // A peer with no public address is local whatever we listen on.
        let lan_only = Ranker::new(tcp_and_memory())
            .rank(&addrs(&["/ip4/10.0.0.2/tcp/1", "/ip4/127.0.0.1/tcp/1"]));
        assert_eq!(strings(&lan_only.ranked)[0], "/ip4/127.0.0.1/tcp/1");
        // With the documentation range taken as public, a peer there is remote.
        let ns = Ranker::new(tcp_and_memory())
            .with_classifier(Classifier::new().with_public(&[AddrClass::Documentation]))
            .rank(&addrs(&["/ip4/10.0.0.2/tcp/1", "/ip4/192.0.2.1/tcp/1"]));
        assert_eq!(strings(&ns.ranked)[0], "/ip4/192.0.2.1/tcp/1");
    }

    #[test]
    fn addresses_of_another_peer_are_out() {
        let me = PeerId::random();
        let other = PeerId::random();
        let input = addrs(&[
            &format!("/ip4/1.1.1.1/tcp/1/p2p/{other}"),
            &format!("/ip4/1.1.1.2/tcp/1/p2p/{me}"),
            "/ip4/1.1.1.3/tcp/1",
        ]);
        let r = Ranker::new(tcp_and_memory())
            .with_peer(Some(me))
            .rank(&input);
        assert_eq!(r.ranked.len(), 2);
        assert_eq!(r.rejected[0].1, Rejection::WrongPeer(other));
        assert_eq!(
            transport_kind(&"/ip4/1.1.1.1/tcp/1/ws".parse().unwrap()),
            TransportKind::Other
        );
        assert_eq!(transport_kind(&input[0]), TransportKind::Tcp);
    }
}
