//! The addresses a CONNECT carries: what we send, what we keep of the peer's, and
//! what they say about the NATs on the way.

use crate::codec::MAX_MESSAGE_LEN;
use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Addresses kept from one CONNECT at most; the rest are ignored.
pub const MAX_ADDRS: usize = 32;

/// Distinct ports one IP (and transport) must show before its NAT is taken as
/// symmetric: a cone NAT keeps one mapping per internal socket, so a peer listening
/// on one port shows one (a second listener may add one more).
pub const SYMMETRIC_PORTS: usize = 3;

/// The transports hole punching works with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PunchTransport {
    /// `/ip4|ip6/../tcp/..`: a TCP simultaneous open.
    Tcp,
    /// `/ip4|ip6/../udp/../quic-v1`: the initiator's listen socket sends packets, the
    /// responder dials.
    Quic,
}

impl PunchTransport {
    /// The transport of a direct address (a `/p2p/` suffix allowed), `None` for
    /// anything else (relayed, names, other transports).
    pub fn of(addr: &Multiaddr) -> Option<PunchTransport> {
        direct_endpoint(addr).map(|(_, _, t)| t)
    }
}

impl std::fmt::Display for PunchTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PunchTransport::Tcp => "tcp",
            PunchTransport::Quic => "quic-v1",
        })
    }
}

/// `(ip, port, transport)` of `/ip4|ip6/<ip>/tcp/<port>` or
/// `/ip4|ip6/<ip>/udp/<port>/quic-v1`, with an optional `/p2p/` suffix.
fn direct_endpoint(addr: &Multiaddr) -> Option<(IpAddr, u16, PunchTransport)> {
    let mut it = addr.iter();
    let ip = match it.next()? {
        Protocol::Ip4(ip) => IpAddr::V4(ip),
        Protocol::Ip6(ip) => IpAddr::V6(ip),
        _ => return None,
    };
    let (port, transport) = match it.next()? {
        Protocol::Tcp(port) => (port, PunchTransport::Tcp),
        Protocol::Udp(port) => match it.next()? {
            Protocol::QuicV1 => (port, PunchTransport::Quic),
            _ => return None,
        },
        _ => return None,
    };
    match it.next() {
        None | Some(Protocol::P2p(_)) => {}
        Some(_) => return None,
    }
    if it.next().is_some() || port == 0 || ip.is_unspecified() {
        return None;
    }
    Some((ip, port, transport))
}

/// Our addresses as a CONNECT carries them: direct TCP and QUIC addresses only
/// (relayed ones, names and others dropped), without duplicates, in the order
/// given (best first), as many as fit in one message.
pub fn encode_ours(addrs: &[Multiaddr]) -> Vec<Vec<u8>> {
    // Room for the type field and each entry's tag and length.
    let mut budget = MAX_MESSAGE_LEN - 8;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for addr in addrs {
        if PunchTransport::of(addr).is_none() || !seen.insert(addr.to_vec()) {
            continue;
        }
        let bytes = addr.to_vec();
        let cost = bytes.len() + 3;
        if cost > budget || out.len() == MAX_ADDRS {
            break;
        }
        budget -= cost;
        out.push(bytes);
    }
    out
}

/// The peer's addresses from a CONNECT: the direct TCP and QUIC ones, each without
/// its `/p2p/` suffix (one naming another peer is dropped), without duplicates, at
/// most [`MAX_ADDRS`]. Undecodable and relayed addresses are dropped.
pub fn decode_theirs(raw: &[Vec<u8>], peer: Option<PeerId>) -> Vec<Multiaddr> {
    let mut out: Vec<Multiaddr> = Vec::new();
    for bytes in raw {
        let Ok(mut addr) = Multiaddr::try_from(bytes.clone()) else {
            tracing::debug!("undecodable address in CONNECT dropped");
            continue;
        };
        if PunchTransport::of(&addr).is_none() {
            tracing::debug!(%addr, "address in CONNECT not punchable; dropped");
            continue;
        }
        if let Some(Protocol::P2p(id)) = addr.iter().last() {
            if peer.is_some_and(|p| p != id) {
                tracing::debug!(%addr, "address of another peer in CONNECT; dropped");
                continue;
            }
            addr.pop();
        }
        if !out.contains(&addr) {
            out.push(addr);
        }
        if out.len() == MAX_ADDRS {
            break;
        }
    }
    out
}

