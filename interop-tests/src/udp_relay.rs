//! A user-space UDP relay that plays a long, lossy link (this kernel has no `tc netem`):
//! every datagram waits a fixed one-way delay before it goes on, and a given fraction
//! can be dropped or held back (so later datagrams overtake it), decided by a seeded
//! generator so a run can be repeated exactly.
//!
//! ```text
//! client ──▶ front socket ─[delay, loss, reorder]─▶ per-client socket ──▶ target
//! client ◀── front socket ◀─[delay, loss, reorder]─ per-client socket ◀── target
//! ```
//!
//! Each client address gets its own socket towards the target, so the target sees one
//! peer per client (QUIC keys its connections by address). The decisions are made by
//! [`LinkModel`], a state machine without I/O that tests drive with their own clock.
//! Everything is bounded: each direction queues at most
//! [`UdpRelayConfig::queue_limit`] bytes (beyond that a datagram is dropped, as a
//! router's full queue does) and the relay keeps at most
//! [`UdpRelayConfig::max_sessions`] clients.
//!
//! I/O goes through `quinn-udp`, as a QUIC endpoint's does: one system call reads a
//! batch of datagrams (`recvmmsg`), a run of same-sized datagrams from one sender
//! arrives coalesced (UDP GRO) and leaves as one segmented send (UDP GSO), and the
//! link model queues such a run as one entry. So the relay pays per batch, not per
//! datagram, and is not what limits a fast QUIC transfer through it; loss and reorder
//! decisions are still made for every datagram.
//!
//! Socket buffers: each socket asks for [`UdpRelayConfig::socket_buffer`] (4 MiB) of
//! SO_RCVBUF and SO_SNDBUF. Linux grants at most `net.core.rmem_max` / `wmem_max`
//! (see [`UdpRelay::socket_buffers`]); with the kernel's 208 KiB default a burst of
//! QUIC packets overflows the socket and is lost before the relay sees it. A user can
//! raise the caps, e.g. `sysctl -w net.core.rmem_max=16777216 net.core.wmem_max=16777216`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The largest UDP payload (IPv4 and IPv6 without jumbograms).
const MAX_DATAGRAM: usize = 65_535;
/// A client silent for this long may be evicted to make room for a new one.
const SESSION_IDLE: Duration = Duration::from_secs(30);
/// How many receive buffers (of [`MAX_DATAGRAM`] bytes, each one datagram or one
/// coalesced run) one read fills at most: 512 KiB per socket.
const RECV_BATCH: usize = 8;
/// The longest a reader waits out a receive error that keeps coming back.
const MAX_RECV_BACKOFF: Duration = Duration::from_millis(100);

/// How the relay treats datagrams, in each direction alike.
#[derive(Debug, Clone, PartialEq)]
pub struct UdpRelayConfig {
    /// The fixed one-way delay (30 ms: a 60 ms round trip).
    pub one_way_delay: Duration,
    /// The fraction of datagrams dropped, `0.0..=1.0` (default 0).
    pub loss: f64,
    /// The fraction of datagrams held back by [`reorder_delay`](Self::reorder_delay)
    /// beyond the one-way delay, so the ones after them overtake them (default 0).
    pub reorder: f64,
    /// How much longer a held-back datagram waits (default 5 ms).
    pub reorder_delay: Duration,
    /// The seed of the loss and reorder decisions (default 1).
    pub seed: u64,
    /// The most bytes one direction holds in its queue (default 32 MiB); a datagram
    /// that does not fit is dropped.
    pub queue_limit: usize,
    /// SO_RCVBUF and SO_SNDBUF asked for each socket (default 4 MiB; the kernel caps
    /// it at `net.core.rmem_max` / `wmem_max`).
    pub socket_buffer: usize,
    /// The most clients served at once (default 1024); a new one beyond that is
    /// served only once an idle one can be evicted.
    pub max_sessions: usize,
}

