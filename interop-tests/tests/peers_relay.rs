//! The delaying relay: added round-trip time, unbounded buffering (bulk transfers are
//! not window-limited), order, half-close and reset propagation, byte counters, the
//! `delay-relay` binary, and a real libp2p dial through it.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weft_interop_tests::{
    require_impls, run_dialer, ClosedTcpPort, DelayRelay, Impl, ListeningPeer, Security,
};

const DELAY: Duration = Duration::from_millis(30);

/// A server that echoes everything and closes its write side at EOF.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn ping_pong_round_trips_take_twice_the_delay() {
    let relay = DelayRelay::start(echo_server().await, DELAY).await.unwrap();
    let mut client = TcpStream::connect(relay.local_addr()).await.unwrap();
    client.set_nodelay(true).unwrap();
    let mut rtts = Vec::new();
    for i in 0..5u8 {
        let started = Instant::now();
        client.write_all(&[i]).await.unwrap();
        let mut byte = [0u8; 1];
        client.read_exact(&mut byte).await.unwrap();
        rtts.push(started.elapsed());
        assert_eq!(byte[0], i);
    }
    rtts.sort();
    eprintln!("round trips through a {DELAY:?} relay: {rtts:?}");
    // Each chunk is held `DELAY` each way: never faster than 2 x DELAY.
    assert!(rtts[0] >= 2 * DELAY, "{rtts:?}");
    // And the relay adds nothing much beyond that (loose: shared CI machines).
    assert!(rtts[2] < 2 * DELAY + Duration::from_millis(250), "{rtts:?}");
    assert_eq!(relay.bytes_to_target(), 5);
    assert_eq!(relay.bytes_from_target(), 5);
    assert_eq!(relay.connections(), 1);
}

/// 64 MiB through a 30 ms relay: a relay with a bounded window would need many
/// round trips (64 KiB per 60 ms is ~9 Mbit/s); the unbounded queue makes it take
/// about one delay plus the copying time.
#[tokio::test]
async fn bulk_transfer_is_not_limited_by_the_delay() {
    const TOTAL: usize = 64 * 1024 * 1024;
    let pattern: std::sync::Arc<Vec<u8>> =
        std::sync::Arc::new((0..TOTAL).map(|i| i as u8).collect());
    let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_addr = sink.local_addr().unwrap();
    let expected = std::sync::Arc::clone(&pattern);
    let receiver = tokio::spawn(async move {
        let (mut socket, _) = sink.accept().await.unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0usize;
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            assert!(total + n <= TOTAL, "more bytes than sent");
            assert!(
                buf[..n] == expected[total..total + n],
                "bytes after {total} differ"
            );
            total += n;
        }
        // Reply after EOF: proves the half-close crossed the relay.
        socket
            .write_all(&(total as u64).to_be_bytes())
            .await
            .unwrap();
        socket.shutdown().await.unwrap();
    });
    let relay = DelayRelay::start(sink_addr, DELAY).await.unwrap();
    let started = Instant::now();
    let mut client = TcpStream::connect(relay.local_addr()).await.unwrap();
    client.write_all(&pattern).await.unwrap();
    client.shutdown().await.unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).await.unwrap();
    let elapsed = started.elapsed();
    receiver.await.unwrap();
    assert_eq!(reply, (TOTAL as u64).to_be_bytes());
    assert_eq!(relay.bytes_to_target(), TOTAL as u64);
    assert_eq!(relay.bytes_from_target(), 8);
    let gbit_s = TOTAL as f64 * 8.0 / elapsed.as_secs_f64() / 1e9;
    eprintln!("64 MiB through a {DELAY:?} relay in {elapsed:?}: {gbit_s:.2} Gbit/s");
    // At least 2 x DELAY (data one way, reply the other), and far from window-limited:
    // a 64 KiB window over a 60 ms round trip would need about 60 s.
    assert!(elapsed >= 2 * DELAY, "{elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(3),
        "{elapsed:?} ({gbit_s:.2} Gbit/s)"
    );
}

#[tokio::test]
async fn half_close_is_delayed_and_forwarded_both_ways() {
    let relay = DelayRelay::start(echo_server().await, DELAY).await.unwrap();
    let mut client = TcpStream::connect(relay.local_addr()).await.unwrap();
    let started = Instant::now();
    client.write_all(b"hello").await.unwrap();
    client.shutdown().await.unwrap();
    let mut back = Vec::new();
    client.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"hello");
    // The EOF took DELAY to reach the server and the server's EOF DELAY to come back.
    assert!(started.elapsed() >= 2 * DELAY);
}

#[tokio::test]
async fn a_reset_on_one_side_resets_the_other() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        // Abort the connection: close with SO_LINGER 0 sends RST.
        socket.set_zero_linger().unwrap();
        drop(socket);
    });
    let relay = DelayRelay::start(target, Duration::from_millis(5))
        .await
        .unwrap();
    let mut client = TcpStream::connect(relay.local_addr()).await.unwrap();
    let mut buf = [0u8; 16];
    let result = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf))
        .await
        .expect("the reset never arrived");
    match result {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("expected a reset, read {n} bytes (0 = clean EOF)"),
    }
}

#[tokio::test]
async fn an_unreachable_target_resets_the_client() {
    let closed = ClosedTcpPort::bind().unwrap();
    let relay = DelayRelay::start(closed.addr(), DELAY).await.unwrap();
    let mut client = TcpStream::connect(relay.local_addr()).await.unwrap();
    let mut buf = [0u8; 1];
    let result = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf))
        .await
        .expect("no answer");
    assert!(result.is_err(), "expected a reset, got {result:?}");
}

#[tokio::test]
async fn the_delay_relay_binary_relays() {
    let target = echo_server().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_delay-relay"))
        .args(["--listen", "127.0.0.1:0", "--target"])
        .arg(target.to_string())
        .args(["--delay-ms", "10"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut line),
    )
    .await
    .unwrap()
    .unwrap();
    let addr: SocketAddr = line.trim().parse().unwrap();
    let mut client = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    client.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    client.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"ping");
    assert!(started.elapsed() >= Duration::from_millis(20));
    child.kill().await.unwrap();
}

/// A real libp2p dial (go dialer, rust listener) through the relay sees the delay in
/// its ping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libp2p_ping_through_the_relay_sees_the_delay() {
    if !require_impls(&[Impl::Go, Impl::Rust]) {
        return;
    }
    let listener = ListeningPeer::spawn(Impl::Rust, Security::Noise)
        .await
        .unwrap();
    let relay = DelayRelay::start(listener.socket_addr(), DELAY)
        .await
        .unwrap();
    let report = run_dialer(
        Impl::Go,
        &listener.addr_via(relay.local_addr()),
        Security::Noise,
        64 * 1024,
    )
    .await
    .unwrap();
    assert_eq!(report.remote_peer, listener.peer_id());
    let floor = 2.0 * DELAY.as_secs_f64() * 1e3;
    assert!(
        report.rtt_ms >= floor,
        "rtt {} ms < {floor} ms",
        report.rtt_ms
    );
    assert!(relay.bytes_to_target() > 64 * 1024);
    assert!(relay.bytes_from_target() > 64 * 1024);
}
