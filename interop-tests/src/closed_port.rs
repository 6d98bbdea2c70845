//! A TCP port on 127.0.0.1 that refuses connections and stays closed.
//!
//! Binding a listener on port 0 and dropping it frees the port for the next bind:
//! a listener the test starts afterwards (in this process or another) can be handed
//! the same port, and "closed" becomes "answers". A socket that is bound and never
//! listened on holds the port while it lives, and connecting to it is refused.

use std::net::{Ipv4Addr, SocketAddr};
use tokio::net::TcpSocket;

/// A refused TCP port on 127.0.0.1, held until dropped.
#[derive(Debug)]
pub struct ClosedTcpPort {
    _socket: TcpSocket,
    addr: SocketAddr,
}

impl ClosedTcpPort {
    /// Binds a fresh port without listening on it.
    pub fn bind() -> std::io::Result<Self> {
        let socket = TcpSocket::new_v4()?;
        socket.bind((Ipv4Addr::LOCALHOST, 0).into())?;
        let addr = socket.local_addr()?;
        Ok(Self {
            _socket: socket,
            addr,
        })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connecting_is_refused_and_the_port_cannot_be_listened_on() {
        let closed = ClosedTcpPort::bind().unwrap();
        let err = tokio::net::TcpStream::connect(closed.addr())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        assert!(std::net::TcpListener::bind(closed.addr()).is_err());
    }
}