impl Default for UdpRelayConfig {
    fn default() -> Self {
        UdpRelayConfig {
            one_way_delay: Duration::from_millis(30),
            loss: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(5),
            seed: 1,
            queue_limit: 32 << 20,
            socket_buffer: 4 << 20,
            max_sessions: 1024,
        }
    }
}

impl UdpRelayConfig {
    /// The defaults with this one-way delay.
    pub fn with_delay(one_way_delay: Duration) -> Self {
        UdpRelayConfig {
            one_way_delay,
            ..Self::default()
        }
    }

    /// Checks the fractions and limits.
    ///
    /// # Errors
    ///
    /// [`UdpRelayError::Config`] naming the bad field.
    pub fn validate(&self) -> Result<(), UdpRelayError> {
        let fraction = |name: &'static str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(UdpRelayError::Config {
                    field: name,
                    reason: format!("{v} is not within 0..=1"),
                })
            }
        };
        fraction("loss", self.loss)?;
        fraction("reorder", self.reorder)?;
        if self.queue_limit < MAX_DATAGRAM {
            return Err(UdpRelayError::Config {
                field: "queue_limit",
                reason: format!("{} cannot hold one datagram", self.queue_limit),
            });
        }
        if self.max_sessions == 0 {
            return Err(UdpRelayError::Config {
                field: "max_sessions",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// Why a relay cannot start.
#[derive(Debug, thiserror::Error)]
pub enum UdpRelayError {
    /// A setting is out of range.
    #[error("bad UDP relay setting `{field}`: {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A socket could not be made.
    #[error("UDP relay socket: {0}")]
    Io(#[from] io::Error),
}

/// What became of a datagram offered to a [`LinkModel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Queued, due after the one-way delay.
    Queued,
    /// Queued, due after the one-way delay plus the reorder delay.
    HeldBack,
    /// Dropped by the loss fraction.
    Lost,
    /// Dropped: the queue was full.
    Overflow,
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Datagrams offered.
    pub offered: u64,
    /// Datagrams taken out of the queue to be sent on.
    pub delivered: u64,
    /// Datagrams dropped by the loss fraction.
    pub lost: u64,
    /// Datagrams held back (reordered).
    pub held_back: u64,
    /// Datagrams dropped because the queue was full.
    pub overflowed: u64,
    /// The most bytes queued at once.
    pub peak_queued_bytes: usize,
}

/// One queued datagram; ordered by due time, then arrival.
#[derive(Debug)]
struct Queued<T> {
    due: Instant,
    seq: u64,
    len: usize,
    datagrams: u64,
    item: T,
}

impl<T> PartialEq for Queued<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<T> Eq for Queued<T> {}
impl<T> PartialOrd for Queued<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Queued<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// One direction of the link, without I/O: decides each datagram's fate and keeps
/// the queue ordered by due time. The caller supplies the clock.
#[derive(Debug)]
pub struct LinkModel<T> {
    delay: Duration,
    loss: f64,
    reorder: f64,
    reorder_delay: Duration,
    limit: usize,
    rng: StdRng,
    queue: BinaryHeap<Reverse<Queued<T>>>,
    queued_bytes: usize,
    seq: u64,
    stats: DirectionStats,
}

impl<T> LinkModel<T> {
    /// A direction with `config`'s delay, fractions and queue limit, its generator
    /// seeded with `seed` (the relay gives each direction its own). Fractions outside
    /// `0..=1` are clamped (NaN counts as 0); [`UdpRelayConfig::validate`] refuses them.
    pub fn new(config: &UdpRelayConfig, seed: u64) -> Self {
        let fraction = |v: f64| if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        LinkModel {
            delay: config.one_way_delay,
            loss: fraction(config.loss),
            reorder: fraction(config.reorder),
            reorder_delay: config.reorder_delay,
            limit: config.queue_limit,
            rng: StdRng::seed_from_u64(seed),
            queue: BinaryHeap::new(),
            queued_bytes: 0,
            seq: 0,
            stats: DirectionStats::default(),
        }
    }

    /// Offers a datagram of `len` bytes that arrived at `now`.
    pub fn offer(&mut self, now: Instant, len: usize, item: T) -> Verdict {
        let verdict = self.admit(len);
        match verdict {
            Verdict::Queued => self.push(self.due(now, false), len, 1, item),
            Verdict::HeldBack => self.push(self.due(now, true), len, 1, item),
            Verdict::Lost | Verdict::Overflow => {}
        }
        verdict
    }

    /// When a datagram admitted at `now` is due: after the one-way delay, plus the
    /// reorder delay if it is `held_back`.
    fn due(&self, now: Instant, held_back: bool) -> Instant {
        if held_back {
            now + self.delay + self.reorder_delay
        } else {
            now + self.delay
        }
    }

    /// Offers the datagrams that arrived together at `now` in `data`, one every
    /// `stride` bytes (a coalesced run; the last may be shorter). Each datagram gets
    /// its own verdict, as from [`offer`](Self::offer); each unbroken run of queued
    /// datagrams becomes one entry, made by `make` from its bytes, and each held-back
    /// datagram an entry of its own. Returns how many datagrams were queued.
    pub fn offer_datagrams(
        &mut self,
        now: Instant,
        data: &[u8],
        stride: usize,
        mut make: impl FnMut(&[u8]) -> T,
    ) -> u64 {
        let stride = stride.max(1);
        let mut queued = 0;
        let mut run: Option<Range<usize>> = None;
        for start in (0..data.len()).step_by(stride) {
            let end = (start + stride).min(data.len());
            let verdict = self.admit(end - start);
            if verdict != Verdict::Queued {
                if let Some(done) = run.take() {
                    self.push_run(now, data, done, &mut make, stride);
                }
            }
            match verdict {
                Verdict::Queued => {
                    queued += 1;
                    run = Some(run.map_or(start..end, |r| r.start..end));
                }
                Verdict::HeldBack => {
                    queued += 1;
                    let due = self.due(now, true);
                    self.push(due, end - start, 1, make(&data[start..end]));
                }
                Verdict::Lost | Verdict::Overflow => {}
            }
        }
        if let Some(done) = run {
            self.push_run(now, data, done, &mut make, stride);
        }
        queued
    }

    /// Queues the admitted run `range` of `data`, due after the one-way delay.
    fn push_run(
        &mut self,
        now: Instant,
        data: &[u8],
        range: Range<usize>,
        make: &mut impl FnMut(&[u8]) -> T,
        stride: usize,
    ) {
        let len = range.len();
        let datagrams = len.div_ceil(stride) as u64;
        let item = make(&data[range]);
        self.push(self.due(now, false), len, datagrams, item);
    }

    /// Decides one datagram's fate, counts it, and for a queued one reserves its
    /// bytes in the queue (the caller then [`push`](Self::push)es it).
    fn admit(&mut self, len: usize) -> Verdict {
        self.stats.offered += 1;
        // Both draws are made for every datagram, so one fraction's decisions do not
        // shift the other's.
        let lost = self.rng.random_bool(self.loss);
        let held = self.rng.random_bool(self.reorder);
        if lost {
            self.stats.lost += 1;
            return Verdict::Lost;
        }
        if self.queued_bytes + len > self.limit {
            self.stats.overflowed += 1;
            return Verdict::Overflow;
        }
        self.queued_bytes += len;
        self.stats.peak_queued_bytes = self.stats.peak_queued_bytes.max(self.queued_bytes);
        if held {
            self.stats.held_back += 1;
            Verdict::HeldBack
        } else {
            Verdict::Queued
        }
    }

    /// Queues an entry whose bytes [`admit`](Self::admit) reserved.
    fn push(&mut self, due: Instant, len: usize, datagrams: u64, item: T) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            due,
            seq: self.seq,
            len,
            datagrams,
            item,
        }));
    }

    /// When the next datagram is due, if any is queued.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(q)| q.due)
    }

    /// Takes the next datagram due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.next_due()? > now {
            return None;
        }
        let Reverse(queued) = self.queue.pop()?;
        self.queued_bytes -= queued.len;
        self.stats.delivered += queued.datagrams;
        Some(queued.item)
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// The counters so far.
    pub fn stats(&self) -> DirectionStats {
        self.stats
    }
}

