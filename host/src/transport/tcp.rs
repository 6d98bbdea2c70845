//! TCP on tokio: IPv4, IPv6 and `/dns`, `/dns4`, `/dns6` names.
//!
//! Every socket, dialed or accepted, gets `TCP_NODELAY` and TCP keep-alive
//! ([`TcpKeepAlive`]). With port reuse (on by default, see
//! [`TcpTransport::with_port_reuse`]) outbound connections leave from the port we
//! listen on, as go-libp2p's and rust-libp2p's TCP transports do by default: a remote
//! (and a NAT) sees our listen port as the source port, which is what identify's
//! observed-address confirmation and TCP hole punching need. A listener never gives up on a transient accept error (out of
//! file descriptors, out of buffers): it backs off and keeps accepting (see
//! [`AcceptBackoff`]).

use super::{Listener, Transport, TransportDialOpts, TransportError, TransportOutput, Transported};
use multiaddr::{Multiaddr, Protocol};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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

/// TCP keep-alive settings: after `idle` without traffic the kernel sends a probe every
/// `interval`; after `retries` unanswered probes the connection fails (reads and
/// writes return an error). With the defaults a peer that vanished (power off, cable
/// pulled, NAT mapping dropped while idle) is noticed after about 30 s of silence.
///
/// Keep-alive cannot see a dead relay or middlebox that still acknowledges segments;
/// the muxer's own pings cover that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepAlive {
    /// Silence before the first probe. Default 15 s.
    pub idle: Duration,
    /// Time between probes. Default 5 s.
    pub interval: Duration,
    /// Unanswered probes before the connection fails. Default 3.
    pub retries: u32,
}

impl Default for TcpKeepAlive {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(15),
            interval: Duration::from_secs(5),
            retries: 3,
        }
    }
}

impl TcpKeepAlive {
    fn apply(&self, stream: &TcpStream) -> io::Result<()> {
        let params = socket2::TcpKeepalive::new()
            .with_time(self.idle)
            .with_interval(self.interval);
        #[cfg(not(windows))]
        let params = params.with_retries(self.retries);
        socket2::SockRef::from(stream).set_tcp_keepalive(&params)
    }
}

/// The TCP transport. Sets `TCP_NODELAY` on every connection (libp2p protocols are
/// request/response heavy and their writers already coalesce) and TCP keep-alive
/// ([`TcpKeepAlive::default`] unless changed with [`TcpTransport::with_keepalive`]).
///
/// Its listeners absorb transient accept errors: [`Listener::accept`] returns an error
/// only for a listener that can never accept again (for example an invalid socket), so
/// a host that stops on an accept error never stops because the process ran out of
/// file descriptors for a moment.
///
/// Port reuse is on by default, as in go-libp2p and rust-libp2p. Its price: a
/// listener with `SO_REUSEPORT` lets another process of the same user bind the same
/// port (and take a share of its inbound connections); turn it off with
/// [`TcpTransport::with_port_reuse`] where other code of that user is not trusted.
#[derive(Debug, Clone)]
pub struct TcpTransport {
    keepalive: Option<TcpKeepAlive>,
    port_reuse: bool,
    /// The addresses our listeners are bound to (with port reuse on), shared by the
    /// clones of this transport.
    listening: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Default for TcpTransport {
    fn default() -> Self {
        Self {
            keepalive: Some(TcpKeepAlive::default()),
            port_reuse: true,
            listening: Arc::default(),
        }
    }
}

/// Removes a listener's address from the transport's list when the listener goes.
#[derive(Debug)]
struct ListeningGuard {
    listening: Arc<Mutex<Vec<SocketAddr>>>,
    addr: SocketAddr,
}

impl Drop for ListeningGuard {
    fn drop(&mut self) {
        let mut list = self
            .listening
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(i) = list.iter().position(|a| *a == self.addr) {
            list.swap_remove(i);
        }
    }
}

impl TcpTransport {
    /// A new TCP transport with the default keep-alive.
    pub fn new() -> Self {
        TcpTransport::default()
    }

