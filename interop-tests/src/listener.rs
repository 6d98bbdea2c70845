//! A peer program running `listen`, killed when dropped.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::command::PeerCommand;
use crate::error::{HarnessError, Result};
use crate::output::OutputTail;
use crate::participant::{Impl, Security, Transport};
use crate::prepare::prepare_async;

/// How long a listener may take to print its address (node needs about a second).
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest address line we accept.
const MAX_LINE: usize = 1024;

/// A running `PEER listen ...` process and the address it printed.
///
/// The process is killed when this value is dropped.
#[derive(Debug)]
pub struct ListeningPeer {
    label: String,
    addr: Multiaddr,
    peer_id: PeerId,
    stderr: OutputTail,
    child: Child,
}

impl ListeningPeer {
    /// Prepares the peer of `imp` (once per process) and starts it listening on
    /// `127.0.0.1`, any port, with `security`.
    pub async fn spawn(imp: Impl, security: Security) -> Result<Self> {
        let command = prepare_async(imp).await?;
        Self::spawn_command(&command, security).await
    }

    /// Prepares the peer of `imp` and starts it listening on `transport`
    /// (`--transport tcp|quic`), `127.0.0.1`, any port.
    pub async fn spawn_on(imp: Impl, transport: Transport, security: Security) -> Result<Self> {
        let command = prepare_async(imp).await?;
        let args = command.listen_args_on(transport, security, Ipv4Addr::LOCALHOST, 0);
        Self::spawn_program(&command.label, &command.program, args).await
    }

    /// Starts any contract-following program listening on `127.0.0.1`, any port.
    pub async fn spawn_command(command: &PeerCommand, security: Security) -> Result<Self> {
        let args = command.listen_args(security, Ipv4Addr::LOCALHOST, 0);
        Self::spawn_program(&command.label, &command.program, args).await
    }

    /// Runs `program args...`, which must print its listen multiaddr (ending in
    /// `/p2p/<peer id>`) as its first stdout line, e.g. `weft listen --perf ...`, or
    /// `prlimit --nofile=256:256 -- weft listen ...` (`prlimit` execs the program, so
    /// [`pid`](Self::pid) is the listener's own).
    pub async fn spawn_program(
        label: &str,
        program: &Path,
        args: impl IntoIterator<Item = OsString>,
    ) -> Result<Self> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| HarnessError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        let stderr = child
            .stderr
            .take()
            .map(OutputTail::drain)
            .unwrap_or_default();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| HarnessError::Io(std::io::Error::other("child has no stdout pipe")))?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(LISTEN_TIMEOUT, async {
            (&mut stdout)
                .take(MAX_LINE as u64)
                .read_line(&mut line)
                .await
        })
        .await;
        let label = label.to_owned();
        match read {
            Err(_) => {
                return Err(HarnessError::ListenTimeout {
                    participant: label,
                    timeout: LISTEN_TIMEOUT,
                    stderr: stderr.text(),
                })
            }
            Ok(Err(e)) => return Err(HarnessError::Io(e)),
            Ok(Ok(_)) => {}
        }
        // Keep draining stdout, so a chatty peer never dies of a closed pipe.
        let _stdout_tail = OutputTail::drain(stdout);
        let bad = |reason: String| HarnessError::BadListenLine {
            participant: label.clone(),
            line: line.trim_end().to_owned(),
            reason,
            stderr: stderr.text(),
        };
        let addr: Multiaddr = line
            .trim_end()
            .parse()
            .map_err(|e| bad(format!("not a multiaddr: {e}")))?;
        let Some(Protocol::P2p(peer_id)) = addr.iter().last() else {
            return Err(bad("does not end in /p2p/<peer id>".into()));
        };
        if socket_addr_of(&addr).is_none() && !is_quic(&addr) {
            return Err(bad(
                "has no /ip4|ip6/.../tcp/... or /udp/.../quic-v1 part".into()
            ));
        }
        Ok(Self {
            label,
            addr,
            peer_id,
            stderr,
            child,
        })
    }

    /// The full address it printed, ending in `/p2p/<peer id>`.
    pub fn addr(&self) -> &Multiaddr {
        &self.addr
    }

    /// Its peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The participant's label, e.g. `"go-libp2p"`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The TCP socket address it listens on.
    pub fn socket_addr(&self) -> SocketAddr {
        // Checked in `spawn_command`.
        socket_addr_of(&self.addr).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Its address with the IP and TCP port replaced by `via` (e.g. a
    /// [`DelayRelay`](crate::DelayRelay) in front of it), keeping `/p2p/<peer id>`.
    pub fn addr_via(&self, via: SocketAddr) -> Multiaddr {
        Multiaddr::empty()
            .with(via.ip().into())
            .with(Protocol::Tcp(via.port()))
            .with(Protocol::P2p(self.peer_id))
    }

    /// The UDP socket address of its QUIC address (`/ip4/../udp/../quic-v1`), if it
    /// listens on QUIC.
    pub fn quic_socket_addr(&self) -> Option<SocketAddr> {
        quic_socket_addr_of(&self.addr)
    }

    /// Its QUIC address with the IP and UDP port replaced by `via` (e.g. a
    /// [`UdpRelay`](crate::UdpRelay) in front of it), keeping `/p2p/<peer id>`.
    pub fn quic_addr_via(&self, via: SocketAddr) -> Multiaddr {
        Multiaddr::empty()
            .with(via.ip().into())
            .with(Protocol::Udp(via.port()))
            .with(Protocol::QuicV1)
            .with(Protocol::P2p(self.peer_id))
    }

    /// What the process wrote on stderr so far (the last 64 KiB).
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// The process id (`None` once it has been reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Whether the multiaddr is a QUIC one (`/udp/.../quic-v1`).
fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::QuicV1))
}

/// The `ip:port` in an `/ip4|ip6/.../udp/.../quic-v1` multiaddr.
pub fn quic_socket_addr_of(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut iter = addr.iter();
    let ip = match iter.next()? {
        Protocol::Ip4(ip) => std::net::IpAddr::V4(ip),
        Protocol::Ip6(ip) => std::net::IpAddr::V6(ip),
        _ => return None,
    };
    match (iter.next()?, iter.next()?) {
        (Protocol::Udp(port), Protocol::QuicV1) => Some(SocketAddr::new(ip, port)),
        _ => None,
    }
}

/// The `ip:port` in an `/ip4|ip6/.../tcp/...` multiaddr.
pub fn socket_addr_of(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut iter = addr.iter();
    let ip = match iter.next()? {
        Protocol::Ip4(ip) => std::net::IpAddr::V4(ip),
        Protocol::Ip6(ip) => std::net::IpAddr::V6(ip),
        _ => return None,
    };
    match iter.next()? {
        Protocol::Tcp(port) => Some(SocketAddr::new(ip, port)),
        _ => None,
    }
}
