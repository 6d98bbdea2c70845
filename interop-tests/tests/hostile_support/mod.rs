//! What the `hostile_*` tests share: an honest `weft dial`, a sampler of a process's
//! peak resident memory, a rust-libp2p 0.57 connection (TCP + Noise + yamux from
//! `libp2p-core`, or QUIC from `libp2p-quic`) on which a test opens raw streams and
//! speaks multistream-select itself, so that it sees exactly what the listener answers
//! (`na`, an accept, a reset), and a flood of abandoned QUIC handshakes ([`initials`]).
#![allow(dead_code)] // each test binary uses a part

pub mod initials;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::channel::oneshot;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::core::muxing::{StreamMuxerBox, StreamMuxerExt, SubstreamBox};
use libp2p::core::transport::{Boxed, DialOpts, PortUse};
use libp2p::core::upgrade::Version;
use libp2p::core::Endpoint;
use libp2p::{Multiaddr, PeerId, Transport};
use libp2p_identity::Keypair;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weft_interop_tests::{procfs, run_weft, WeftRun};

/// How much a listener's resident memory may grow under any attack here: the budget
/// the issue holds `weft listen`'s defaults to.
pub const GROWTH_BUDGET_KIB: u64 = 64 * 1024;

/// The multistream-select header message, as it goes on the wire.
pub const MSS_HEADER: &[u8] = b"\x13/multistream/1.0.0\n";
/// The longest multistream-select message we read.
const MAX_MSS_MESSAGE: usize = 1024;

/// Runs an honest `weft --json dial ADDR --echo N --timeout-secs T`.
pub async fn honest_dial(addr: &Multiaddr, echo_bytes: usize, timeout: Duration) -> WeftRun {
    let args = [
        "--json".to_owned(),
        "dial".to_owned(),
        addr.to_string(),
        "--echo".to_owned(),
        echo_bytes.to_string(),
        "--timeout-secs".to_owned(),
        timeout.as_secs().max(1).to_string(),
    ];
    run_weft(&args, timeout + Duration::from_secs(15))
        .await
        .expect("run weft dial")
}

/// What a `weft --json dial` printed: its connect time (`connect_ms`), its identify
/// protocols, or its error.
#[derive(Debug, Clone, Default)]
pub struct DialSummary {
    /// Time to connect and upgrade, ms.
    pub connect_ms: Option<f64>,
    /// The protocols the listener advertised through identify.
    pub protocols: Vec<String>,
    /// The error it reported.
    pub error: Option<String>,
}

impl DialSummary {
    /// Parses the last JSON line of a run's stdout.
    pub fn of(run: &WeftRun) -> Self {
        let Some(line) = run.stdout.lines().rev().find(|l| !l.trim().is_empty()) else {
            return Self::default();
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            return Self::default();
        };
        Self {
            connect_ms: value.get("connect_ms").and_then(|v| v.as_f64()),
            protocols: value
                .get("protocols")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            error: value
                .get("error")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
        }
    }
}

/// Opens `count` TCP connections to `target` from the loopback addresses
/// `127.0.0.2..=127.0.0.(1 + sources)` (bound before connecting, round robin), each
/// writing `greeting` (may be empty) and then holding still. Connections that do not
/// complete within 3 s are left out; returns those that did.
pub async fn hold_sockets(
    target: SocketAddr,
    count: usize,
    sources: u8,
    first_source: usize,
    greeting: &'static [u8],
) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt as _;
    let mut held = Vec::with_capacity(count);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let host = 2 + ((first_source + i) % usize::from(sources.max(1))) as u8;
        tasks.spawn(async move {
            let socket = tokio::net::TcpSocket::new_v4().ok()?;
            socket.bind(SocketAddr::from(([127, 0, 0, host], 0))).ok()?;
            let mut stream = tokio::time::timeout(Duration::from_secs(3), socket.connect(target))
                .await
                .ok()?
                .ok()?;
            if !greeting.is_empty() {
                stream.write_all(greeting).await.ok()?;
            }
            Some(stream)
        });
        // At most 256 connects in flight.
        while tasks.len() >= 256 {
            if let Some(Ok(Some(stream))) = tasks.join_next().await {
                held.push(stream);
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(Some(stream)) = done {
            held.push(stream);
        }
    }
    held
}