    /// Sets the keep-alive of every socket; `None` leaves the operating system's
    /// default (usually off).
    pub fn with_keepalive(mut self, keepalive: Option<TcpKeepAlive>) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// Port reuse (default on): listeners get `SO_REUSEADDR` and `SO_REUSEPORT`, and a dial
    /// binds its socket to the address of a listener of the same family (so it
    /// leaves from our listen port), falling back to an ephemeral port when that
    /// bind or connect fails (for example a second connection to the same remote
    /// address and port).
    pub fn with_port_reuse(mut self, on: bool) -> Self {
        self.port_reuse = on;
        self
    }

    /// The local address a dial to `target` reuses: a listener of the same family,
    /// one on the target's kind of address (loopback or not) preferred.
    fn reuse_addr_for(&self, target: &SocketAddr) -> Option<SocketAddr> {
        if !self.port_reuse {
            return None;
        }
        let list = self
            .listening
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let same_family = list.iter().filter(|a| a.is_ipv4() == target.is_ipv4());
        let fits = |a: &&SocketAddr| {
            a.ip().is_unspecified() || a.ip().is_loopback() == target.ip().is_loopback()
        };
        same_family
            .clone()
            .find(fits)
            .copied()
            .filter(|local| !would_connect_to_itself(*local, *target))
    }

    /// Connects from `local` (our listen address) to `target`.
    async fn connect_from(local: SocketAddr, target: SocketAddr) -> io::Result<TcpStream> {
        let socket = if target.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        #[cfg(unix)]
        socket.set_reuseport(true)?;
        socket.bind(local)?;
        socket.connect(target).await
    }

    /// Connects to `target`, from our listen port when port reuse finds one. A
    /// `punch` (a hole punching dial, which has a forced role) never falls back to
    /// an ephemeral port: from another port it opens no hole, and the listen port
    /// fails only when a connection between the two endpoints exists already (the
    /// other side's SYN won), which a second one would merely duplicate.
    async fn connect(&self, target: SocketAddr, punch: bool) -> io::Result<TcpStream> {
        if let Some(local) = self.reuse_addr_for(&target) {
            match Self::connect_from(local, target).await {
                Ok(stream) => return Ok(stream),
                // Refused or unreachable says nothing about the port: report it.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused || punch => return Err(e),
                Err(e) => {
                    tracing::debug!(%local, %target, error = %e, "dialing from the listen port failed; using an ephemeral port");
                }
            }
        }
        TcpStream::connect(target).await
    }
}

/// Whether a socket bound to `local` and connected to `target` could be one socket
/// connected to itself (TCP's simultaneous open with the same 4-tuple at both ends):
/// the same port on one of our own IPs. Such a dial must not reuse the port: it
/// would never reach the listener.
fn would_connect_to_itself(local: SocketAddr, target: SocketAddr) -> bool {
    if local.port() != target.port() {
        return false;
    }
    if local.ip() == target.ip() || target.ip().is_loopback() {
        return true;
    }
    local.ip().is_unspecified()
        && if_addrs::get_if_addrs()
            .map(|ifs| ifs.iter().any(|i| i.ip() == target.ip()))
            .unwrap_or(true)
}

fn wrap(
    stream: TcpStream,
    keepalive: Option<&TcpKeepAlive>,
) -> Result<Transported, TransportError> {
    stream.set_nodelay(true)?;
    if let Some(keepalive) = keepalive {
        keepalive.apply(&stream)?;
    }
    let local_addr = socket_to_multiaddr(stream.local_addr()?);
    let remote_addr = socket_to_multiaddr(stream.peer_addr()?);
    Ok(Transported {
        output: TransportOutput::Raw(Box::new(stream.compat())),
        local_addr,
        remote_addr,
    })
}

/// What a listener does after a failed `accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptDecision {
    /// The error concerned one connection only (it was aborted or reset before we
    /// took it): accept the next one at once.
    Retry,
    /// A transient shortage (file descriptors, buffers, memory): wait `delay`, then
    /// accept again. `warn` is `Some(n)` when a warning is due, `n` being the number of
    /// failures since the last warning (one warning per [`AcceptBackoff::WARN_EVERY`]).
    Backoff {
        /// How long to wait before the next `accept`.
        delay: Duration,
        /// Failures to report in a warning now, if one is due.
        warn: Option<u64>,
    },
    /// The listener itself is unusable: give up.
    Fatal,
}

