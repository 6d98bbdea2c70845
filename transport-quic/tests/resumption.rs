//! TLS session resumption and 0-RTT over real UDP sockets on 127.0.0.1: tickets are
//! bound to the peer id they were issued for, a resumed connection proves the same
//! peer, early streams go in 0-RTT only when asked for, and a listener that lost its
//! sessions falls back to a full handshake.

use futures::io::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::{Keypair, PeerId};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use weft_security_tls::TICKETS_PER_HANDSHAKE;
use weft_transport_quic::{Config, Established, QuicEndpoints, QuicError, QuicListener};
use weft_upgrader::{Budget, EarlyData, MuxedConnection};

const WAIT: Duration = Duration::from_secs(5);

fn node() -> (QuicEndpoints, PeerId, Keypair) {
    let key = Keypair::generate_ed25519();
    let peer = key.public().to_peer_id();
    let endpoints = QuicEndpoints::new(&key, Config::default()).expect("endpoints");
    (endpoints, peer, key)
}

async fn accept_one(listener: &QuicListener) -> Result<Established, QuicError> {
    listener
        .accept()
        .await?
        .handshake(Budget::unlimited())
        .await
}

/// Serves every inbound stream of `established` with an echo, and reports through
/// the returned channel whether each stream arrived early (in 0-RTT).
fn serve_echo(
    established: Established,
) -> (
    std::sync::Arc<dyn MuxedConnection>,
    tokio::sync::mpsc::UnboundedReceiver<bool>,
) {
    let Established { connection, .. } = established;
    tokio::spawn(connection.driver);
    let muxed = connection.muxed;
    let acceptor = muxed.clone();
    let (early_tx, early_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(mut stream) = acceptor.accept_stream().await {
            let _ = early_tx.send(stream.is_early());
            tokio::spawn(async move {
                let mut data = Vec::new();
                if stream.read_to_end(&mut data).await.is_ok() {
                    let _ = stream.write_all(&data).await;
                    let _ = stream.close().await;
                }
            });
        }
    });
    (muxed, early_rx)
}

/// Sends `data` on `stream`, half-closes, returns the echo.
async fn echo_on(mut stream: weft_upgrader::BoxedStream, data: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(data).await?;
    stream.close().await?;
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await?;
    Ok(back)
}

/// The long-header packet types of QUIC v1 (RFC 9000, 17.2) the gate tells apart.
const INITIAL: u8 = 0;
const ZERO_RTT: u8 = 1;

/// Reads a QUIC variable-length integer (RFC 9000, 16) at the start of `bytes`:
/// the value and its length.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let len = 1usize << (first >> 6);
    let rest = bytes.get(1..len)?;
    let value = rest
        .iter()
        .fold(u64::from(first & 0x3f), |v, b| (v << 8) | u64::from(*b));
    Some((value, len))
}

/// Whether every QUIC packet coalesced in `datagram` is an Initial or a 0-RTT one: a
/// client's first flight (its ClientHello and early data). Its Finished travels in a
/// Handshake packet, and after it 1-RTT (short header) packets: not first flight.
fn first_flight_only(datagram: &[u8]) -> bool {
    let mut rest = datagram;
    while !rest.is_empty() {
        let Some(packet_len) = long_header_len(rest) else {
            return false;
        };
        rest = &rest[packet_len..];
    }
    true
}

/// The length of the Initial or 0-RTT packet at the start of `bytes`; `None` for any
/// other packet (or one that does not parse).
fn long_header_len(bytes: &[u8]) -> Option<usize> {
    let first = *bytes.first()?;
    let kind = (first >> 4) & 0x3;
    // A long header (form bit), and a type whose packets belong to the first flight.
    if first & 0x80 == 0 || (kind != INITIAL && kind != ZERO_RTT) {
        return None;
    }
    // Flags, version, then the destination and source connection ids.
    let mut at = 5;
    for _ in 0..2 {
        at += 1 + usize::from(*bytes.get(at)?);
    }
    if kind == INITIAL {
        let (token, len) = varint(bytes.get(at..)?)?;
        at += len + usize::try_from(token).ok()?;
    }
    let (payload, len) = varint(bytes.get(at..)?)?;
    let end = at + len + usize::try_from(payload).ok()?;
    (end <= bytes.len()).then_some(end)
}

