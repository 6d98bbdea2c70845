//! A TCP forwarder on 127.0.0.1 that delays every chunk by a fixed one-way delay.
//!
//! For each accepted connection, [`DelayRelay`] connects to the target and forwards
//! both directions. Each direction reads as fast as the sender writes and queues
//! `(deadline, bytes)` with `deadline = arrival + one_way_delay` in an unbounded
//! queue; a writer sends each chunk when its deadline passes, together with every
//! later chunk already due, in one vectored write (a backlog costs one syscall and
//! one wake-up, not one per read). Each direction runs as a task of its own, and
//! reads are queued without a copy. So a ping-pong sees
//! `RTT + 2 × one_way_delay`, order is kept, and throughput is limited only by the
//! endpoints (the relay never applies back-pressure: its buffering is unbounded,
//! which is fine for a test tool and means memory grows with bytes in flight).
//!
//! End of stream is forwarded (after the delay) as a write-side shutdown, so
//! half-close works end to end. A read or write error on either side resets both
//! sockets (`SO_LINGER` 0), so the endpoints see an error rather than a clean close.
//!
//! [`DelayRelay::stall`] makes it a dead link: it stops reading and writing in both
//! directions, on every connection, without closing anything (a NAT mapping dropped, a
//! cable pulled). The relay's kernel keeps acknowledging what fits in its socket
//! buffers, so TCP itself sees nothing wrong; only the endpoints' own liveness checks
//! can. [`DelayRelay::resume`] lets the bytes flow again.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, Instrument};

/// Size of the buffer reads land in; a new one is allocated when less than
/// [`MIN_READ_ROOM`] is left.
const ARENA: usize = 1024 * 1024;
/// The least room a read is given.
const MIN_READ_ROOM: usize = 64 * 1024;
/// The most chunks one vectored write hands to the kernel.
const MAX_BATCH: usize = 64;
/// How long connecting to the target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Byte counters shared by the relay and its connections.
#[derive(Debug)]
struct Counters {
    to_target: AtomicU64,
    from_target: AtomicU64,
    connections: AtomicU64,
    /// Stall once `to_target` reaches this many bytes (`u64::MAX`: never).
    stall_at_to_target: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            to_target: AtomicU64::new(0),
            from_target: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            stall_at_to_target: AtomicU64::new(u64::MAX),
        }
    }
}

/// A running delaying relay; it stops (and resets its connections) when dropped.
#[derive(Debug)]
pub struct DelayRelay {
    local_addr: SocketAddr,
    target: SocketAddr,
    one_way_delay: Duration,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
    stalled: watch::Sender<bool>,
}

impl DelayRelay {
    /// Starts a relay on `127.0.0.1`, any port, forwarding to `target` with
    /// `one_way_delay` in each direction. Must be called within a tokio runtime.
    pub async fn start(target: SocketAddr, one_way_delay: Duration) -> io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), target, one_way_delay).await
    }

    /// Like [`DelayRelay::start`], listening on `listen`.
    pub async fn start_on(
        listen: SocketAddr,
        target: SocketAddr,
        one_way_delay: Duration,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let shutdown = CancellationToken::new();
        let (stalled, _) = watch::channel(false);
        tokio::spawn(accept_loop(
            listener,
            target,
            one_way_delay,
            Arc::clone(&counters),
            shutdown.clone(),
            stalled.clone(),
        ));
        Ok(Self {
            local_addr,
            target,
            one_way_delay,
            counters,
            shutdown,
            stalled,
        })
    }

    /// Stops passing bytes in both directions on every connection, without closing
    /// anything: a dead link. Bytes already read stay queued; new connections are still
    /// accepted and connected, but carry nothing either.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Stalls (see [`stall`](Self::stall)) as soon as `bytes` in all have been written
    /// to the target, counted from the relay's start: a link that dies mid-transfer.
    pub fn stall_after_to_target(&self, bytes: u64) {
        self.counters
            .stall_at_to_target
            .store(bytes, Ordering::Relaxed);
        if self.bytes_to_target() >= bytes {
            self.stall();
        }
    }

    /// Passes bytes again after [`stall`](Self::stall), in order.
    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }

    /// Whether the relay is stalled.
    pub fn is_stalled(&self) -> bool {
        *self.stalled.borrow()
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address connections are forwarded to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The delay added in each direction.
    pub fn one_way_delay(&self) -> Duration {
        self.one_way_delay
    }

    /// Bytes written to the target so far, over all connections.
    pub fn bytes_to_target(&self) -> u64 {
        self.counters.to_target.load(Ordering::Relaxed)
    }

    /// Bytes written back to clients so far, over all connections.
    pub fn bytes_from_target(&self) -> u64 {
        self.counters.from_target.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::Relaxed)
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    delay: Duration,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
    stall: watch::Sender<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (client, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // E.g. too many open files: back off instead of spinning.
                debug!(error = %e, "relay accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        counters.connections.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!("relay_connection", %peer, %target);
        tokio::spawn(
            relay_connection(
                client,
                target,
                delay,
                Arc::clone(&counters),
                shutdown.child_token(),
                stall.clone(),
            )
            .instrument(span),
        );
    }
}

async fn relay_connection(
    client: TcpStream,
    target: SocketAddr,
    delay: Duration,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    stall: watch::Sender<bool>,
) {
    let server = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(server)) => server,
        Ok(Err(e)) => {
            debug!(error = %e, "relay cannot reach target");
            reset(&client);
            return;
        }
        Err(_) => {
            debug!("relay timed out connecting to target");
            reset(&client);
            return;
        }
    };
    for stream in [&client, &server] {
        // Small writes must not wait for Nagle: the delay is ours to add.
        let _ = stream.set_nodelay(true);
    }
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let to_target = forward(
        client_read,
        server_write,
        delay,
        Arc::clone(&counters),
        Direction::ToTarget,
        cancel.clone(),
        stall.clone(),
    );
    let from_target = forward(
        server_read,
        client_write,
        delay,
        counters,
        Direction::FromTarget,
        cancel,
        stall,
    );
    // Each direction is a task of its own: a wake-up of one (every chunk) does not
    // poll the other, and the two may run on different workers.
    let to_target = tokio::spawn(to_target.in_current_span());
    let from_target = tokio::spawn(from_target.in_current_span());
    let _ = tokio::join!(to_target, from_target);
}