/// A model shared by the socket reader that fills it and the sender that drains it.
struct Direction<T> {
    model: Mutex<LinkModel<T>>,
    wake: Notify,
}

impl<T> Direction<T> {
    fn new(config: &UdpRelayConfig, seed: u64) -> Arc<Self> {
        Arc::new(Direction {
            model: Mutex::new(LinkModel::new(config, seed)),
            wake: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LinkModel<T>> {
        // The model's methods cannot panic halfway through an update.
        self.model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Offers the datagrams of one receive buffer (see [`LinkModel::offer_datagrams`]).
    fn offer(&self, data: &[u8], stride: usize, make: impl FnMut(&[u8]) -> T) {
        let queued = self
            .lock()
            .offer_datagrams(Instant::now(), data, stride, make);
        if queued > 0 {
            self.wake.notify_one();
        }
    }

    /// Sends every entry when it is due, forever.
    async fn drain<F, Fut>(self: Arc<Self>, mut send: F)
    where
        F: FnMut(T) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut due = Vec::new();
        loop {
            let next = {
                let mut model = self.lock();
                let now = Instant::now();
                while let Some(item) = model.pop_due(now) {
                    due.push(item);
                }
                model.next_due()
            };
            for item in due.drain(..) {
                send(item).await;
            }
            match next {
                // Only if nothing became due while we were sending.
                Some(at) if at > Instant::now() => tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = self.wake.notified() => {}
                },
                Some(_) => {}
                None => self.wake.notified().await,
            }
        }
    }
}

/// A run of datagrams to send: `stride` bytes each (the last may be shorter).
#[derive(Debug)]
struct Datagrams {
    data: Vec<u8>,
    stride: usize,
}

impl Datagrams {
    fn copy(data: &[u8], stride: usize) -> Self {
        Datagrams {
            data: data.to_vec(),
            stride,
        }
    }
}

/// A Tokio UDP socket driven through `quinn-udp`: batched reads with GRO, segmented
/// sends with GSO where the kernel offers them.
struct BatchSocket {
    socket: UdpSocket,
    state: UdpSocketState,
}

impl BatchSocket {
    fn new(socket: Socket) -> io::Result<Self> {
        let socket: std::net::UdpSocket = socket.into();
        let state = UdpSocketState::new((&socket).into())?;
        Ok(BatchSocket {
            socket: UdpSocket::from_std(socket)?,
            state,
        })
    }

    /// Waits for datagrams and reads what is there into `bufs`, one [`RecvMeta`] per
    /// buffer filled; returns how many were.
    async fn recv(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> io::Result<usize> {
        loop {
            self.socket.readable().await?;
            match self.socket.try_io(Interest::READABLE, || {
                self.state.recv((&self.socket).into(), bufs, meta)
            }) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                result => return result,
            }
        }
    }

    /// Sends `datagrams` to `destination`, in as few segmented sends as the socket
    /// allows; a failure is logged (the datagrams are lost, as on a real link).
    async fn send(&self, destination: SocketAddr, datagrams: &Datagrams) {
        let stride = datagrams.stride.max(1);
        let mut rest = &datagrams.data[..];
        while !rest.is_empty() {
            let take = rest
                .len()
                .min(stride * self.state.max_gso_segments().max(1));
            let (chunk, after) = rest.split_at(take);
            rest = after;
            let transmit = Transmit {
                destination,
                ecn: None,
                contents: chunk,
                segment_size: (chunk.len() > stride).then_some(stride),
                src_ip: None,
            };
            if let Err(error) = self.send_one(&transmit).await {
                tracing::debug!(%error, %destination, "UDP relay: send failed");
            }
        }
    }

    async fn send_one(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        loop {
            self.socket.writable().await?;
            match self.socket.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.socket).into(), transmit)
            }) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                result => return result,
            }
        }
    }

    /// Reads forever; hands each filled buffer, with its sender and stride, to `each`.
    async fn serve(&self, what: &'static str, mut each: impl FnMut(SocketAddr, &[u8], usize)) {
        let mut storage = vec![0u8; MAX_DATAGRAM * RECV_BATCH];
        let mut bufs: Vec<IoSliceMut<'_>> = storage
            .chunks_mut(MAX_DATAGRAM)
            .map(IoSliceMut::new)
            .collect();
        let mut meta = [RecvMeta::default(); RECV_BATCH];
        let mut failures = 0u32;
        loop {
            match self.recv(&mut bufs, &mut meta).await {
                Ok(filled) => {
                    failures = 0;
                    for (m, buf) in meta.iter().zip(bufs.iter()).take(filled) {
                        let len = m.len.min(buf.len());
                        each(m.addr, &buf[..len], m.stride);
                    }
                }
                // ICMP errors (a refused port while the far side is down) surface here
                // on Linux; the socket stays usable. An error that keeps coming back is
                // waited out, so it cannot spin the reader.
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::debug!(%error, what, failures, "UDP relay: receive failed");
                    tokio::time::sleep(recv_backoff(failures)).await;
                }
            }
        }
    }
}