/// A UDP relay in front of `server` for one client that holds the client's handshake
/// back: it forwards the client's first flight (ClientHello and 0-RTT packets) and
/// keeps every later datagram of the client (its Finished first) until the returned
/// sender fires (or is dropped); then it forwards what it kept, in order, and
/// everything after. The server's datagrams go back at once. So the listener reads a
/// resuming client's early data while its handshake cannot complete, however slowly
/// the test gets to accept the connection and its streams.
async fn handshake_holding_relay(server: SocketAddr) -> (SocketAddr, oneshot::Sender<()>) {
    use std::sync::{Arc, Mutex};
    use tokio::net::UdpSocket;
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("binds"));
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("binds"));
    let addr = front.local_addr().expect("an address");
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let (release, mut released) = oneshot::channel::<()>();
    let (inbound, outbound, seen) = (front.clone(), back.clone(), client.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut held: Option<Vec<Vec<u8>>> = Some(Vec::new());
        loop {
            tokio::select! {
                _ = &mut released, if held.is_some() => {
                    for datagram in held.take().unwrap_or_default() {
                        let _ = outbound.send_to(&datagram, server).await;
                    }
                }
                received = inbound.recv_from(&mut buf) => {
                    let Ok((n, from)) = received else { return };
                    *seen.lock().expect("not poisoned") = Some(from);
                    let datagram = &buf[..n];
                    match held.as_mut() {
                        Some(held) if !first_flight_only(datagram) => held.push(datagram.to_vec()),
                        _ => {
                            let _ = outbound.send_to(datagram, server).await;
                        }
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, _)) = back.recv_from(&mut buf).await {
            let to = *client.lock().expect("not poisoned");
            if let Some(to) = to {
                let _ = front.send_to(&buf[..n], to).await;
            }
        }
    });
    (addr, release)
}

