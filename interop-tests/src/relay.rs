//! A TCP forwarder on 127.0.0.1 that delays every chunk by a fixed one-way delay.
//!
//! For each accepted connection, [`DelayRelay`] connects to the target and forwards
//! both directions. Each direction reads as fast as the sender writes and queues
//! `(deadline, bytes)` with `deadline = arrival + one_way_delay` in an unbounded
//! queue; a writer sends each chunk when its deadline passes. So a ping-pong sees
//! `RTT + 2 × one_way_delay`, order is kept, and throughput is limited only by the
//! endpoints (the relay never applies back-pressure: its buffering is unbounded,
//! which is fine for a test tool and means memory grows with bytes in flight).
//!
//! End of stream is forwarded (after the delay) as a write-side shutdown, so
//! half-close works end to end. A read or write error on either side resets both
//! sockets (`SO_LINGER` 0), so the endpoints see an error rather than a clean close.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, Instrument};

/// Size of each read from a socket.
const READ_CHUNK: usize = 256 * 1024;
/// How long connecting to the target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Byte counters shared by the relay and its connections.
#[derive(Debug, Default)]
struct Counters {
    to_target: AtomicU64,
    from_target: AtomicU64,
    connections: AtomicU64,
}

/// A running delaying relay; it stops (and resets its connections) when dropped.
#[derive(Debug)]
pub struct DelayRelay {
    local_addr: SocketAddr,
    target: SocketAddr,
    one_way_delay: Duration,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
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
        tokio::spawn(accept_loop(
            listener,
            target,
            one_way_delay,
            Arc::clone(&counters),
            shutdown.clone(),
        ));
        Ok(Self {
            local_addr,
            target,
            one_way_delay,
            counters,
            shutdown,
        })
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
    );
    let from_target = forward(
        server_read,
        client_write,
        delay,
        counters,
        Direction::FromTarget,
        cancel,
    );
    tokio::join!(to_target, from_target);
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
    Data(Instant, Vec<u8>),
    /// The sender half-closed: shut down the write side at the deadline.
    Eof(Instant),
    /// Reading failed: reset both connections at the deadline.
    Error(Instant),
}

/// Moves one direction: a reader that queues chunks and a writer that releases them.
async fn forward(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay: Duration,
    counters: Arc<Counters>,
    direction: Direction,
    cancel: CancellationToken,
) {
    let (queue, mut released) = mpsc::unbounded_channel::<Queued>();
    let reader = async {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let read = tokio::select! {
                _ = cancel.cancelled() => {
                    reset(from.as_ref());
                    return;
                }
                read = from.read(&mut buf) => read,
            };
            let deadline = Instant::now() + delay;
            let (item, last) = match read {
                Ok(0) => (Queued::Eof(deadline), true),
                Ok(n) => (
                    Queued::Data(deadline, buf.get(..n).unwrap_or_default().to_vec()),
                    false,
                ),
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
        loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => break,
                item = released.recv() => item,
            };
            let deadline = match &item {
                Some(Queued::Data(at, _) | Queued::Eof(at) | Queued::Error(at)) => *at,
                None => break,
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                () = tokio::time::sleep_until(deadline) => {}
            }
            match item {
                Some(Queued::Data(_, bytes)) => {
                    let written = tokio::select! {
                        _ = cancel.cancelled() => break,
                        written = to.write_all(&bytes) => written,
                    };
                    if let Err(e) = written {
                        debug!(?direction, error = %e, "relay write failed");
                        cancel.cancel();
                        break;
                    }
                    counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                Some(Queued::Eof(_)) => {
                    if let Err(e) = to.shutdown().await {
                        debug!(?direction, error = %e, "relay shutdown failed");
                        cancel.cancel();
                        break;
                    }
                    return;
                }
                Some(Queued::Error(_)) | None => {
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

/// Makes the socket's final close send a reset rather than a FIN.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}