/// How long a reader waits after its `failures`-th receive error in a row: 1 ms,
/// doubling with each further one, at most [`MAX_RECV_BACKOFF`].
fn recv_backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    Duration::from_millis(1 << doublings).min(MAX_RECV_BACKOFF)
}

/// Aborts a task when dropped.
struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One client: its socket towards the target and the task reading it.
struct Session {
    back: Arc<BatchSocket>,
    last_seen: Instant,
    _reader: TaskGuard,
}

/// The target-bound queue's entries: the client's socket towards the target and what
/// to send on it.
type ToTarget = Direction<(Arc<BatchSocket>, Datagrams)>;
/// The client-bound queue's entries: the client and what to send it.
type ToClient = Direction<(SocketAddr, Datagrams)>;

/// A running relay: datagrams to [`local_addr`](Self::local_addr) go on to the
/// target, the target's answers come back, both delayed (and dropped or reordered) as
/// configured. Stops when dropped.
pub struct UdpRelay {
    local_addr: SocketAddr,
    target: SocketAddr,
    socket_buffers: (usize, usize),
    to_target: Arc<ToTarget>,
    to_client: Arc<ToClient>,
    sessions: Arc<Mutex<SessionTable>>,
    _tasks: Vec<TaskGuard>,
}

/// The clients, and how many were turned away.
#[derive(Default)]
struct SessionTable {
    by_client: HashMap<SocketAddr, Session>,
    refused: u64,
}