/// Waits until the client holds all [`TICKETS_PER_HANDSHAKE`] tickets of one handshake with `peer` (they
/// arrive after it), so that a later count of `peer`'s tickets is not raced by one still in flight.
async fn wait_for_tickets(client: &QuicEndpoints, peer: &PeerId) {
    let deadline = Instant::now() + WAIT;
    while client.session_tickets(peer) < TICKETS_PER_HANDSHAKE {
        assert!(
            Instant::now() < deadline,
            "no session ticket of {peer} arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Dials `listener` expecting `expected`, serves the inbound side with an echo.
async fn connect(
    client: &QuicEndpoints,
    listener: &QuicListener,
    expected: Option<PeerId>,
    early_data: bool,
) -> (
    Established,
    std::sync::Arc<dyn MuxedConnection>,
    tokio::sync::mpsc::UnboundedReceiver<bool>,
) {
    let (outbound, inbound) = tokio::join!(
        client.dial_with(
            listener.local_addr(),
            expected,
            early_data,
            Budget::unlimited()
        ),
        accept_one(listener)
    );
    let outbound = outbound.expect("dials");
    let (server, early) = serve_echo(inbound.expect("accepts"));
    (outbound, server, early)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_resumes_and_its_early_stream_goes_in_0rtt() {
    let (server, server_id, _) = node();
    let (client, _, _) = node();
    let listener = server.listen("127.0.0.1:0".parse().unwrap()).unwrap();

    let (first, server_side, _) = connect(&client, &listener, Some(server_id), true).await;
    let info = first.connection.muxed.session_info();
    assert!(info.handshake_complete);
    assert_eq!(info.resumed, Some(false), "no ticket yet: a full handshake");
    assert_eq!(info.early_data, EarlyData::NotAttempted);
    assert_eq!(server_side.session_info().resumed, Some(false));
    tokio::spawn(first.connection.driver);
    wait_for_tickets(&client, &server_id).await;
    first.connection.muxed.close().await.unwrap();

    // The dial returns before the listener even accepted: it sends early data. The
    // relay holds the client's Finished back until the listener has taken the early
    // stream, so the stream arrives while the handshake still runs (quinn marks a
    // stream early when it is accepted during the handshake), however loaded the
    // machine is.
    let (relay, release) = handshake_holding_relay(listener.local_addr()).await;
    let second = client
        .dial_with(relay, Some(server_id), true, Budget::unlimited())
        .await
        .expect("dials");
    assert_eq!(second.connection.remote_peer, server_id, "the same peer");
    let muxed = second.connection.muxed.clone();
    tokio::spawn(second.connection.driver);
    let before = muxed.session_info();
    assert_eq!(before.early_data, EarlyData::Pending);
    assert!(!before.handshake_complete);
    let mut stream = muxed.open_early_stream().await.expect("opens in 0-RTT");
    stream.write_all(b"early ping").await.expect("writes");
    stream.close().await.expect("half-closes");

    let inbound = tokio::time::timeout(WAIT, accept_one(&listener))
        .await
        .expect("the relay let the first flight through")
        .expect("accepts");
    let (server_side, mut early) = serve_echo(inbound);
    let first_stream = tokio::time::timeout(WAIT, early.recv())
        .await
        .expect("the listener takes the early stream in time");
    assert_eq!(first_stream, Some(true), "the listener saw a 0-RTT stream");
    assert!(
        !server_side.session_info().handshake_complete,
        "the relay still holds the client's Finished"
    );
    release.send(()).expect("the relay runs");
    let mut back = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut back))
        .await
        .expect("in time")
        .expect("echoed");
    assert_eq!(back, b"early ping");
    assert!(muxed.handshake_complete().await);
    let after = muxed.session_info();
    assert_eq!(after.resumed, Some(true));
    assert_eq!(after.early_data, EarlyData::Accepted);
    assert!(after.rtt.is_some());

    // The listener handed the resumed connection out with the client's key, from
    // the session; it proves the same peer as a full handshake.
    assert!(server_side.handshake_complete().await);
    assert_eq!(server_side.session_info().resumed, Some(true));

    // A stream opened without asking waits for the handshake: never 0-RTT.
    let stream = muxed.open_stream().await.expect("opens");
    assert_eq!(echo_on(stream, b"late").await.expect("echoed"), b"late");
    assert_eq!(early.recv().await, Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_learns_the_resumed_clients_peer_id() {
    let (server, server_id, _) = node();
    let (client, client_id, _) = node();
    let listener = server.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let (first, _, _) = connect(&client, &listener, Some(server_id), false).await;
    tokio::spawn(first.connection.driver);
    wait_for_tickets(&client, &server_id).await;
    first.connection.muxed.close().await.unwrap();

    let (outbound, inbound) = tokio::join!(
        client.dial_with(
            listener.local_addr(),
            Some(server_id),
            false,
            Budget::unlimited()
        ),
        accept_one(&listener)
    );
    let (outbound, inbound) = (outbound.expect("dials"), inbound.expect("accepts"));
    assert_eq!(inbound.connection.remote_peer, client_id);
    assert_eq!(outbound.connection.remote_peer, server_id);
    assert_eq!(
        outbound.connection.muxed.session_info().resumed,
        Some(true),
        "resumed without early data"
    );
    assert_eq!(
        outbound.connection.muxed.session_info().early_data,
        EarlyData::NotAttempted
    );
}

/// Binds `endpoints` to `addr`, retrying while the previous socket is released.
async fn listen_again(endpoints: &QuicEndpoints, addr: SocketAddr) -> QuicListener {
    let deadline = Instant::now() + WAIT;
    loop {
        match endpoints.listen(addr) {
            Ok(listener) => return listener,
            Err(error) if Instant::now() < deadline => {
                tracing::debug!(%error, "port still taken");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("cannot listen on {addr} again: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_of_peer_a_is_never_used_to_dial_peer_b_at_the_same_address() {
    let (client, _, _) = node();
    let (a, a_id, _) = node();
    let a_listener = a.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = a_listener.local_addr();
    let (to_a, a_side, _) = connect(&client, &a_listener, Some(a_id), true).await;
    tokio::spawn(to_a.connection.driver);
    wait_for_tickets(&client, &a_id).await;
    let a_tickets = client.session_tickets(&a_id);
    to_a.connection.muxed.close().await.unwrap();
    drop((a_side, a_listener, a));

    // B listens on the very UDP port A had.
    let (b, b_id, _) = node();
    let b_listener = listen_again(&b, addr).await;
    let (to_b, _, _) = connect(&client, &b_listener, Some(b_id), true).await;
    assert_eq!(to_b.connection.remote_peer, b_id, "B proved");
    let info = to_b.connection.muxed.session_info();
    assert!(
        info.handshake_complete,
        "no early return without a ticket of B"
    );
    assert_eq!(info.resumed, Some(false), "a full handshake");
    assert_eq!(info.early_data, EarlyData::NotAttempted);
    assert_eq!(
        client.session_tickets(&a_id),
        a_tickets,
        "A's tickets were not touched"
    );

    // A dial that expects no particular peer neither resumes nor keeps tickets.
    let (anyone, _, _) = connect(&client, &b_listener, None, true).await;
    assert_eq!(anyone.connection.remote_peer, b_id);
    assert_eq!(anyone.connection.muxed.session_info().resumed, Some(false));
    tokio::spawn(anyone.connection.driver);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(client.session_tickets(&a_id), a_tickets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_lost_its_sessions_rejects_early_data_and_completes_in_full() {
    let (client, _, _) = node();
    let (server, server_id, server_key) = node();
    let listener = server.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr();
    let (first, server_side, _) = connect(&client, &listener, Some(server_id), true).await;
    tokio::spawn(first.connection.driver);
    wait_for_tickets(&client, &server_id).await;
    first.connection.muxed.close().await.unwrap();
    drop((server_side, listener, server));

    // The same identity restarted: its session cache is gone.
    let restarted = QuicEndpoints::new(&server_key, Config::default()).expect("endpoints");
    let listener = listen_again(&restarted, addr).await;
    let second = client
        .dial_with(addr, Some(server_id), true, Budget::unlimited())
        .await
        .expect("dials");
    assert_eq!(second.connection.remote_peer, server_id);
    let muxed = second.connection.muxed.clone();
    tokio::spawn(second.connection.driver);
    assert_eq!(muxed.session_info().early_data, EarlyData::Pending);
    let mut stream = muxed.open_early_stream().await.expect("opens in 0-RTT");
    stream.write_all(b"lost").await.expect("buffered in 0-RTT");
    let _ = stream.close().await;
    let (_server_side, _) = serve_echo(accept_one(&listener).await.expect("accepts"));
    let mut back = Vec::new();
    let early = tokio::time::timeout(WAIT, stream.read_to_end(&mut back))
        .await
        .expect("in time");
    assert!(early.is_err(), "the rejected early stream fails: {early:?}");
    assert!(
        muxed.handshake_complete().await,
        "the full handshake completes"
    );
    let info = muxed.session_info();
    assert_eq!(info.early_data, EarlyData::Rejected);
    assert_eq!(info.resumed, Some(false));
    // The request goes again on a normal stream.
    let stream = muxed.open_stream().await.expect("opens");
    assert_eq!(echo_on(stream, b"again").await.expect("echoed"), b"again");
}