/// The accept loop's error policy, apart from any socket: exponential backoff from
/// [`AcceptBackoff::MIN_DELAY`] doubling to [`AcceptBackoff::MAX_DELAY`], reset by a
/// successful accept, and a warning at most every [`AcceptBackoff::WARN_EVERY`].
///
/// Only `InvalidInput` and `Unsupported` errors (the socket is not a listening socket)
/// are fatal; everything else (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`, and whatever
/// else the kernel reports) is taken as transient.
#[derive(Debug, Clone, Default)]
pub struct AcceptBackoff {
    delay: Option<Duration>,
    failures: u64,
    warned: bool,
    unreported: u64,
    last_warn: Option<Instant>,
}

impl AcceptBackoff {
    /// The first delay after a transient error.
    pub const MIN_DELAY: Duration = Duration::from_millis(5);
    /// The longest delay between two attempts.
    pub const MAX_DELAY: Duration = Duration::from_secs(1);
    /// The shortest time between two warnings.
    pub const WARN_EVERY: Duration = Duration::from_secs(10);

    /// Decides what to do after `error`, at `now`.
    pub fn on_error(&mut self, error: &io::Error, now: Instant) -> AcceptDecision {
        match error.kind() {
            io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock => return AcceptDecision::Retry,
            io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported => {
                return AcceptDecision::Fatal
            }
            _ => {}
        }
        let delay = match self.delay {
            None => Self::MIN_DELAY,
            Some(d) => (d * 2).min(Self::MAX_DELAY),
        };
        self.delay = Some(delay);
        self.failures += 1;
        self.unreported += 1;
        let due = self
            .last_warn
            .is_none_or(|at| now.saturating_duration_since(at) >= Self::WARN_EVERY);
        let warn = due.then(|| {
            self.last_warn = Some(now);
            self.warned = true;
            std::mem::take(&mut self.unreported)
        });
        AcceptDecision::Backoff { delay, warn }
    }

    /// A connection was accepted: the backoff starts over. Returns the number of
    /// failures in the streak that just ended if that streak was warned about (so a
    /// warning gets one matching recovery line); the warning rate limit carries over
    /// from streak to streak, so a listener that flips between failing and accepting
    /// still warns at most once every [`AcceptBackoff::WARN_EVERY`].
    pub fn on_success(&mut self) -> Option<u64> {
        self.delay = None;
        let failures = std::mem::take(&mut self.failures);
        std::mem::take(&mut self.warned).then_some(failures)
    }
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