/// Samples a process's resident memory every 50 ms and keeps the largest sample.
pub struct RssSampler {
    max_kib: Arc<AtomicU64>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> Self {
        let max_kib = Arc::new(AtomicU64::new(procfs::rss_kib(pid).unwrap_or(0)));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (max_kib, stop) = (Arc::clone(&max_kib), stop.clone());
            async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                    match procfs::rss_kib(pid) {
                        Ok(kib) => {
                            max_kib.fetch_max(kib, Ordering::Relaxed);
                        }
                        Err(_) => break,
                    }
                }
            }
        });
        Self {
            max_kib,
            stop,
            task,
        }
    }

    /// The largest sample so far, KiB.
    pub fn max_kib(&self) -> u64 {
        self.max_kib.load(Ordering::Relaxed)
    }

    /// Stops and returns the largest sample, KiB.
    pub async fn stop(self) -> u64 {
        self.stop.cancel();
        let max_kib = Arc::clone(&self.max_kib);
        let _ = self.task.await;
        max_kib.load(Ordering::Relaxed)
    }
}

/// A rust-libp2p connection driven on its own task. Inbound streams are refused
/// (dropped); outbound streams are handed out raw, before any negotiation.
pub struct RawConn {
    /// The listener's peer id, as its handshake proved it.
    pub remote: PeerId,
    /// Our own peer id.
    pub local: PeerId,
    open: mpsc::UnboundedSender<oneshot::Sender<io::Result<SubstreamBox>>>,
    closed: CancellationToken,
}

impl RawConn {
    /// Dials `addr` with a fresh identity over TCP + Noise + yamux.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        Self::connect_as(addr, Keypair::generate_ed25519()).await
    }

    /// Dials `addr` with a fresh identity, allowing up to `max_streams` open streams on
    /// our side (rust-libp2p's yamux allows 512 by default).
    pub async fn connect_with_streams(addr: SocketAddr, max_streams: usize) -> io::Result<Self> {
        Self::connect_inner(addr, Keypair::generate_ed25519(), max_streams).await
    }

    /// Dials `addr` as `keypair`.
    pub async fn connect_as(addr: SocketAddr, keypair: Keypair) -> io::Result<Self> {
        Self::connect_inner(addr, keypair, 512).await
    }

    /// Dials `addr` with a fresh identity over QUIC (rust-libp2p's `libp2p-quic`,
    /// its default configuration).
    pub async fn connect_quic(addr: SocketAddr) -> io::Result<Self> {
        let keypair = Keypair::generate_ed25519();
        let transport = libp2p::quic::tokio::Transport::new(libp2p::quic::Config::new(&keypair))
            .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)))
            .boxed();
        let target = format!("/ip4/{}/udp/{}/quic-v1", addr.ip(), addr.port());
        Self::connect_over(transport, target, keypair).await
    }

    async fn connect_inner(
        addr: SocketAddr,
        keypair: Keypair,
        max_streams: usize,
    ) -> io::Result<Self> {
        let transport = transport(&keypair, max_streams);
        let target = format!("/ip4/{}/tcp/{}", addr.ip(), addr.port());
        Self::connect_over(transport, target, keypair).await
    }

    async fn connect_over(
        mut transport: Boxed<(PeerId, StreamMuxerBox)>,
        target: String,
        keypair: Keypair,
    ) -> io::Result<Self> {
        let target: Multiaddr = target.parse().map_err(io::Error::other)?;
        let dial = transport
            .dial(
                target,
                DialOpts {
                    role: Endpoint::Dialer,
                    port_use: PortUse::New,
                },
            )
            .map_err(io::Error::other)?;
        let (remote, muxer) = tokio::time::timeout(Duration::from_secs(10), dial)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upgrade timed out"))??;
        let (open, requests) = mpsc::unbounded_channel();
        let closed = CancellationToken::new();
        tokio::spawn(drive(muxer, requests, closed.clone()));
        Ok(Self {
            remote,
            local: keypair.public().to_peer_id(),
            open,
            closed,
        })
    }

    /// Opens a raw (not yet negotiated) outbound stream.
    pub async fn open(&self) -> io::Result<SubstreamBox> {
        let (reply, stream) = oneshot::channel();
        self.open
            .send(reply)
            .map_err(|_| io::Error::new(io::ErrorKind::NotConnected, "connection ended"))?;
        stream
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::NotConnected, "connection ended"))?
    }

    /// Whether the connection has ended (closed by either side or failed).
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }
}

