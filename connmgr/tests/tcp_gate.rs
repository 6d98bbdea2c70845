//! The manager gating real TCP connections on 127.0.0.1: an accept loop asks
//! `allow_inbound` before any handshake byte, closes refused sockets at once, and a
//! failed handshake (a dropped permit) frees the slot for the next client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use weft_connmgr::{
    ConnectionId, ConnectionLimits, ConnectionManager, ConnectionManagerConfig, ConnectionPolicy,
    Direction, LimitKind, Multiaddr, PeerId, PendingPermit,
};

fn to_multiaddr(addr: SocketAddr) -> Multiaddr {
    format!("/ip4/{}/tcp/{}", addr.ip(), addr.port())
        .parse()
        .unwrap()
}

/// Accepts one socket and gates it: `Ok` (socket, permit, remote) after sending `+`,
/// or `Err` (the refusing limit) after closing the socket.
fn accept_gated(
    listener: &TcpListener,
    policy: &dyn ConnectionPolicy,
) -> Result<(TcpStream, PendingPermit, Multiaddr), LimitKind> {
    let (mut socket, remote) = listener.accept().unwrap();
    let local = to_multiaddr(listener.local_addr().unwrap());
    let remote = to_multiaddr(remote);
    match policy.allow_inbound(&local, &remote) {
        Ok(permit) => {
            socket.write_all(b"+").unwrap();
            Ok((socket, permit, remote))
        }
        Err(err) => {
            drop(socket);
            Err(err.kind().unwrap())
        }
    }
}

/// Reads the server's verdict: true for `+`, false for a socket closed without one.
fn verdict(client: &mut TcpStream) -> bool {
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    match client.read(&mut byte) {
        Ok(1) => byte[0] == b'+',
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
        Err(e) => panic!("unexpected read error: {e}"),
    }
}

#[test]
fn pending_and_per_ip_limits_on_real_sockets() {
    let limits = ConnectionLimits::default()
        .with_max_pending_inbound(2)
        .with_max_inbound_per_ip(2)
        .with_loopback_exempt(false);
    let manager =
        ConnectionManager::new(ConnectionManagerConfig::default().with_limits(limits)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();

    // Two handshakes in progress fill the pending budget.
    let mut c1 = TcpStream::connect(addr).unwrap();
    let s1 = accept_gated(&listener, &manager).unwrap();
    assert!(verdict(&mut c1));
    let mut c2 = TcpStream::connect(addr).unwrap();
    let s2 = accept_gated(&listener, &manager).unwrap();
    assert!(verdict(&mut c2));

    // The third is refused before any handshake and sees its socket closed.
    let mut c3 = TcpStream::connect(addr).unwrap();
    assert_eq!(
        accept_gated(&listener, &manager).unwrap_err(),
        LimitKind::PendingInbound
    );
    assert!(!verdict(&mut c3));

    // The first handshake fails: dropping its socket and permit frees the slot.
    drop(s1);
    let mut c4 = TcpStream::connect(addr).unwrap();
    let _s4 = accept_gated(&listener, &manager).unwrap();
    assert!(verdict(&mut c4));

    // The second handshake succeeds and becomes established.
    let (socket2, permit2, remote2) = s2;
    let id = ConnectionId::next();
    let _ = manager
        .established(permit2, id, PeerId::random(), Direction::Inbound, &remote2)
        .unwrap();
    assert_eq!(manager.stats().established_inbound, 1);
    assert_eq!(manager.stats().pending_inbound, 1);

    // 127.0.0.1 holds one established and one pending connection: a pending slot is
    // free, but the per-IP limit of 2 refuses the next one.
    let mut c5 = TcpStream::connect(addr).unwrap();
    assert_eq!(
        accept_gated(&listener, &manager).unwrap_err(),
        LimitKind::PerIp("127.0.0.1".parse().unwrap())
    );
    assert!(!verdict(&mut c5));

    // Closing the established connection frees its per-IP slot.
    drop(socket2);
    manager.closed(id);
    let mut c6 = TcpStream::connect(addr).unwrap();
    assert!(accept_gated(&listener, &manager).is_ok());
    assert!(verdict(&mut c6));
}
