//! The UDP relay on real sockets on 127.0.0.1: it delays each datagram by its one-way
//! delay in both directions, drops and reorders the configured fractions (counted in
//! its stats), keeps one session per client, and stays within its queue limit when a
//! sender floods it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{timeout, Instant};
use weft_interop_tests::udp_relay::UdpRelayStats;
use weft_interop_tests::{UdpRelay, UdpRelayConfig};

/// How long a test waits for datagrams that may never come.
const QUIET: Duration = Duration::from_millis(500);

/// A UDP echo server on 127.0.0.1; answers every datagram to its sender.
async fn echo_server() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("binds");
    let addr = socket.local_addr().expect("has an address");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

/// A relay with `config` in front of a fresh [`echo_server`].
async fn echo_relay(config: UdpRelayConfig) -> UdpRelay {
    UdpRelay::start(echo_server().await, config)
        .await
        .expect("starts")
}

/// A client socket connected to the relay.
async fn client(relay: &UdpRelay) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("binds");
    socket.connect(relay.local_addr()).await.expect("connects");
    socket
}

/// Sends `count` numbered datagrams of `size` bytes, one every `gap`, while reading
/// the answers (so the client's own socket buffer never overflows), until `QUIET`
/// passes without one.
async fn send_and_receive(socket: UdpSocket, count: u32, size: usize, gap: Duration) -> Vec<u32> {
    let socket = std::sync::Arc::new(socket);
    let reader = tokio::spawn({
        let socket = socket.clone();
        async move { receive_all(&socket).await }
    });
    send_numbered(&socket, count, size, gap).await;
    reader.await.expect("the reader task")
}

/// Receives datagrams (each a big-endian u32 sequence number) until `QUIET` passes
/// without one.
async fn receive_all(socket: &UdpSocket) -> Vec<u32> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(Ok(n)) = timeout(QUIET, socket.recv(&mut buf)).await {
        assert!(n >= 4, "a datagram of {n} bytes");
        got.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
    }
    got
}

/// Sends `count` numbered datagrams of `size` bytes, one every `gap`.
async fn send_numbered(socket: &UdpSocket, count: u32, size: usize, gap: Duration) {
    let mut datagram = vec![0u8; size];
    for i in 0..count {
        datagram[..4].copy_from_slice(&i.to_be_bytes());
        socket.send(&datagram).await.expect("sends");
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
    }
}

fn total_lost(stats: &UdpRelayStats) -> u64 {
    stats.to_target.lost + stats.to_client.lost
}

#[tokio::test]
async fn each_direction_waits_its_one_way_delay() {
    let relay = echo_relay(UdpRelayConfig::with_delay(Duration::from_millis(30))).await;
    let (rcv, snd) = relay.socket_buffers();
    assert!(rcv > 0 && snd > 0, "buffers {rcv} / {snd}");
    let socket = client(&relay).await;
    let mut buf = [0u8; 64];
    for round in 0..5u8 {
        let sent = Instant::now();
        socket.send(&[round; 32]).await.expect("sends");
        let n = timeout(Duration::from_secs(5), socket.recv(&mut buf))
            .await
            .expect("the echo comes back")
            .expect("receives");
        let rtt = sent.elapsed();
        assert_eq!(&buf[..n], &[round; 32]);
        // 30 ms each way; the upper bound only catches a relay that sleeps far too long.
        assert!(rtt >= Duration::from_millis(60), "round trip {rtt:?}");
        assert!(rtt < Duration::from_secs(2), "round trip {rtt:?}");
    }
    let stats = relay.stats();
    assert_eq!(
        (stats.to_target.delivered, stats.to_client.delivered),
        (5, 5)
    );
    assert_eq!(stats.sessions, 1);
}

#[tokio::test]
async fn a_seeded_fraction_is_dropped() {
    let config = UdpRelayConfig {
        loss: 0.2,
        seed: 42,
        ..UdpRelayConfig::with_delay(Duration::from_millis(1))
    };
    let relay = echo_relay(config).await;
    let socket = client(&relay).await;
    // Spaced, so neither the kernel nor the relay's queue drops any.
    let got = send_and_receive(socket, 500, 100, Duration::from_micros(200)).await;
    let stats = relay.stats();
    // Each datagram crosses twice: it survives both with probability 0.64.
    assert_eq!(
        got.len() as u64,
        stats.to_client.delivered,
        "every datagram the relay did not drop arrives ({stats:?})"
    );
    assert_eq!(
        stats.to_client.offered,
        500 - stats.to_target.lost,
        "the echo server answers every datagram that reached it ({stats:?})"
    );
    assert_eq!(total_lost(&stats), 500 - stats.to_client.delivered);
    assert!(
        (260..=380).contains(&got.len()),
        "{} of 500 echoed at 20% loss per direction",
        got.len()
    );
    assert_eq!(stats.to_target.overflowed + stats.to_client.overflowed, 0);
    let mut unique = got.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "nothing is duplicated");
}