impl std::fmt::Debug for UdpRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpRelay")
            .field("local_addr", &self.local_addr)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Counters of a running relay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpRelayStats {
    /// Client to target.
    pub to_target: DirectionStats,
    /// Target to client.
    pub to_client: DirectionStats,
    /// Clients served now.
    pub sessions: usize,
    /// Datagrams from new clients turned away because `max_sessions` were busy.
    pub refused: u64,
}

impl UdpRelay {
    /// Starts a relay on `127.0.0.1` (or `::1` for an IPv6 target), any port, in
    /// front of `target`.
    ///
    /// # Errors
    ///
    /// [`UdpRelayError::Config`] for a bad setting, [`UdpRelayError::Io`] when a
    /// socket cannot be bound (or no Tokio runtime runs).
    pub async fn start(target: SocketAddr, config: UdpRelayConfig) -> Result<Self, UdpRelayError> {
        config.validate()?;
        let front = bind_socket(SocketAddr::new(loopback(target), 0), config.socket_buffer)?;
        let local_addr = front.local_addr()?.as_socket().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "the front socket has no address",
            )
        })?;
        let socket_buffers = (front.recv_buffer_size()?, front.send_buffer_size()?);
        let front = Arc::new(BatchSocket::new(front)?);
        let to_target: Arc<ToTarget> = Direction::new(&config, config.seed);
        let to_client: Arc<ToClient> = Direction::new(&config, config.seed.wrapping_add(1));
        let sessions = Arc::new(Mutex::new(SessionTable::default()));

        let forward = tokio::spawn(to_target.clone().drain(
            move |(back, datagrams): (Arc<BatchSocket>, Datagrams)| async move {
                back.send(target, &datagrams).await;
            },
        ));
        let reverse = {
            let front = front.clone();
            tokio::spawn(to_client.clone().drain(
                move |(client, datagrams): (SocketAddr, Datagrams)| {
                    let front = front.clone();
                    async move { front.send(client, &datagrams).await }
                },
            ))
        };
        let accept = tokio::spawn(serve_front(
            front,
            target,
            config.clone(),
            to_target.clone(),
            to_client.clone(),
            sessions.clone(),
        ));
        tracing::debug!(%local_addr, %target, ?socket_buffers, "UDP relay started");
        Ok(UdpRelay {
            local_addr,
            target,
            socket_buffers,
            to_target,
            to_client,
            sessions,
            _tasks: vec![TaskGuard(forward), TaskGuard(reverse), TaskGuard(accept)],
        })
    }

    /// Where clients send: the relay's own address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address datagrams are relayed to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The receive and send buffer sizes the kernel granted the front socket (Linux
    /// reports twice the usable size, capped by `net.core.rmem_max` / `wmem_max`).
    pub fn socket_buffers(&self) -> (usize, usize) {
        self.socket_buffers
    }

    /// The counters so far.
    pub fn stats(&self) -> UdpRelayStats {
        let table = lock_sessions(&self.sessions);
        UdpRelayStats {
            to_target: self.to_target.lock().stats(),
            to_client: self.to_client.lock().stats(),
            sessions: table.by_client.len(),
            refused: table.refused,
        }
    }
}