    async fn dial(
        &self,
        addr: &Multiaddr,
        opts: &TransportDialOpts,
    ) -> Result<Transported, TransportError> {
        let targets = match parse(addr) {
            Some(Target::Ip(sa)) => vec![sa],
            Some(Target::Dns { name, family, port }) => resolve(&name, family, port).await?,
            None => return Err(TransportError::Unsupported(addr.clone())),
        };
        let mut last_error = None;
        for target in targets {
            match self.connect(target, opts.role.is_some()).await {
                Ok(stream) => return wrap(stream, self.keepalive.as_ref()),
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
        #[cfg(unix)]
        if self.port_reuse {
            socket.set_reuseport(true)?;
        }
        socket.bind(sa)?;
        let listener = socket.listen(LISTEN_BACKLOG)?;
        let bound = listener.local_addr()?;
        let local = socket_to_multiaddr(bound);
        let guard = self.port_reuse.then(|| {
            self.listening
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(bound);
            ListeningGuard {
                listening: self.listening.clone(),
                addr: bound,
            }
        });
        Ok(Box::new(TcpListenerWrap {
            listener,
            local,
            keepalive: self.keepalive,
            backoff: AcceptBackoff::default(),
            _reuse: guard,
        }))
    }
}

struct TcpListenerWrap {
    listener: TcpListener,
    local: Multiaddr,
    keepalive: Option<TcpKeepAlive>,
    backoff: AcceptBackoff,
    /// With port reuse: keeps our address in the transport's list while we listen.
    _reuse: Option<ListeningGuard>,
}

#[async_trait::async_trait]
impl Listener for TcpListenerWrap {
    fn local_addrs(&self) -> Vec<Multiaddr> {
        vec![self.local.clone()]
    }

    /// Waits for the next inbound connection. Transient errors never come out of here:
    /// see [`AcceptBackoff`]; only a listener that can never accept again returns an
    /// error.
    async fn accept(&mut self) -> Result<Transported, TransportError> {
        loop {
            let error = match self.listener.accept().await {
                Ok((stream, remote)) => {
                    if let Some(failures) = self.backoff.on_success() {
                        tracing::info!(listener = %self.local, failures, "accepting again");
                    }
                    match wrap(stream, self.keepalive.as_ref()) {
                        Ok(transported) => return Ok(transported),
                        // The connection died between accept and setup: not our problem.
                        Err(e) => {
                            tracing::debug!(%remote, error = %e, "dropped an accepted connection");
                            continue;
                        }
                    }
                }
                Err(e) => e,
            };
            match self.backoff.on_error(&error, Instant::now()) {
                AcceptDecision::Retry => continue,
                AcceptDecision::Fatal => return Err(error.into()),
                AcceptDecision::Backoff { delay, warn } => {
                    if let Some(failures) = warn {
                        tracing::warn!(
                            listener = %self.local,
                            %error,
                            failures,
                            "accept failed; backing off and retrying (at most one warning every {:?})",
                            AcceptBackoff::WARN_EVERY
                        );
                    } else {
                        tracing::debug!(listener = %self.local, %error, ?delay, "accept failed");
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_OPTS: TransportDialOpts = TransportDialOpts {
        peer: None,
        role: None,
        early_data: false,
    };

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

    fn emfile() -> io::Error {
        // What `accept` reports when the process is out of file descriptors.
        io::Error::from_raw_os_error(24)
    }

    #[test]
    fn backoff_doubles_to_a_second_and_resets_on_success() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..12 {
            match b.on_error(&emfile(), t0) {
                AcceptDecision::Backoff { delay, .. } => delays.push(delay.as_millis()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            delays,
            [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000]
        );
        assert_eq!(b.on_success(), Some(12));
        assert_eq!(b.on_success(), None);
        assert!(matches!(
            b.on_error(&emfile(), t0),
            AcceptDecision::Backoff { delay, .. } if delay == AcceptBackoff::MIN_DELAY
        ));
    }

    #[test]
    fn a_listener_that_flips_between_failing_and_accepting_warns_once_per_period() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let mut warnings = 0;
        let mut recoveries = 0;
        // 100 short streaks within 9.9 s.
        for i in 0..100 {
            let now = t0 + Duration::from_millis(i * 99);
            if let AcceptDecision::Backoff { warn: Some(_), .. } = b.on_error(&emfile(), now) {
                warnings += 1;
            }
            if b.on_success().is_some() {
                recoveries += 1;
            }
        }
        assert_eq!((warnings, recoveries), (1, 1));
        // The next period's warning counts every failure not yet reported.
        let next = b.on_error(&emfile(), t0 + Duration::from_secs(10));
        assert!(
            matches!(
                next,
                AcceptDecision::Backoff {
                    warn: Some(100),
                    ..
                }
            ),
            "{next:?}"
        );
    }

    #[test]
    fn warnings_are_rate_limited_and_count_the_failures_between() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let warn_at = |b: &mut AcceptBackoff, at: Duration| match b.on_error(&emfile(), t0 + at) {
            AcceptDecision::Backoff { warn, .. } => warn,
            other => panic!("{other:?}"),
        };
        assert_eq!(warn_at(&mut b, Duration::ZERO), Some(1));
        for i in 1..50 {
            assert_eq!(warn_at(&mut b, Duration::from_millis(i * 100)), None);
        }
        // 49 failures since the first warning, plus this one.
        assert_eq!(warn_at(&mut b, Duration::from_secs(10)), Some(50));
        assert_eq!(warn_at(&mut b, Duration::from_secs(11)), None);
    }

    #[test]
    fn per_connection_errors_retry_at_once_and_a_broken_listener_is_fatal() {
        let mut b = AcceptBackoff::default();
        let now = Instant::now();
        for kind in [
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::Interrupted,
        ] {
            assert_eq!(b.on_error(&kind.into(), now), AcceptDecision::Retry);
        }
        assert_eq!(
            b.on_error(&io::ErrorKind::InvalidInput.into(), now),
            AcceptDecision::Fatal
        );
        // ENFILE, ENOBUFS, ENOMEM and unknown errors are transient.
        for errno in [23, 105, 12, 9999] {
            let e = io::Error::from_raw_os_error(errno);
            assert!(
                matches!(b.on_error(&e, now), AcceptDecision::Backoff { .. }),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn every_wrapped_socket_gets_keepalive_and_nodelay() {
        // `wrap` is what both `dial` and `accept` hand their sockets to. A duplicate of
        // the descriptor shows the options set on the socket itself.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dialed = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        for socket in [dialed, accepted] {
            let probe = socket.try_clone().unwrap();
            socket.set_nonblocking(true).unwrap();
            let transported = wrap(
                TcpStream::from_std(socket).unwrap(),
                Some(&TcpKeepAlive::default()),
            )
            .unwrap();
            let sock = socket2::SockRef::from(&probe);
            assert!(sock.tcp_nodelay().unwrap());
            assert!(sock.keepalive().unwrap());
            assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(15));
            assert_eq!(
                sock.tcp_keepalive_interval().unwrap(),
                Duration::from_secs(5)
            );
            assert_eq!(sock.tcp_keepalive_retries().unwrap(), 3);
            drop(transported);
        }
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
        let (dialed, accepted) = tokio::join!(t.dial(&target, &NO_OPTS), l.accept());
        assert_eq!(dialed.unwrap().remote_addr, accepted.unwrap().local_addr);
    }

    #[tokio::test]
    async fn with_port_reuse_a_dial_leaves_from_the_listen_port() {
        let t = TcpTransport::new();
        let mut ours = t
            .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .await
            .unwrap();
        let Some(Protocol::Tcp(listen_port)) = ours.local_addrs()[0].iter().nth(1) else {
            panic!()
        };
        // The remote: a plain socket that tells us the source port it saw.
        let remote = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target: Multiaddr =
            format!("/ip4/127.0.0.1/tcp/{}", remote.local_addr().unwrap().port())
                .parse()
                .unwrap();
        let (dialed, accepted) = tokio::join!(t.dial(&target, &NO_OPTS), remote.accept());
        let dialed = dialed.unwrap();
        let (_, seen) = accepted.unwrap();
        assert_eq!(seen.port(), listen_port);
        assert_eq!(dialed.local_addr, ours.local_addrs()[0]);
        // A second connection to the same remote cannot use the same 4-tuple: it
        // falls back to an ephemeral port and still connects.
        let (again, accepted) = tokio::join!(t.dial(&target, &NO_OPTS), remote.accept());
        again.unwrap();
        assert_ne!(accepted.unwrap().1.port(), listen_port);
        // A dial to our own listen address never reuses its port: the socket would
        // connect to itself instead of reaching the listener.
        let own: Multiaddr = format!("/ip4/127.0.0.1/tcp/{listen_port}").parse().unwrap();
        let (to_self, accepted) = tokio::join!(t.dial(&own, &NO_OPTS), ours.accept());
        assert_eq!(to_self.unwrap().remote_addr, accepted.unwrap().local_addr);
        let local: SocketAddr = format!("127.0.0.1:{listen_port}").parse().unwrap();
        assert!(would_connect_to_itself(local, local));
        let any: SocketAddr = format!("0.0.0.0:{listen_port}").parse().unwrap();
        assert!(would_connect_to_itself(any, local));
        let elsewhere: SocketAddr = format!("198.51.100.1:{listen_port}").parse().unwrap();
        assert!(!would_connect_to_itself(local, elsewhere));
        assert!(!would_connect_to_itself(any, elsewhere));
        // Once the listener is gone, dials use ephemeral ports again.
        drop(ours);
        assert!(t.reuse_addr_for(&"127.0.0.1:1".parse().unwrap()).is_none());
        // With port reuse turned off nothing is reused.
        let plain = TcpTransport::new().with_port_reuse(false);
        let plain_listener = plain
            .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .await
            .unwrap();
        let Some(Protocol::Tcp(plain_port)) = plain_listener.local_addrs()[0].iter().nth(1) else {
            panic!()
        };
        let (dialed, accepted) = tokio::join!(plain.dial(&target, &NO_OPTS), remote.accept());
        dialed.unwrap();
        assert_ne!(accepted.unwrap().1.port(), plain_port);
    }
}