impl Drop for RawConn {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

fn transport(keypair: &Keypair, max_streams: usize) -> Boxed<(PeerId, StreamMuxerBox)> {
    let mut yamux = libp2p::yamux::Config::default();
    yamux.set_max_num_streams(max_streams);
    libp2p::tcp::tokio::Transport::new(libp2p::tcp::Config::default().nodelay(true))
        .upgrade(Version::V1)
        .authenticate(libp2p::noise::Config::new(keypair).expect("noise config"))
        .multiplex(yamux)
        .timeout(Duration::from_secs(10))
        .boxed()
}

async fn drive(
    mut muxer: StreamMuxerBox,
    mut requests: mpsc::UnboundedReceiver<oneshot::Sender<io::Result<SubstreamBox>>>,
    closed: CancellationToken,
) {
    let mut waiting = VecDeque::new();
    let ended = futures::future::poll_fn(|cx| loop {
        let mut progress = false;
        match muxer.poll_unpin(cx) {
            Poll::Ready(Ok(_)) => progress = true,
            Poll::Ready(Err(e)) => return Poll::Ready(e.to_string()),
            Poll::Pending => {}
        }
        while let Poll::Ready(Some(reply)) = requests.poll_recv(cx) {
            waiting.push_back(reply);
        }
        if !waiting.is_empty() {
            match muxer.poll_outbound_unpin(cx) {
                Poll::Ready(Ok(stream)) => {
                    if let Some(reply) = waiting.pop_front() {
                        let _ = reply.send(Ok(stream));
                    }
                    progress = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(e.to_string()),
                Poll::Pending => {}
            }
        }
        match muxer.poll_inbound_unpin(cx) {
            // Not ours to serve (identify, pushes): refused.
            Poll::Ready(Ok(stream)) => {
                drop(stream);
                progress = true;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(e.to_string()),
            Poll::Pending => {}
        }
        if !progress {
            return Poll::Pending;
        }
    });
    tokio::select! {
        _ = closed.cancelled() => {
            let _ = futures::future::poll_fn(|cx| muxer.poll_close_unpin(cx)).await;
        }
        _ = ended => {}
    }
    closed.cancel();
    for reply in waiting {
        let _ = reply.send(Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "connection ended",
        )));
    }
}

/// What the listener answered a protocol proposal with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It echoed the protocol: accepted.
    Accepted,
    /// It said `na`.
    Na,
    /// The stream failed, ended, timed out or carried something else.
    Failed(String),
}

/// Proposes `protocol` on a raw stream (header and proposal in one write, as a dialer
/// does) and reads the listener's answer, within `timeout`.
pub async fn propose<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    protocol: &str,
    timeout: Duration,
) -> Answer {
    let run = async {
        let mut out = MSS_HEADER.to_vec();
        encode_message(&mut out, protocol);
        stream.write_all(&out).await?;
        stream.flush().await?;
        let header = read_message(stream).await?;
        if header.as_slice() != &MSS_HEADER[1..] {
            return Ok(Answer::Failed(format!(
                "answered the header with {:?}",
                String::from_utf8_lossy(&header)
            )));
        }
        let answer = read_message(stream).await?;
        Ok::<_, io::Error>(match answer.as_slice() {
            b"na\n" => Answer::Na,
            a if a.strip_suffix(b"\n") == Some(protocol.as_bytes()) => Answer::Accepted,
            other => Answer::Failed(format!("answered {:?}", String::from_utf8_lossy(other))),
        })
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => Answer::Failed(format!("{:?}: {e}", e.kind())),
        Err(_) => Answer::Failed(format!("no answer within {timeout:?}")),
    }
}

/// Appends one multistream-select message (`uvarint(len) protocol \n`).
pub fn encode_message(out: &mut Vec<u8>, protocol: &str) {
    let len = protocol.len() + 1;
    let mut buf = unsigned_varint_encode(len);
    out.append(&mut buf);
    out.extend_from_slice(protocol.as_bytes());
    out.push(b'\n');
}

fn unsigned_varint_encode(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Reads one multistream-select message, at most [`MAX_MSS_MESSAGE`] bytes.
async fn read_message<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Vec<u8>> {
    let mut len = 0usize;
    for shift in [0, 7] {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await?;
        len |= usize::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            if len > MAX_MSS_MESSAGE {
                break;
            }
            let mut message = vec![0u8; len];
            stream.read_exact(&mut message).await?;
            return Ok(message);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "multistream-select message too long",
    ))
}

/// Reads from `stream` until EOF, an error or `timeout`, counting bytes (discarded).
/// Returns the count and how it ended.
pub async fn drain<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> (u64, Result<(), String>) {
    let mut count = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let run = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => count += n as u64,
                Err(e) => return Err(format!("{:?}: {e}", e.kind())),
            }
        }
    };
    let ended = tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| Err(format!("still open after {timeout:?}")));
    (count, ended)
}