fn lock_sessions(sessions: &Mutex<SessionTable>) -> MutexGuard<'_, SessionTable> {
    // Updated in single steps that cannot panic halfway.
    sessions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads the front socket: each datagram goes into the target-bound queue, through
/// its client's session (made on the client's first datagram).
async fn serve_front(
    front: Arc<BatchSocket>,
    target: SocketAddr,
    config: UdpRelayConfig,
    to_target: Arc<ToTarget>,
    to_client: Arc<ToClient>,
    sessions: Arc<Mutex<SessionTable>>,
) {
    front
        .serve("from a client", |client, data, stride| {
            let back = {
                let mut table = lock_sessions(&sessions);
                session_for(&mut table, client, target, &config, &to_client)
            };
            match back {
                Ok(Some(back)) => to_target.offer(data, stride, |run| {
                    (back.clone(), Datagrams::copy(run, stride))
                }),
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(%error, %client, "UDP relay: no socket for a new client")
                }
            }
        })
        .await;
}

/// The socket towards the target for `client`, made (with its reader) on first use;
/// `None` when the table is full of clients that are not idle.
fn session_for(
    table: &mut SessionTable,
    client: SocketAddr,
    target: SocketAddr,
    config: &UdpRelayConfig,
    to_client: &Arc<ToClient>,
) -> io::Result<Option<Arc<BatchSocket>>> {
    let now = Instant::now();
    if let Some(session) = table.by_client.get_mut(&client) {
        session.last_seen = now;
        return Ok(Some(session.back.clone()));
    }
    if table.by_client.len() >= config.max_sessions {
        table
            .by_client
            .retain(|_, s| now.duration_since(s.last_seen) < SESSION_IDLE);
        if table.by_client.len() >= config.max_sessions {
            table.refused += 1;
            return Ok(None);
        }
    }
    let socket = bind_socket(SocketAddr::new(loopback(target), 0), config.socket_buffer)?;
    socket.connect(&target.into())?;
    let back = Arc::new(BatchSocket::new(socket)?);
    let reader = tokio::spawn(serve_back(back.clone(), client, to_client.clone()));
    table.by_client.insert(
        client,
        Session {
            back: back.clone(),
            last_seen: now,
            _reader: TaskGuard(reader),
        },
    );
    Ok(Some(back))
}

