//! Windows with the shipped defaults, over real UDP sockets on 127.0.0.1: a
//! connection's receive window grows only as its application reads, its send window
//! only as a long path carries what it writes, every growth reserved from its budget
//! first, and a stream nobody reads pins no more than the window the connection
//! started with.

mod support;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::{Keypair, PeerId};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::Limited;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use weft_transport_quic::{
    Config, Established, QuicEndpoints, DEFAULT_CONNECTION_WINDOW, DEFAULT_SEND_WINDOW,
};
use weft_upgrader::{Budget, MuxedConnection};

/// What a connection reserves at the start with the defaults: both windows.
const STARTING_WINDOWS: usize = (DEFAULT_CONNECTION_WINDOW + DEFAULT_SEND_WINDOW) as usize;

/// One-way delay of the test path: 50 ms each way.
const ONE_WAY: Duration = Duration::from_millis(50);

fn node() -> (QuicEndpoints, PeerId) {
    let key = Keypair::generate_ed25519();
    let peer = key.public().to_peer_id();
    let endpoints = QuicEndpoints::new(&key, Config::default()).expect("endpoints");
    (endpoints, peer)
}

/// Forwards datagrams from `rx` to `to` on `socket`, each `ONE_WAY` after it came.
async fn delay_line(
    socket: Arc<UdpSocket>,
    mut rx: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
    to: Arc<std::sync::Mutex<Option<SocketAddr>>>,
) {
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match rx.recv().await {
                Some(item) => queue.push_back(item),
                None => return,
            }
        }
        while let Ok(item) = rx.try_recv() {
            queue.push_back(item);
        }
        let Some((due, _)) = queue.front() else {
            continue;
        };
        tokio::time::sleep_until((*due + ONE_WAY).into()).await;
        let (_, datagram) = queue.pop_front().expect("a datagram is queued");
        let target = *to.lock().expect("not poisoned");
        if let Some(target) = target {
            let _ = socket.send_to(&datagram, target).await;
        }
    }
}

/// A UDP relay in front of `server` that delays every datagram by [`ONE_WAY`]
/// (one client). Returns its address.
async fn delaying_relay(server: SocketAddr) -> SocketAddr {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("binds"));
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("binds"));
    let addr = front.local_addr().expect("bound");
    let client = Arc::new(std::sync::Mutex::new(None));
    let (up_tx, up_rx) = mpsc::unbounded_channel();
    let (down_tx, down_rx) = mpsc::unbounded_channel();
    tokio::spawn(delay_line(
        back.clone(),
        up_rx,
        Arc::new(std::sync::Mutex::new(Some(server))),
    ));
    tokio::spawn(delay_line(front.clone(), down_rx, client.clone()));
    let (front_in, client_in) = (front.clone(), client);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = front_in.recv_from(&mut buf).await {
            *client_in.lock().expect("not poisoned") = Some(from);
            if up_tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = back.recv(&mut buf).await {
            if down_tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                return;
            }
        }
    });
    addr
}

/// The endpoints of a test: they must outlive its connections.
struct Nodes {
    _client: QuicEndpoints,
    _server: QuicEndpoints,
    _listener: weft_transport_quic::QuicListener,
}

/// A client connected to a listener whose connection is charged to `budget`,
/// through the delaying relay if `relay` (or directly).
async fn connect(budget: Arc<Limited>, relay: bool) -> (Established, Established, Nodes) {
    connect_with(Budget::unlimited(), Budget::new(budget), relay).await
}

/// A client whose connection is charged to `dialer` connected to a listener whose
/// connection is charged to `listener_budget`, through the delaying relay if `relay`.
async fn connect_with(
    dialer: Budget,
    listener_budget: Budget,
    relay: bool,
) -> (Established, Established, Nodes) {
    let (a, _) = node();
    let (b, b_id) = node();
    let listener = b
        .listen("127.0.0.1:0".parse().expect("an address"))
        .expect("listens");
    let target = if relay {
        delaying_relay(listener.local_addr()).await
    } else {
        listener.local_addr()
    };
    let accept = async {
        let inbound = listener.accept().await?;
        inbound.handshake(listener_budget).await
    };
    let (outbound, inbound) = tokio::join!(a.dial(target, Some(b_id), dialer), accept);
    let (outbound, inbound) = (outbound.expect("dials"), inbound.expect("accepts"));
    let nodes = Nodes {
        _client: a,
        _server: b,
        _listener: listener,
    };
    (outbound, inbound, nodes)
}

/// Sends `bytes` from `outbound`'s side on one stream, half-closes, and has
/// `inbound`'s side read it all; returns what was read and both connections.
async fn upload(
    outbound: Established,
    inbound: Established,
    bytes: usize,
) -> (usize, Arc<dyn MuxedConnection>, Arc<dyn MuxedConnection>) {
    tokio::spawn(outbound.connection.driver);
    tokio::spawn(inbound.connection.driver);
    let server = inbound.connection.muxed;
    let reader = tokio::spawn(async move {
        let mut stream = server.accept_stream().await.expect("accepts a stream");
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0usize;
        loop {
            match stream.read(&mut buf).await.expect("reads") {
                0 => break,
                n => total += n,
            }
        }
        (total, server)
    });
    let client = outbound.connection.muxed;
    let mut stream = client.open_stream().await.expect("opens");
    let chunk = vec![7u8; 64 * 1024];
    for _ in 0..bytes / chunk.len() {
        stream.write_all(&chunk).await.expect("writes");
    }
    stream.close().await.expect("half-closes");
    let (received, server) = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("the transfer ends")
        .expect("the reader ran");
    (received, client, server)
}