/// Whether a peer's addresses show an endpoint-dependent mapping: one IP with at
/// least [`SYMMETRIC_PORTS`] distinct ports on one transport, as a symmetric NAT's
/// observed addresses look when several observers report them. A heuristic: a peer
/// that listens on that many ports of one public IP looks the same.
pub fn looks_symmetric(addrs: &[Multiaddr]) -> bool {
    let mut ports: Vec<((IpAddr, PunchTransport), BTreeSet<u16>)> = Vec::new();
    for (ip, port, transport) in addrs.iter().filter_map(direct_endpoint) {
        match ports.iter_mut().find(|(k, _)| *k == (ip, transport)) {
            Some((_, set)) => {
                set.insert(port);
            }
            None => ports.push(((ip, transport), BTreeSet::from([port]))),
        }
    }
    ports.iter().any(|(_, set)| set.len() >= SYMMETRIC_PORTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_direct_tcp_and_quic_addresses_count() {
        let peer = PeerId::random();
        for good in [
            "/ip4/1.2.3.4/tcp/4001",
            "/ip6/2001:db8::1/tcp/4001",
            "/ip4/1.2.3.4/udp/4001/quic-v1",
        ] {
            assert!(PunchTransport::of(&a(good)).is_some(), "{good}");
            let with_id = a(good).with(Protocol::P2p(peer));
            assert!(PunchTransport::of(&with_id).is_some(), "{with_id}");
        }
        for bad in [
            "/ip4/1.2.3.4/udp/4001/quic",
            "/ip4/1.2.3.4/tcp/0",
            "/ip4/0.0.0.0/tcp/4001",
            "/dns4/example.com/tcp/4001",
            "/ip4/1.2.3.4/tcp/4001/ws",
            "/ip4/1.2.3.4/udp/4001/webrtc-direct",
            "/memory/4",
        ] {
            assert_eq!(PunchTransport::of(&a(bad)), None, "{bad}");
        }
        let relayed = a(&format!("/ip4/1.2.3.4/tcp/1/p2p/{peer}/p2p-circuit"));
        assert_eq!(PunchTransport::of(&relayed), None);
    }

    #[test]
    fn the_peers_addresses_lose_their_suffix_and_foreign_ones() {
        let peer = PeerId::random();
        let other = PeerId::random();
        let raw = vec![
            a(&format!("/ip4/1.2.3.4/tcp/1/p2p/{peer}")).to_vec(),
            a("/ip4/1.2.3.4/tcp/1").to_vec(),
            a(&format!("/ip4/5.6.7.8/tcp/1/p2p/{other}")).to_vec(),
            a(&format!("/ip4/9.9.9.9/tcp/1/p2p/{other}/p2p-circuit")).to_vec(),
            vec![0xff, 0x00, 0x01],
            a("/ip4/1.2.3.4/udp/1/quic-v1").to_vec(),
        ];
        assert_eq!(
            decode_theirs(&raw, Some(peer)),
            vec![a("/ip4/1.2.3.4/tcp/1"), a("/ip4/1.2.3.4/udp/1/quic-v1")]
        );
        let flood: Vec<Vec<u8>> = (1..=200u16)
            .map(|p| a(&format!("/ip4/1.2.3.4/tcp/{p}")).to_vec())
            .collect();
        assert_eq!(decode_theirs(&flood, None).len(), MAX_ADDRS);
    }

    #[test]
    fn ours_fit_one_message() {
        let many: Vec<Multiaddr> = (1..=500u16)
            .map(|p| a(&format!("/ip6/2001:db8::{p:x}/udp/{p}/quic-v1")))
            .collect();
        let encoded = encode_ours(&many);
        assert_eq!(encoded.len(), MAX_ADDRS);
        let msg = crate::proto::HolePunch::connect(encoded);
        assert!(crate::codec::encode(&msg).is_ok());
        let mixed = [
            a("/ip4/1.2.3.4/tcp/1"),
            a("/ip4/1.2.3.4/tcp/1"),
            a("/dns4/x.example/tcp/1"),
            a("/ip4/1.2.3.4/udp/1/quic-v1"),
        ];
        assert_eq!(
            encode_ours(&mixed),
            vec![mixed[0].to_vec(), mixed[3].to_vec()]
        );
    }

    #[test]
    fn symmetric_mappings_show_as_many_ports_on_one_ip() {
        let cone = [
            a("/ip4/1.2.3.4/tcp/4001"),
            a("/ip4/1.2.3.4/udp/4001/quic-v1"),
            a("/ip4/10.0.0.2/tcp/4001"),
        ];
        assert!(!looks_symmetric(&cone));
        let symmetric = [
            a("/ip4/1.2.3.4/tcp/4001"),
            a("/ip4/1.2.3.4/tcp/31001"),
            a("/ip4/1.2.3.4/tcp/52113"),
        ];
        assert!(looks_symmetric(&symmetric));
        // Ports on different transports or IPs do not add up.
        let spread = [
            a("/ip4/1.2.3.4/tcp/1"),
            a("/ip4/1.2.3.4/udp/2/quic-v1"),
            a("/ip4/1.2.3.5/tcp/3"),
            a("/ip4/1.2.3.4/tcp/4"),
        ];
        assert!(!looks_symmetric(&spread));
    }
}