/// Which way a [`forward`] pipeline moves bytes.
#[derive(Debug, Clone, Copy)]
enum Direction {
    ToTarget,
    FromTarget,
}

/// One entry of a direction's delay queue.
#[derive(Debug)]
enum Queued {
    /// Bytes to write at the deadline.
    Data(Instant, Bytes),
    /// The sender half-closed: shut down the write side at the deadline.
    Eof(Instant),
    /// Reading failed: reset both connections at the deadline.
    Error(Instant),
}

impl Queued {
    fn deadline(&self) -> Instant {
        match self {
            Queued::Data(at, _) | Queued::Eof(at) | Queued::Error(at) => *at,
        }
    }
}

/// What a reader's wait ended with.
enum ReadStep {
    Cancelled,
    Stalled,
    Read(io::Result<usize>),
}

/// Moves one direction: a reader that queues chunks and a writer that releases them.
async fn forward(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay: Duration,
    counters: Arc<Counters>,
    direction: Direction,
    cancel: CancellationToken,
    stall: watch::Sender<bool>,
) {
    let (queue, mut released) = mpsc::unbounded_channel::<Queued>();
    let mut read_stall = stall.subscribe();
    let mut write_stall = stall.subscribe();
    let reader = async {
        // Reads land in one arena, and each read is split off it and queued as it is
        // (no copy, however short the read). A new arena is allocated only when the
        // current one is nearly full; it is freed once all its chunks are written.
        let mut arena = BytesMut::new();
        loop {
            if arena.capacity() - arena.len() < MIN_READ_ROOM {
                arena.reserve(ARENA);
            }
            // Reading is cancel safe: a stall that starts mid-read loses no bytes.
            let step = tokio::select! {
                _ = cancel.cancelled() => ReadStep::Cancelled,
                Ok(_) = read_stall.wait_for(|stalled| *stalled) => ReadStep::Stalled,
                read = from.read_buf(&mut arena) => ReadStep::Read(read),
            };
            let read = match step {
                ReadStep::Cancelled => {
                    reset(from.as_ref());
                    return;
                }
                ReadStep::Stalled => {
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = read_stall.wait_for(|stalled| !*stalled) => {}
                    }
                    continue;
                }
                ReadStep::Read(read) => read,
            };
            let deadline = Instant::now() + delay;
            let (item, last) = match read {
                Ok(0) => (Queued::Eof(deadline), true),
                Ok(_) => (Queued::Data(deadline, arena.split().freeze()), false),
                Err(e) => {
                    debug!(?direction, error = %e, "relay read failed");
                    (Queued::Error(deadline), true)
                }
            };
            if queue.send(item).is_err() || last {
                return;
            }
        }
    };
    let writer = async {
        let counter = match direction {
            Direction::ToTarget => &counters.to_target,
            Direction::FromTarget => &counters.from_target,
        };
        // An item taken off the queue while gathering a batch but not yet due.
        let mut next: Option<Queued> = None;
        let mut batch: Vec<Bytes> = Vec::with_capacity(MAX_BATCH);
        loop {
            let item = match next.take() {
                Some(item) => item,
                None => {
                    let received = tokio::select! {
                        _ = cancel.cancelled() => break,
                        item = released.recv() => item,
                    };
                    match received {
                        Some(item) => item,
                        None => break,
                    }
                }
            };
            let deadline = item.deadline();
            // Only a chunk still in the future needs the timer: one already due (a
            // backlog, or no delay at all) is written at once.
            if deadline > Instant::now() {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    () = tokio::time::sleep_until(deadline) => {}
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = write_stall.wait_for(|stalled| !*stalled) => {}
            }
            match item {
                Queued::Data(_, bytes) => {
                    // Every further chunk already due goes out in the same write, up to
                    // the bytes after which the relay is to stall.
                    let stall_at = counters.stall_at_to_target.load(Ordering::Relaxed);
                    let room = match direction {
                        Direction::ToTarget => {
                            stall_at.saturating_sub(counter.load(Ordering::Relaxed))
                        }
                        Direction::FromTarget => u64::MAX,
                    };
                    let mut gathered = bytes.len() as u64;
                    batch.push(bytes);
                    let now = Instant::now();
                    while batch.len() < MAX_BATCH && gathered < room {
                        match released.try_recv() {
                            Ok(Queued::Data(at, bytes)) if at <= now => {
                                gathered += bytes.len() as u64;
                                batch.push(bytes);
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let written = tokio::select! {
                        _ = cancel.cancelled() => break,
                        written = write_batch(&mut to, &batch) => written,
                    };
                    batch.clear();
                    if let Err(e) = written {
                        debug!(?direction, error = %e, "relay write failed");
                        cancel.cancel();
                        break;
                    }
                    let total = counter.fetch_add(gathered, Ordering::Relaxed) + gathered;
                    if matches!(direction, Direction::ToTarget)
                        && total >= counters.stall_at_to_target.load(Ordering::Relaxed)
                    {
                        stall.send_replace(true);
                    }
                }
                Queued::Eof(_) => {
                    if let Err(e) = to.shutdown().await {
                        debug!(?direction, error = %e, "relay shutdown failed");
                        cancel.cancel();
                        break;
                    }
                    return;
                }
                Queued::Error(_) => {
                    cancel.cancel();
                    break;
                }
            }
        }
        // Cancelled: reset instead of the graceful shutdown a dropped write half does.
        reset(to.as_ref());
        to.forget();
    };
    tokio::join!(reader, writer);
}

/// Writes all of `batch`, in vectored writes (one syscall for many chunks).
async fn write_batch(to: &mut OwnedWriteHalf, batch: &[Bytes]) -> io::Result<()> {
    let mut first = 0;
    let mut offset = 0;
    while first < batch.len() {
        let slices: Vec<IoSlice<'_>> = batch
            .iter()
            .skip(first)
            .enumerate()
            .map(|(i, chunk)| {
                IoSlice::new(
                    chunk
                        .get(if i == 0 { offset } else { 0 }..)
                        .unwrap_or_default(),
                )
            })
            .collect();
        let mut n = to.write_vectored(&slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 && first < batch.len() {
            let left = batch.get(first).map_or(0, Bytes::len) - offset;
            if n >= left {
                n -= left;
                first += 1;
                offset = 0;
            } else {
                offset += n;
                n = 0;
            }
        }
    }
    Ok(())
}

/// Makes the socket's final close send a reset rather than a FIN.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on 127.0.0.1.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = socket.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_stalled_relay_passes_nothing_until_resumed() {
        let relay = DelayRelay::start(echo_server().await, Duration::ZERO)
            .await
            .unwrap();
        let mut client = TcpStream::connect(relay.local_addr()).await.unwrap();
        let mut buf = [0u8; 5];
        client.write_all(b"hello").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");

        relay.stall();
        assert!(relay.is_stalled());
        client.write_all(b"again").await.unwrap();
        let read = tokio::time::timeout(Duration::from_millis(300), client.read(&mut buf)).await;
        assert!(read.is_err(), "a stalled relay passed bytes: {read:?}");
        assert_eq!(relay.bytes_to_target(), 5);

        relay.resume();
        tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"again");
    }

    #[tokio::test]
    async fn a_relay_stalls_after_the_given_bytes() {
        let relay = DelayRelay::start(echo_server().await, Duration::ZERO)
            .await
            .unwrap();
        relay.stall_after_to_target(4);
        let mut client = TcpStream::connect(relay.local_addr()).await.unwrap();
        client.write_all(b"four").await.unwrap();
        let mut buf = [0u8; 4];
        // The echo of the first four bytes may or may not come back; the relay stalls.
        let _ = tokio::time::timeout(Duration::from_millis(300), client.read_exact(&mut buf)).await;
        tokio::time::timeout(Duration::from_secs(5), async {
            while !relay.is_stalled() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        client.write_all(b"more").await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(relay.bytes_to_target(), 4);
    }
}
