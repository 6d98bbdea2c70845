//! What every implementation under test offers the scenarios: a listening server that
//! serves `/perf/1.0.0` and `/echo/1.0.0`, and client nodes that dial, open streams
//! and close connections.

use futures::future::BoxFuture;
use futures::io::{AsyncRead, AsyncWrite};
use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};
use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use weft_interop_tests::{DelayRelay, UdpRelay, UdpRelayConfig};

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

/// Which stack a run uses: TCP with a security protocol (and yamux), or QUIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TCP + `/noise` + yamux.
    Noise,
    /// TCP + `/tls/1.0.0` + yamux.
    Tls,
    /// QUIC v1: libp2p TLS inside QUIC and QUIC's own streams.
    Quic,
}

impl Security {
    /// The label in the table: `Noise+yamux`, `TLS+yamux` or `QUIC`.
    pub fn label(self) -> &'static str {
        match self {
            Security::Noise => "Noise+yamux",
            Security::Tls => "TLS+yamux",
            Security::Quic => "QUIC",
        }
    }

    /// Where a server listens: TCP or UDP (QUIC) on 127.0.0.1, any port.
    pub fn listen_addr(self) -> Multiaddr {
        let addr = Multiaddr::empty().with(Protocol::Ip4(std::net::Ipv4Addr::LOCALHOST));
        match self {
            Security::Noise | Security::Tls => addr.with(Protocol::Tcp(0)),
            Security::Quic => addr.with(Protocol::Udp(0)).with(Protocol::QuicV1),
        }
    }
}

/// Where a client dials: a TCP or UDP address (the server's or a relay's) and the
/// server's id.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The address to connect to.
    pub addr: SocketAddr,
    /// Whether it is a QUIC (UDP) address.
    pub quic: bool,
    /// The peer that must answer.
    pub peer: PeerId,
}

impl Target {
    /// The server listening at `addr` (a `/tcp/` or `/udp/../quic-v1` multiaddr).
    pub fn at(addr: &Multiaddr, peer: PeerId) -> BenchResult<Target> {
        let (addr, quic) = socket_addr(addr)?;
        Ok(Target { addr, quic, peer })
    }

    /// The same server reached through another address of the same kind (a relay).
    pub fn via(self, addr: SocketAddr) -> Target {
        Target { addr, ..self }
    }

    /// `/ip4/../tcp/..` or `/ip4/../udp/../quic-v1` without the peer id.
    pub fn multiaddr(&self) -> Multiaddr {
        let ip = match self.addr.ip() {
            IpAddr::V4(v4) => Protocol::Ip4(v4),
            IpAddr::V6(v6) => Protocol::Ip6(v6),
        };
        let addr = Multiaddr::empty().with(ip);
        if self.quic {
            addr.with(Protocol::Udp(self.addr.port()))
                .with(Protocol::QuicV1)
        } else {
            addr.with(Protocol::Tcp(self.addr.port()))
        }
    }
}

/// The socket address inside a `/ip4/../tcp/..` or `/ip4/../udp/../quic-v1`
/// multiaddr, and whether it is QUIC.
pub fn socket_addr(addr: &Multiaddr) -> BenchResult<(SocketAddr, bool)> {
    let mut ip = None;
    let mut port = None;
    let mut quic = false;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(v4) => ip = Some(IpAddr::V4(v4)),
            Protocol::Ip6(v6) => ip = Some(IpAddr::V6(v6)),
            Protocol::Tcp(p) | Protocol::Udp(p) => port = Some(p),
            Protocol::QuicV1 => quic = true,
            _ => {}
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) => Ok((SocketAddr::new(ip, port), quic)),
        _ => Err(format!("{addr} is neither a TCP nor a QUIC address").into()),
    }
}

/// A relay in front of a server, kept alive (only held) while a measurement runs.
pub enum Relay {
    /// TCP: weft-interop-tests' `DelayRelay`.
    Tcp {
        /// Stops the relay when dropped.
        _relay: DelayRelay,
    },
    /// UDP (QUIC): weft-interop-tests' `UdpRelay`.
    Udp {
        /// Stops the relay when dropped.
        _relay: UdpRelay,
    },
}

/// The path to `target`: direct when `delay` is `None`, else through a relay that adds
/// `delay` each way (and, for QUIC, drops the fraction `loss` of the datagrams in each
/// direction, seeded).
pub async fn path(
    target: Target,
    delay: Option<Duration>,
    loss: f64,
) -> BenchResult<(Target, Option<Relay>)> {
    let Some(delay) = delay else {
        return Ok((target, None));
    };
    if target.quic {
        let config = UdpRelayConfig {
            loss,
            ..UdpRelayConfig::with_delay(delay)
        };
        let relay = UdpRelay::start(target.addr, config).await?;
        Ok((
            target.via(relay.local_addr()),
            Some(Relay::Udp { _relay: relay }),
        ))
    } else {
        if loss > 0.0 {
            return Err("the TCP relay cannot drop bytes".into());
        }
        let relay = DelayRelay::start(target.addr, delay).await?;
        Ok((
            target.via(relay.local_addr()),
            Some(Relay::Tcp { _relay: relay }),
        ))
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
