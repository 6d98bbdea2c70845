//! What every implementation under test offers the scenarios: a listening server that
//! serves `/perf/1.0.0` and `/echo/1.0.0`, and client nodes that dial, open streams
//! and close connections.

use futures::future::BoxFuture;
use futures::io::{AsyncRead, AsyncWrite};
use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};
use std::error::Error;
use std::net::{IpAddr, SocketAddr};

/// Errors of the bench: anything, boxed.
pub type BenchError = Box<dyn Error + Send + Sync>;
/// A result of the bench.
pub type BenchResult<T> = Result<T, BenchError>;

/// The echo protocol both servers speak.
pub const ECHO: &str = "/echo/1.0.0";
/// The perf protocol both servers speak.
pub const PERF: &str = "/perf/1.0.0";

/// A negotiated stream, whatever the implementation.
pub trait AsyncReadWrite: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncReadWrite for T {}
/// A boxed negotiated stream.
pub type BoxedStream = Box<dyn AsyncReadWrite>;

/// Which security protocol a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `/noise`.
    Noise,
    /// `/tls/1.0.0`.
    Tls,
}

impl Security {
    /// The label in the table.
    pub fn label(self) -> &'static str {
        match self {
            Security::Noise => "Noise",
            Security::Tls => "TLS",
        }
    }
}

/// Where a client dials: a TCP address (the server's or a relay's) and the server's id.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The TCP address to connect to.
    pub addr: SocketAddr,
    /// The peer that must answer.
    pub peer: PeerId,
}

impl Target {
    /// The same server reached through another TCP address (a relay).
    pub fn via(self, addr: SocketAddr) -> Target {
        Target { addr, ..self }
    }

    /// `/ip4/../tcp/..` without the peer id.
    pub fn multiaddr(&self) -> Multiaddr {
        let ip = match self.addr.ip() {
            IpAddr::V4(v4) => Protocol::Ip4(v4),
            IpAddr::V6(v6) => Protocol::Ip6(v6),
        };
        Multiaddr::empty()
            .with(ip)
            .with(Protocol::Tcp(self.addr.port()))
    }
}

/// The TCP socket address inside a `/ip4/../tcp/..` multiaddr.
pub fn socket_addr(addr: &Multiaddr) -> BenchResult<SocketAddr> {
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(v4) => ip = Some(IpAddr::V4(v4)),
            Protocol::Ip6(v6) => ip = Some(IpAddr::V6(v6)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) => Ok(SocketAddr::new(ip, port)),
        _ => Err(format!("{addr} is not a TCP address").into()),
    }
}

/// One client node of an implementation. Cheap to clone; the futures are `'static` so
/// they can be spawned.
pub trait Node: Clone + Send + Sync + 'static {
    /// A handle on one established connection.
    type Conn: Clone + Send + Sync + 'static;
    /// Opens a new connection (never reuses one) and completes the upgrade.
    fn dial(&self, target: Target) -> BoxFuture<'static, BenchResult<Self::Conn>>;
    /// Opens a stream on `conn` and negotiates `protocol`.
    fn open(
        &self,
        conn: &Self::Conn,
        protocol: &'static str,
    ) -> BoxFuture<'static, BenchResult<BoxedStream>>;
    /// Closes the connection and waits until it is gone.
    fn close(&self, conn: Self::Conn) -> BoxFuture<'static, ()>;
    /// Shuts the node down (its server too, if it is one).
    fn shutdown(&self) -> BoxFuture<'static, ()>;
}

/// An implementation under test.
pub trait Stack {
    /// Its client node.
    type Node: Node;
    /// The column name.
    const NAME: &'static str;
    /// Starts a server on `127.0.0.1:0` serving perf and echo; returns a handle that
    /// keeps it alive, and where to dial it.
    fn server(
        security: Security,
    ) -> impl std::future::Future<Output = BenchResult<(Self::Node, Target)>>;
    /// A client node.
    fn client(security: Security) -> impl std::future::Future<Output = BenchResult<Self::Node>>;
}