/// Reads one client's socket towards the target: the answers go into the
/// client-bound queue.
async fn serve_back(back: Arc<BatchSocket>, client: SocketAddr, to_client: Arc<ToClient>) {
    back.serve("from the target", |_, data, stride| {
        to_client.offer(data, stride, |run| (client, Datagrams::copy(run, stride)))
    })
    .await;
}

/// The loopback address of `target`'s family.
fn loopback(target: SocketAddr) -> IpAddr {
    match target {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

/// A non-blocking UDP socket bound to `addr`, asking for `buffer` bytes of receive and
/// send buffer (best effort: the kernel caps it).
fn bind_socket(addr: SocketAddr, buffer: usize) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(error) = socket.set_recv_buffer_size(buffer) {
        tracing::debug!(%error, buffer, "UDP relay: could not size the receive buffer");
    }
    if let Err(error) = socket.set_send_buffer_size(buffer) {
        tracing::debug!(%error, buffer, "UDP relay: could not size the send buffer");
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(loss: f64, reorder: f64) -> UdpRelayConfig {
        UdpRelayConfig {
            loss,
            reorder,
            ..UdpRelayConfig::with_delay(Duration::from_millis(30))
        }
    }

    #[test]
    fn a_datagram_is_due_after_the_delay() {
        let mut link = LinkModel::new(&config(0.0, 0.0), 7);
        let t0 = Instant::now();
        assert_eq!(link.offer(t0, 100, 'a'), Verdict::Queued);
        assert_eq!(link.next_due(), Some(t0 + Duration::from_millis(30)));
        assert_eq!(link.pop_due(t0 + Duration::from_millis(29)), None);
        assert_eq!(link.pop_due(t0 + Duration::from_millis(30)), Some('a'));
        assert_eq!(link.queued_bytes(), 0);
        assert_eq!(link.next_due(), None);
    }

    #[test]
    fn the_loss_fraction_is_kept_and_repeats_with_its_seed() {
        let run = |seed| {
            let mut link = LinkModel::new(&config(0.25, 0.0), seed);
            let t0 = Instant::now();
            (0..10_000)
                .map(|i| link.offer(t0, 10, i) == Verdict::Lost)
                .collect::<Vec<bool>>()
        };
        let first = run(3);
        let lost = first.iter().filter(|&&l| l).count();
        assert!((2_200..=2_800).contains(&lost), "{lost} of 10000 lost");
        assert_eq!(first, run(3), "the same seed drops the same datagrams");
        assert_ne!(first, run(4));
    }

    #[test]
    fn held_back_datagrams_are_overtaken_and_none_is_lost() {
        let mut link = LinkModel::new(&config(0.0, 0.1), 11);
        let t0 = Instant::now();
        // One datagram per millisecond; the reorder delay is 5 ms.
        for i in 0..1_000u32 {
            link.offer(t0 + Duration::from_millis(i.into()), 10, i);
        }
        let mut out = Vec::new();
        while let Some(i) = link.pop_due(t0 + Duration::from_secs(10)) {
            out.push(i);
        }
        assert_eq!(out.len(), 1_000, "reordering loses nothing");
        let mut sorted = out.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1_000).collect::<Vec<_>>());
        let overtaken = out.windows(2).filter(|w| w[0] > w[1]).count();
        let held = link.stats().held_back;
        assert!((60..=140).contains(&held), "{held} of 1000 held back");
        assert!(overtaken > 0 && overtaken as u64 <= held, "{overtaken}");
    }

    /// Datagrams of `stride` bytes, each starting with its index.
    fn numbered(count: u8, stride: usize) -> Vec<u8> {
        (0..count)
            .flat_map(|i| std::iter::once(i).chain(std::iter::repeat_n(0, stride - 1)))
            .collect()
    }

    #[test]
    fn a_coalesced_run_is_one_entry_of_many_datagrams() {
        let mut link = LinkModel::new(&config(0.0, 0.0), 1);
        let t0 = Instant::now();
        // Ten datagrams of 1200 bytes and a short last one.
        let mut data = numbered(10, 1_200);
        data.extend_from_slice(&[10; 500]);
        let queued = link.offer_datagrams(t0, &data, 1_200, <[u8]>::to_vec);
        assert_eq!(queued, 11);
        assert_eq!(link.queued_bytes(), data.len());
        let run = link.pop_due(t0 + Duration::from_millis(30)).expect("due");
        assert_eq!(run, data, "one entry, the bytes unchanged");
        assert_eq!(link.pop_due(t0 + Duration::from_secs(1)), None);
        let stats = link.stats();
        assert_eq!((stats.offered, stats.delivered), (11, 11));
    }

    #[test]
    fn a_run_gets_the_same_verdicts_as_its_datagrams_one_by_one() {
        let (count, stride) = (200u8, 100);
        let data = numbered(count, stride);
        let t0 = Instant::now();
        let mut one_by_one = LinkModel::new(&config(0.2, 0.1), 9);
        let mut expected: Vec<u8> = (0..count)
            .filter(|_| {
                let verdict = one_by_one.offer(t0, stride, ());
                matches!(verdict, Verdict::Queued | Verdict::HeldBack)
            })
            .collect();
        let mut batched = LinkModel::new(&config(0.2, 0.1), 9);
        let queued = batched.offer_datagrams(t0, &data, stride, <[u8]>::to_vec);
        assert_eq!(queued, expected.len() as u64);
        let mut got = Vec::new();
        let mut entries = 0;
        while let Some(run) = batched.pop_due(t0 + Duration::from_secs(1)) {
            entries += 1;
            assert_eq!(run.len() % stride, 0, "whole datagrams only");
            got.extend(run.chunks(stride).map(|d| d[0]));
        }
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected, "the same datagrams survive");
        assert!(entries > 1 && entries < expected.len(), "{entries} entries");
        let (a, b) = (one_by_one.stats(), batched.stats());
        assert_eq!(
            (a.offered, a.lost, a.held_back),
            (b.offered, b.lost, b.held_back)
        );
        assert_eq!(b.delivered, expected.len() as u64);
    }

    #[test]
    fn the_queue_never_holds_more_than_its_limit() {
        let limit = MAX_DATAGRAM * 2;
        let mut link = LinkModel::new(
            &UdpRelayConfig {
                queue_limit: limit,
                ..config(0.0, 0.0)
            },
            1,
        );
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> = (0..200).map(|i| link.offer(t0, 1_500, i)).collect();
        let queued = verdicts.iter().filter(|v| **v == Verdict::Queued).count();
        assert_eq!(queued, limit / 1_500);
        assert_eq!(link.stats().overflowed, (200 - queued) as u64);
        assert!(link.stats().peak_queued_bytes <= limit);
        // Draining makes room again.
        assert!(link.pop_due(t0 + Duration::from_secs(1)).is_some());
        assert_eq!(link.offer(t0, 1_500, 999), Verdict::Queued);
    }

    #[test]
    fn a_recurring_receive_error_is_waited_out_longer_each_time_up_to_a_cap() {
        assert_eq!(recv_backoff(1), Duration::from_millis(1));
        assert_eq!(recv_backoff(2), Duration::from_millis(2));
        assert_eq!(recv_backoff(5), Duration::from_millis(16));
        assert_eq!(recv_backoff(8), MAX_RECV_BACKOFF);
        assert_eq!(recv_backoff(u32::MAX), MAX_RECV_BACKOFF);
        let waits: Vec<_> = (1..12).map(recv_backoff).collect();
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
    }

    #[test]
    fn bad_settings_are_refused() {
        for bad in [
            config(1.5, 0.0),
            config(0.0, -0.1),
            config(f64::NAN, 0.0),
            UdpRelayConfig {
                queue_limit: 10,
                ..UdpRelayConfig::default()
            },
            UdpRelayConfig {
                max_sessions: 0,
                ..UdpRelayConfig::default()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(UdpRelayError::Config { .. })),
                "{bad:?}"
            );
        }
        assert!(UdpRelayConfig::default().validate().is_ok());
    }
}
