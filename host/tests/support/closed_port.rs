//! A TCP port on 127.0.0.1 that refuses connections for as long as it is held.
//!
//! A listener bound on port 0 and dropped frees its port for the next bind, and the
//! tests of a binary run in parallel: another test's listener can be handed the
//! "closed" port, and the dial meant to be refused reaches a host. A socket that is
//! bound and never listened on keeps the port taken, and connecting is refused.
#![allow(dead_code)] // each test file uses part of it

use tokio::net::TcpSocket;
use weft_host::Multiaddr;

/// A refused TCP port on 127.0.0.1, held until dropped.
pub struct ClosedPort {
    _socket: TcpSocket,
    port: u16,
}

impl ClosedPort {
    /// Binds a fresh port without listening on it.
    pub fn bind() -> Self {
        let socket = TcpSocket::new_v4().expect("a TCP socket");
        socket.bind(([127, 0, 0, 1], 0).into()).expect("binds");
        let port = socket.local_addr().expect("bound").port();
        Self {
            _socket: socket,
            port,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `/ip4/127.0.0.1/tcp/<port>`.
    pub fn addr(&self) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{}", self.port)
            .parse()
            .expect("a valid multiaddr")
    }
}