#[tokio::test]
async fn a_seeded_fraction_is_overtaken() {
    let config = UdpRelayConfig {
        reorder: 0.1,
        reorder_delay: Duration::from_millis(20),
        seed: 5,
        ..UdpRelayConfig::with_delay(Duration::from_millis(5))
    };
    let relay = echo_relay(config).await;
    let socket = client(&relay).await;
    let got = send_and_receive(socket, 300, 100, Duration::from_millis(1)).await;
    let stats = relay.stats();
    assert_eq!(got.len(), 300, "reordering loses nothing: {stats:?}");
    let overtaken = got.windows(2).filter(|w| w[0] > w[1]).count();
    let held = stats.to_target.held_back + stats.to_client.held_back;
    assert!(
        (20..=100).contains(&held),
        "{held} held back of 600 crossings"
    );
    assert!(overtaken > 0, "arrival order {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_stays_within_the_queue_limit() {
    // A long delay and a small queue: a burst cannot all fit.
    let limit = 256 * 1024;
    let config = UdpRelayConfig {
        queue_limit: limit,
        ..UdpRelayConfig::with_delay(Duration::from_millis(200))
    };
    let relay = echo_relay(config).await;
    let socket = client(&relay).await;
    let got = send_and_receive(socket, 2_000, 1_200, Duration::ZERO).await;
    let stats = relay.stats();
    assert!(
        stats.to_target.overflowed > 0,
        "2.4 MB in a burst overflow 256 KiB: {stats:?}"
    );
    assert!(stats.to_target.peak_queued_bytes <= limit, "{stats:?}");
    assert!(stats.to_client.peak_queued_bytes <= limit, "{stats:?}");
    assert!(!got.is_empty() && got.len() as u64 <= stats.to_client.delivered);
}

#[tokio::test]
async fn each_client_is_its_own_peer_to_the_target() {
    let relay = echo_relay(UdpRelayConfig::with_delay(Duration::ZERO)).await;
    let (a, b) = (client(&relay).await, client(&relay).await);
    a.send(b"from a").await.expect("sends");
    b.send(b"from b").await.expect("sends");
    let mut buf = [0u8; 16];
    let n = timeout(Duration::from_secs(5), a.recv(&mut buf))
        .await
        .expect("a gets its echo")
        .expect("receives");
    assert_eq!(&buf[..n], b"from a");
    let n = timeout(Duration::from_secs(5), b.recv(&mut buf))
        .await
        .expect("b gets its echo")
        .expect("receives");
    assert_eq!(&buf[..n], b"from b");
    assert_eq!(relay.stats().sessions, 2);
}

#[tokio::test]
async fn clients_beyond_the_session_limit_are_turned_away() {
    let config = UdpRelayConfig {
        max_sessions: 2,
        ..UdpRelayConfig::with_delay(Duration::ZERO)
    };
    let relay = echo_relay(config).await;
    let clients = [
        client(&relay).await,
        client(&relay).await,
        client(&relay).await,
    ];
    let mut answered = 0;
    for c in &clients {
        c.send(b"hello").await.expect("sends");
        let mut buf = [0u8; 8];
        if timeout(QUIET, c.recv(&mut buf)).await.is_ok() {
            answered += 1;
        }
    }
    let stats = relay.stats();
    assert_eq!((answered, stats.sessions, stats.refused), (2, 2, 1));
}

#[tokio::test]
async fn a_segmented_send_arrives_as_its_datagrams_unchanged() {
    // The client sends one GSO batch where the kernel offers it (quinn-udp falls back
    // to one datagram per send otherwise), as a QUIC endpoint does; the relay reads it
    // coalesced and forwards it segmented; the echo comes back datagram by datagram.
    let relay = echo_relay(UdpRelayConfig::with_delay(Duration::from_millis(5))).await;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("binds");
    let state = quinn_udp::UdpSocketState::new((&socket).into()).expect("a quinn-udp socket");
    let segments = state.max_gso_segments().min(20);
    let (stride, count) = (1_200, segments * 2);
    let mut sent = Vec::new();
    for batch in 0..2 {
        let contents: Vec<u8> = (0..segments)
            .flat_map(|i| {
                let n = (batch * segments + i) as u8;
                std::iter::repeat_n(n, stride)
            })
            .collect();
        sent.extend((0..segments).map(|i| (batch * segments + i) as u8));
        let transmit = quinn_udp::Transmit {
            destination: relay.local_addr(),
            ecn: None,
            contents: &contents,
            segment_size: (segments > 1).then_some(stride),
            src_ip: None,
        };
        state
            .try_send((&socket).into(), &transmit)
            .expect("sends the batch");
    }
    socket.set_nonblocking(true).expect("non-blocking");
    let socket = UdpSocket::from_std(socket).expect("a Tokio socket");
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(Ok((n, _))) = timeout(QUIET, socket.recv_from(&mut buf)).await {
        assert_eq!(n, stride, "each datagram keeps its size");
        assert!(buf[..n].iter().all(|&b| b == buf[0]), "and its bytes");
        got.push(buf[0]);
    }
    assert_eq!(got, sent, "all {count} echoed, in order");
    let stats = relay.stats();
    assert_eq!(
        (stats.to_target.delivered, stats.to_client.delivered),
        (count as u64, count as u64),
        "the relay counts datagrams, not batches"
    );
}
