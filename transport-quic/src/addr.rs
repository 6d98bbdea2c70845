//! `/ip4|ip6/<address>/udp/<port>/quic-v1` multiaddrs.

use multiaddr::{Multiaddr, Protocol};
use std::net::{IpAddr, SocketAddr};

/// The socket address of a QUIC v1 multiaddr (an optional trailing `/p2p/<id>` is
/// allowed), or `None` for anything else (`/quic` draft-29, `/dns`, other suffixes).
pub fn multiaddr_to_socket(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut iter = addr.iter();
    let ip = match iter.next()? {
        Protocol::Ip4(ip) => IpAddr::V4(ip),
        Protocol::Ip6(ip) => IpAddr::V6(ip),
        _ => return None,
    };
    let Protocol::Udp(port) = iter.next()? else {
        return None;
    };
    let Protocol::QuicV1 = iter.next()? else {
        return None;
    };
    match iter.next() {
        None | Some(Protocol::P2p(_)) if iter.next().is_none() => Some(SocketAddr::new(ip, port)),
        _ => None,
    }
}

/// The QUIC v1 multiaddr of a socket address.
pub fn socket_to_multiaddr(addr: SocketAddr) -> Multiaddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) => Protocol::Ip4(ip),
        IpAddr::V6(ip) => Protocol::Ip6(ip),
    };
    Multiaddr::empty()
        .with(ip)
        .with(Protocol::Udp(addr.port()))
        .with(Protocol::QuicV1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<SocketAddr> {
        multiaddr_to_socket(&s.parse().expect("a multiaddr"))
    }

    #[test]
    fn quic_v1_addresses_parse_and_others_do_not() {
        assert_eq!(
            parse("/ip4/127.0.0.1/udp/4001/quic-v1"),
            Some("127.0.0.1:4001".parse().unwrap())
        );
        assert_eq!(
            parse(
                "/ip6/::1/udp/1/quic-v1/p2p/12D3KooWLRPJAA5o6Z6QNuYM9ePR6nzoFyqAG4rSKPmGrK1BsVRa"
            ),
            Some("[::1]:1".parse().unwrap())
        );
        for other in [
            "/ip4/127.0.0.1/udp/4001/quic",
            "/ip4/127.0.0.1/udp/4001",
            "/ip4/127.0.0.1/tcp/4001",
            "/dns4/example.com/udp/4001/quic-v1",
            "/ip4/127.0.0.1/udp/4001/quic-v1/webtransport",
            "/ip4/1.2.3.4/udp/1/quic-v1/p2p/12D3KooWLRPJAA5o6Z6QNuYM9ePR6nzoFyqAG4rSKPmGrK1BsVRa/p2p-circuit",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }

    #[test]
    fn socket_addresses_round_trip() {
        for s in ["0.0.0.0:0", "[2001:db8::1]:443"] {
            let socket: SocketAddr = s.parse().unwrap();
            assert_eq!(
                multiaddr_to_socket(&socket_to_multiaddr(socket)),
                Some(socket)
            );
        }
    }
}
