//! QUIC connections over real UDP sockets on 127.0.0.1.

mod support;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::{Keypair, PeerId};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::Limited;
use weft_transport_quic::{
    Config, Congestion, Established, QuicEndpoints, QuicError, QuicListener,
};
use weft_upgrader::{Budget, MuxerError, Role};

const LOCALHOST: &str = "127.0.0.1:0";

fn node(config: Config) -> (QuicEndpoints, PeerId) {
    let key = Keypair::generate_ed25519();
    let peer = key.public().to_peer_id();
    (QuicEndpoints::new(&key, config).expect("endpoints"), peer)
}

fn listen(endpoints: &QuicEndpoints, addr: &str) -> QuicListener {
    endpoints
        .listen(addr.parse().expect("an address"))
        .expect("listens")
}

/// Accepts one connection and runs its handshake with an unlimited budget.
async fn accept_one(listener: &QuicListener) -> Result<Established, QuicError> {
    listener
        .accept()
        .await?
        .handshake(Budget::unlimited())
        .await
}

/// Spawns the driver and answers every inbound stream with what it read, then EOF.
fn serve_echo(established: Established) -> Arc<dyn weft_upgrader::MuxedConnection> {
    let Established { connection, .. } = established;
    tokio::spawn(connection.driver);
    let muxed = connection.muxed;
    let acceptor = muxed.clone();
    tokio::spawn(async move {
        while let Ok(mut stream) = acceptor.accept_stream().await {
            tokio::spawn(async move {
                let mut data = Vec::new();
                stream.read_to_end(&mut data).await.expect("reads to EOF");
                stream.write_all(&data).await.expect("echoes");
                stream.close().await.expect("half-closes");
            });
        }
    });
    muxed
}

/// Two nodes with the same config, connected: the dialer's side (its driver spawned)
/// and the listener's, which echoes every stream; endpoints and listener live as long
/// as this.
struct EchoPair {
    client: Arc<dyn weft_upgrader::MuxedConnection>,
    _server: Arc<dyn weft_upgrader::MuxedConnection>,
    _endpoints: (QuicEndpoints, QuicEndpoints),
    _listener: QuicListener,
}

impl EchoPair {
    async fn connect(config: Config) -> EchoPair {
        let (a, _) = node(config.clone());
        let (b, b_id) = node(config);
        let listener = listen(&b, LOCALHOST);
        let (outbound, inbound) = tokio::join!(
            a.dial(listener.local_addr(), Some(b_id), Budget::unlimited()),
            accept_one(&listener),
        );
        let server = serve_echo(inbound.expect("accepts"));
        let outbound = outbound.expect("dials");
        tokio::spawn(outbound.connection.driver);
        EchoPair {
            client: outbound.connection.muxed,
            _server: server,
            _endpoints: (a, b),
            _listener: listener,
        }
    }
}

