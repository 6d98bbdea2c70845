//! TCP on tokio: IPv4, IPv6 and `/dns`, `/dns4`, `/dns6` names.

use super::{Listener, Transport, TransportError, TransportOutput, Transported};
use multiaddr::{Multiaddr, Protocol};
use std::net::{IpAddr, SocketAddr};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::compat::TokioAsyncReadCompatExt;

/// The listen backlog: raised above the usual 128 so bursts of dials are not refused.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Which address families a `/dns*` name may resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Any,
    V4,
    V6,
}

/// A parsed TCP target: a socket address or a name still to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Ip(SocketAddr),
    Dns {
        name: String,
        family: Family,
        port: u16,
    },
}

fn parse(addr: &Multiaddr) -> Option<Target> {
    let mut iter = addr.iter();
    let host = iter.next()?;
    let port = match iter.next()? {
        Protocol::Tcp(port) => port,
        _ => return None,
    };
    if iter.next().is_some() {
        return None;
    }
    Some(match host {
        Protocol::Ip4(ip) => Target::Ip(SocketAddr::new(IpAddr::V4(ip), port)),
        Protocol::Ip6(ip) => Target::Ip(SocketAddr::new(IpAddr::V6(ip), port)),
        Protocol::Dns(name) => Target::Dns {
            name: name.to_string(),
            family: Family::Any,
            port,
        },
        Protocol::Dns4(name) => Target::Dns {
            name: name.to_string(),
            family: Family::V4,
            port,
        },
        Protocol::Dns6(name) => Target::Dns {
            name: name.to_string(),
            family: Family::V6,
            port,
        },
        _ => return None,
    })
}

/// The multiaddr of a socket address: `/ip4/../tcp/..` or `/ip6/../tcp/..`.
pub fn socket_to_multiaddr(addr: SocketAddr) -> Multiaddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) => Protocol::Ip4(ip),
        IpAddr::V6(ip) => Protocol::Ip6(ip),
    };
    Multiaddr::empty().with(ip).with(Protocol::Tcp(addr.port()))
}

async fn resolve(name: &str, family: Family, port: u16) -> Result<Vec<SocketAddr>, TransportError> {
    let found =
        tokio::net::lookup_host((name, port))
            .await
            .map_err(|e| TransportError::Resolve {
                name: name.to_string(),
                reason: e.to_string(),
            })?;
    let addrs: Vec<SocketAddr> = found
        .filter(|a| match family {
            Family::Any => true,
            Family::V4 => a.is_ipv4(),
            Family::V6 => a.is_ipv6(),
        })
        .collect();
    if addrs.is_empty() {
        return Err(TransportError::Resolve {
            name: name.to_string(),
            reason: "no address of the requested family".to_string(),
        });
    }
    Ok(addrs)
}

/// The TCP transport. Sets `TCP_NODELAY` on every connection: libp2p protocols are
/// request/response heavy and their writers already coalesce.
#[derive(Debug, Clone, Default)]
pub struct TcpTransport {
    _private: (),
}

impl TcpTransport {
    /// A new TCP transport.
    pub fn new() -> Self {
        TcpTransport::default()
    }
}

fn wrap(stream: TcpStream) -> Result<Transported, TransportError> {
    stream.set_nodelay(true)?;
    let local_addr = socket_to_multiaddr(stream.local_addr()?);
    let remote_addr = socket_to_multiaddr(stream.peer_addr()?);
    Ok(Transported {
        output: TransportOutput::Raw(Box::new(stream.compat())),
        local_addr,
        remote_addr,
    })
}

#[async_trait::async_trait]
impl Transport for TcpTransport {
    fn name(&self) -> &str {
        "tcp"
    }

    fn can_dial(&self, addr: &Multiaddr) -> bool {
        match parse(addr) {
            Some(Target::Ip(sa)) => !sa.ip().is_unspecified() && sa.port() != 0,
            Some(Target::Dns { port, .. }) => port != 0,
            None => false,
        }
    }

    fn can_listen(&self, addr: &Multiaddr) -> bool {
        matches!(parse(addr), Some(Target::Ip(_)))
    }

    async fn dial(&self, addr: &Multiaddr) -> Result<Transported, TransportError> {
        let targets = match parse(addr) {
            Some(Target::Ip(sa)) => vec![sa],
            Some(Target::Dns { name, family, port }) => resolve(&name, family, port).await?,
            None => return Err(TransportError::Unsupported(addr.clone())),
        };
        let mut last_error = None;
        for target in targets {
            match TcpStream::connect(target).await {
                Ok(stream) => return wrap(stream),
                Err(e) => last_error = Some(e),
            }
        }
        Err(TransportError::Io(last_error.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address to dial")
        })))
    }

    async fn listen(&self, addr: &Multiaddr) -> Result<Box<dyn Listener>, TransportError> {
        let Some(Target::Ip(sa)) = parse(addr) else {
            return Err(TransportError::Unsupported(addr.clone()));
        };
        let socket = if sa.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(sa)?;
        let listener = socket.listen(LISTEN_BACKLOG)?;
        let local = socket_to_multiaddr(listener.local_addr()?);
        Ok(Box::new(TcpListenerWrap { listener, local }))
    }
}

struct TcpListenerWrap {
    listener: TcpListener,
    local: Multiaddr,
}

#[async_trait::async_trait]
impl Listener for TcpListenerWrap {
    fn local_addrs(&self) -> Vec<Multiaddr> {
        vec![self.local.clone()]
    }

    async fn accept(&mut self) -> Result<Transported, TransportError> {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => return wrap(stream),
                // A connection that died before we accepted it is no reason to stop.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_and_dns_targets() {
        let a: Multiaddr = "/ip4/127.0.0.1/tcp/80".parse().unwrap();
        assert_eq!(parse(&a), Some(Target::Ip("127.0.0.1:80".parse().unwrap())));
        let b: Multiaddr = "/dns4/localhost/tcp/1".parse().unwrap();
        assert!(matches!(
            parse(&b),
            Some(Target::Dns {
                family: Family::V4,
                port: 1,
                ..
            })
        ));
        let c: Multiaddr = "/ip4/127.0.0.1/udp/80".parse().unwrap();
        assert_eq!(parse(&c), None);
        let d: Multiaddr = "/ip4/127.0.0.1/tcp/80/ws".parse().unwrap();
        assert_eq!(parse(&d), None);
    }

    #[tokio::test]
    async fn listens_on_port_zero_and_reports_the_real_port() {
        let t = TcpTransport::new();
        let l = t
            .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .await
            .unwrap();
        let addrs = l.local_addrs();
        assert_eq!(addrs.len(), 1);
        assert!(!addrs[0].to_string().ends_with("/tcp/0"));
    }

    #[tokio::test]
    async fn dials_a_dns4_name() {
        let t = TcpTransport::new();
        let mut l = t
            .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .await
            .unwrap();
        let Some(Protocol::Tcp(port)) = l.local_addrs()[0].iter().nth(1) else {
            panic!()
        };
        let target: Multiaddr = format!("/dns4/localhost/tcp/{port}").parse().unwrap();
        let (dialed, accepted) = tokio::join!(t.dial(&target), l.accept());
        assert_eq!(dialed.unwrap().remote_addr, accepted.unwrap().local_addr);
    }
}
