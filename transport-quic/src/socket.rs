//! UDP sockets for QUIC endpoints: address families kept apart, buffers sized.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// Binds a non-blocking UDP socket to `addr`, asking for `buffer` bytes of receive
/// and send buffer (best effort: the kernel may cap or refuse it).
///
/// An IPv6 socket is IPv6 only, so `[::]` and `0.0.0.0` can be bound side by side on
/// one port and each family has its own endpoint.
pub(crate) fn bind(addr: SocketAddr, buffer: usize) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if let Err(error) = socket.set_recv_buffer_size(buffer) {
        tracing::debug!(%error, buffer, "could not size the UDP receive buffer");
    }
    if let Err(error) = socket.set_send_buffer_size(buffer) {
        tracing::debug!(%error, buffer, "could not size the UDP send buffer");
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    tracing::debug!(
        %addr,
        receive_buffer = socket.recv_buffer_size().ok(),
        send_buffer = socket.send_buffer_size().ok(),
        "UDP socket bound"
    );
    Ok(socket.into())
}

/// Whether an endpoint bound to `local` can send to `remote`: same family, and
/// either a wildcard address or on the same side of loopback.
pub(crate) fn can_reach(local: SocketAddr, remote: SocketAddr) -> bool {
    local.is_ipv4() == remote.is_ipv4()
        && (local.ip().is_unspecified() || local.ip().is_loopback() == remote.ip().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("a socket address")
    }

    #[test]
    fn endpoints_are_reused_only_where_they_can_reach() {
        assert!(can_reach(addr("0.0.0.0:1"), addr("127.0.0.1:2")));
        assert!(can_reach(addr("0.0.0.0:1"), addr("8.8.8.8:2")));
        assert!(can_reach(addr("127.0.0.1:1"), addr("127.0.0.1:2")));
        assert!(!can_reach(addr("127.0.0.1:1"), addr("8.8.8.8:2")));
        assert!(!can_reach(addr("192.0.2.1:1"), addr("127.0.0.1:2")));
        assert!(!can_reach(addr("0.0.0.0:1"), addr("[::1]:2")));
        assert!(can_reach(addr("[::]:1"), addr("[2001:db8::1]:2")));
    }

    #[test]
    fn sockets_get_buffers_and_families_stay_apart() {
        let v4 = bind(addr("0.0.0.0:0"), 1 << 20).expect("binds v4");
        let port = v4.local_addr().expect("local address").port();
        // The IPv6 wildcard on the same port does not clash (IPV6_V6ONLY), where the
        // machine has IPv6 at all.
        if let Ok(v6) = bind(SocketAddr::new("::".parse().unwrap(), port), 1 << 20) {
            assert_eq!(v6.local_addr().unwrap().port(), port);
        }
        let granted = socket2::SockRef::from(&v4).recv_buffer_size().unwrap();
        assert!(granted > 0);
    }
}