/// Sends `data` on a new stream, half-closes, and returns what came back.
async fn echo(muxed: &dyn weft_upgrader::MuxedConnection, data: &[u8]) -> Vec<u8> {
    let mut stream = muxed.open_stream().await.expect("opens a stream");
    stream.write_all(data).await.expect("writes");
    stream.close().await.expect("half-closes");
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.expect("reads the echo");
    back
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn the_handshake_proves_both_peer_ids_in_both_directions() {
    let (a, a_id) = node(Config::default());
    let (b, b_id) = node(Config::default());
    let a_listener = listen(&a, LOCALHOST);
    let b_listener = listen(&b, LOCALHOST);

    for (dialer, dialer_id, listener, listener_id) in
        [(&a, a_id, &b_listener, b_id), (&b, b_id, &a_listener, a_id)]
    {
        let (outbound, inbound) = tokio::join!(
            dialer.dial(
                listener.local_addr(),
                Some(listener_id),
                Budget::unlimited()
            ),
            accept_one(listener),
        );
        let (outbound, inbound) = (outbound.expect("dials"), inbound.expect("accepts"));
        assert_eq!(outbound.connection.remote_peer, listener_id);
        assert_eq!(
            outbound.connection.remote_public_key.to_peer_id(),
            listener_id
        );
        assert_eq!(inbound.connection.remote_peer, dialer_id);
        assert_eq!(outbound.connection.role, Role::Initiator);
        assert_eq!(inbound.connection.role, Role::Responder);
        assert_eq!(outbound.connection.security_protocol, "/tls/1.0.0");
        assert_eq!(outbound.connection.muxer_protocol, "quic-v1");
        assert!(outbound.connection.muxer_inlined);
        assert_eq!(outbound.remote_addr, listener.local_addr());
        assert_eq!(inbound.remote_addr.port(), outbound.local_addr.port());

        let server = serve_echo(inbound);
        let client = outbound.connection.muxed.clone();
        tokio::spawn(outbound.connection.driver);
        assert_eq!(echo(client.as_ref(), b"hello").await, b"hello");
        client.close().await.expect("closes");
        assert!(client.is_closed());
        drop(server);
    }
}

#[tokio::test]
async fn a_dial_that_expects_another_peer_fails_in_the_handshake() {
    let (a, _) = node(Config::default());
    let (b, _) = node(Config::default());
    let listener = listen(&b, LOCALHOST);
    let someone_else = Keypair::generate_ed25519().public().to_peer_id();
    let (outbound, inbound) = tokio::join!(
        a.dial(
            listener.local_addr(),
            Some(someone_else),
            Budget::unlimited()
        ),
        accept_one(&listener),
    );
    let error = outbound.expect_err("the wrong peer is refused");
    assert!(
        error.is_authentication_failure(),
        "a certificate refusal, not {error}"
    );
    assert!(inbound.is_err(), "the listener sees the handshake fail too");

    // Any peer will do without an expectation.
    let (outbound, inbound) = tokio::join!(
        a.dial(listener.local_addr(), None, Budget::unlimited()),
        accept_one(&listener),
    );
    assert!(outbound.is_ok() && inbound.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_streams_echo() {
    let pair = EchoPair::connect(Config::default()).await;
    let client = pair.client.clone();
    // More streams than the concurrent limit: openers wait for credit, none fail.
    let echoes = (0..400usize).map(|i| {
        let client = client.clone();
        async move {
            let data = pattern(1000 + i);
            assert_eq!(echo(client.as_ref(), &data).await, data, "stream {i}");
        }
    });
    futures::future::join_all(echoes).await;
}

// The data-path tests run on a multi-threaded runtime, as a host does: on one thread
// quinn's endpoint and connection drivers queue behind the application, and a
// 16 MiB echo took 11-18 s instead of about 2 s (debug test build, 2 shared cores).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_mib_go_both_ways_with_half_close() {
    let pair = EchoPair::connect(Config::default()).await;
    let data = pattern(16 << 20);
    assert!(echo(pair.client.as_ref(), &data).await == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bbr_carries_four_mib_both_ways() {
    let pair = EchoPair::connect(Config::default().with_congestion(Congestion::Bbr)).await;
    let data = pattern(4 << 20);
    assert!(echo(pair.client.as_ref(), &data).await == data);
}

#[tokio::test]
async fn a_wildcard_listener_dials_from_its_own_port() {
    let (a, _) = node(Config::default());
    let (b, b_id) = node(Config::default());
    let a_listener = listen(&a, "0.0.0.0:0");
    let b_listener = listen(&b, LOCALHOST);
    let target = target_of(&b_listener);
    let (outbound, inbound) = tokio::join!(
        a.dial(target, Some(b_id), Budget::unlimited()),
        accept_one(&b_listener),
    );
    let (outbound, inbound) = (outbound.expect("dials"), inbound.expect("accepts"));
    assert_eq!(inbound.remote_addr.port(), a_listener.local_addr().port());
    assert_eq!(outbound.local_addr.port(), a_listener.local_addr().port());

    // An inbound connection on the wildcard socket reports the IP it arrived on.
    let (reverse, arrived) = tokio::join!(
        b.dial(target_of(&a_listener), None, Budget::unlimited()),
        accept_one(&a_listener),
    );
    reverse.expect("dials back");
    assert_eq!(
        arrived.expect("accepts").local_addr,
        target_of(&a_listener),
        "the local IP the packets used, not the wildcard"
    );

    // Once the listener is gone, dials leave from an ephemeral port.
    drop(a_listener);
    let (outbound, inbound) = tokio::join!(
        a.dial(target, Some(b_id), Budget::unlimited()),
        accept_one(&b_listener),
    );
    assert_eq!(
        inbound.expect("accepts").remote_addr.port(),
        outbound.expect("dials").local_addr.port()
    );
}

/// The 127.0.0.1 address of a listener (also one bound to the wildcard).
fn target_of(listener: &QuicListener) -> SocketAddr {
    SocketAddr::new([127, 0, 0, 1].into(), listener.local_addr().port())
}

/// Forwards datagrams between one client and `server` until the returned task is
/// aborted; then both sides hear nothing, as with a peer that lost power.
async fn udp_relay(server: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let front = tokio::net::UdpSocket::bind(LOCALHOST).await.expect("binds");
    let back = tokio::net::UdpSocket::bind(LOCALHOST).await.expect("binds");
    back.connect(server).await.expect("connects");
    let addr = front.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let mut client = None;
        let (mut up, mut down) = (vec![0u8; 65536], vec![0u8; 65536]);
        loop {
            tokio::select! {
                Ok((n, from)) = front.recv_from(&mut up) => {
                    client = Some(from);
                    let _ = back.send(&up[..n]).await;
                }
                Ok(n) = back.recv(&mut down) => {
                    if let Some(client) = client {
                        let _ = front.send_to(&down[..n], client).await;
                    }
                }
            }
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_silent_peer_is_reported_dead_after_the_idle_timeout() {
    let config = Config::default()
        .with_idle_timeout(Duration::from_millis(1500))
        .with_keep_alive_interval(Duration::from_millis(300));
    let (a, _) = node(config.clone());
    let (b, b_id) = node(config);
    let listener = listen(&b, LOCALHOST);
    let (relay, relay_task) = udp_relay(listener.local_addr()).await;
    let (outbound, inbound) = tokio::join!(
        a.dial(relay, Some(b_id), Budget::unlimited()),
        accept_one(&listener),
    );
    let (outbound, _inbound) = (outbound.expect("dials"), inbound.expect("accepts"));

    // Keep-alive holds an idle connection open past the idle timeout.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!outbound.connection.muxed.is_closed());

    relay_task.abort();
    let cut = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), outbound.connection.driver)
        .await
        .expect("the driver ends");
    let waited = cut.elapsed();
    match ended {
        Err(MuxerError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        waited >= Duration::from_millis(1000) && waited < Duration::from_secs(3),
        "reported after {waited:?}"
    );
    assert!(outbound.connection.muxed.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_budget_shrinks_the_window_and_the_connection_still_works() {
    let (a, _) = node(Config::default());
    let (b, b_id) = node(Config::default());
    let listener = listen(&b, LOCALHOST);
    // The dialer's budget fits 512 KiB of the 1 MiB receive window and 256 KiB of the
    // 1 MiB send window; the listener's nothing.
    let dialer_budget = Limited::new(768 << 10);
    let listener_budget = Limited::new(0);
    let accept = async {
        let inbound = listener.accept().await?;
        inbound
            .handshake(Budget::new(listener_budget.clone()))
            .await
    };
    let (outbound, inbound) = tokio::join!(
        a.dial(
            listener.local_addr(),
            Some(b_id),
            Budget::new(dialer_budget.clone())
        ),
        accept,
    );
    let server = serve_echo(inbound.expect("accepts despite the denial"));
    let outbound = outbound.expect("dials despite the denial");
    assert_eq!(dialer_budget.used(), (512 + 256) << 10);
    assert_eq!(listener_budget.used(), 0);

    tokio::spawn(outbound.connection.driver);
    let client = outbound.connection.muxed;
    let data = pattern(4 << 20);
    assert!(echo(client.as_ref(), &data).await == data);

    client.close().await.expect("closes");
    drop(client);
    drop(server);
    assert_eq!(dialer_budget.used(), 0, "given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_made_before_its_budget_adopts_it_afterwards() {
    let (a, _) = node(Config::default());
    let (b, b_id) = node(Config::default());
    let listener = listen(&b, LOCALHOST);
    let accept = async {
        let inbound = listener.accept().await?;
        inbound
            .handshake(weft_transport_quic::deferred_budget())
            .await
    };
    let (outbound, inbound) = tokio::join!(
        a.dial(listener.local_addr(), Some(b_id), Budget::unlimited()),
        accept,
    );
    let inbound = inbound.expect("accepts");
    let budget = Limited::new(64 << 20);
    inbound
        .connection
        .muxed
        .adopt_budget(Budget::new(budget.clone()));
    assert_eq!(
        budget.used(),
        (weft_transport_quic::DEFAULT_CONNECTION_WINDOW + weft_transport_quic::DEFAULT_SEND_WINDOW)
            as usize,
        "both starting windows"
    );
    let server = serve_echo(inbound);
    let outbound = outbound.expect("dials");
    tokio::spawn(outbound.connection.driver);
    let data = pattern(8 << 20);
    assert!(echo(outbound.connection.muxed.as_ref(), &data).await == data);
    // The peer closes; the server's accept loop ends and drops the last handle.
    outbound.connection.muxed.close().await.expect("closes");
    drop(server);
    let deadline = Instant::now() + Duration::from_secs(2);
    while budget.used() != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(budget.used(), 0, "given back");
}