/// Closes `client`, drops both ends, and waits until `budget` holds nothing.
async fn given_back(
    budget: &Limited,
    client: Arc<dyn MuxedConnection>,
    server: Arc<dyn MuxedConnection>,
) {
    client.close().await.expect("closes");
    drop((client, server));
    let deadline = Instant::now() + Duration::from_secs(10);
    while budget.used() != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        budget.used(),
        0,
        "given back when the connection's handles drop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_grows_the_connection_window_within_its_budget() {
    // Room for both starting windows and two doublings of the receive window
    // (1 + 1 + 1 + 2 MiB), not a third. The listener writes nothing: its send
    // window stays at its start.
    let budget = Limited::new(STARTING_WINDOWS + 3 * DEFAULT_CONNECTION_WINDOW as usize);
    let (outbound, inbound, _nodes) = connect(budget.clone(), true).await;
    assert_eq!(budget.used(), STARTING_WINDOWS, "the starts are reserved");
    // At 100 ms RTT a 1 MiB window allows 10 MiB/s: the window limits the transfer
    // once congestion control has ramped up, and the reader keeps up.
    let sent = 24 << 20;
    let (received, client, server) = upload(outbound, inbound, sent).await;
    assert_eq!(received, sent);
    let peak = budget.peak();
    assert!(
        peak > STARTING_WINDOWS,
        "the window never grew past its start: {peak} bytes reserved at most"
    );
    assert!(peak <= budget.limit, "reserved {peak} of {}", budget.limit);
    given_back(&budget, client, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_a_long_path_grows_the_send_window_within_its_budget() {
    // The uploader's budget: both starting windows and two doublings of the send
    // window (1 + 1 + 1 + 2 MiB), where a 100 ms path would take 32 MiB. It reads
    // nothing, so only its send window can grow.
    let budget = Limited::new(STARTING_WINDOWS + 3 * DEFAULT_SEND_WINDOW as usize);
    let (outbound, inbound, _nodes) =
        connect_with(Budget::new(budget.clone()), Budget::unlimited(), true).await;
    assert_eq!(budget.used(), STARTING_WINDOWS, "the starts are reserved");
    // At 100 ms RTT a 1 MiB send window allows 10 MiB/s: once congestion control has
    // ramped up, the path carries more than half the window per round trip.
    let sent = 24 << 20;
    let (received, client, server) = upload(outbound, inbound, sent).await;
    assert_eq!(received, sent);
    let peak = budget.peak();
    assert!(
        peak > STARTING_WINDOWS,
        "the send window never grew past its start: {peak} bytes reserved at most"
    );
    assert!(peak <= budget.limit, "reserved {peak} of {}", budget.limit);
    given_back(&budget, client, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_budget_keeps_the_send_window_at_its_start_and_the_upload_goes_on() {
    // Exactly the starting windows: every growth is denied.
    let budget = Limited::new(STARTING_WINDOWS);
    let (outbound, inbound, _nodes) =
        connect_with(Budget::new(budget.clone()), Budget::unlimited(), true).await;
    let sent = 8 << 20;
    let (received, client, server) = upload(outbound, inbound, sent).await;
    assert_eq!(received, sent, "a denied growth never fails the connection");
    assert_eq!(
        budget.peak(),
        STARTING_WINDOWS,
        "no growth was reserved, so none happened"
    );
    given_back(&budget, client, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_nobody_reads_pins_no_more_than_the_starting_window() {
    let budget = Limited::new(64 << 20);
    let (outbound, inbound, _nodes) = connect(budget.clone(), false).await;
    tokio::spawn(outbound.connection.driver);
    tokio::spawn(inbound.connection.driver);
    let server = inbound.connection.muxed;
    // The listener accepts the stream and never reads it.
    let held = tokio::spawn(async move {
        let stream = server.accept_stream().await.expect("accepts a stream");
        (stream, server)
    });
    let client = outbound.connection.muxed;
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let writer = tokio::spawn(async move {
        let mut stream = client.open_stream().await.expect("opens");
        let chunk = vec![1u8; 16 * 1024];
        while stream.write_all(&chunk).await.is_ok() {
            counter.fetch_add(chunk.len(), Ordering::SeqCst);
        }
    });
    // Wait until the writes have stalled: no progress for a second.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (usize::MAX, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = written.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the writes never stalled: {now} bytes taken"
        );
    }
    let pinned = written.load(Ordering::SeqCst);
    // The peer's credit ends at the connection window; one chunk may be in flight.
    assert!(
        pinned <= DEFAULT_CONNECTION_WINDOW as usize,
        "a stream nobody reads took {pinned} bytes, more than the {DEFAULT_CONNECTION_WINDOW} \
         bytes the connection started with"
    );
    assert_eq!(
        budget.peak(),
        STARTING_WINDOWS,
        "nothing read and nothing written, so no window grew"
    );
    writer.abort();
    let (_stream, _server) = held.await.expect("the listener accepted the stream");
}
