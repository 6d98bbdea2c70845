//! How many flights a full dial needs before the dialer's first application byte
//! arrives, measured by a TCP relay between dialer and listener.
//!
//! The relay delays every chunk by a fixed time in each direction (so that nothing
//! sent after a flight can overtake it) and numbers each chunk by causal depth: a
//! chunk read from one side gets `1 +` the deepest chunk delivered to that side so
//! far. With Noise XX, inlined muxer negotiation and lazy proposals, the spec's
//! minimum is three: mss proposal + Noise msg1; msg2 (+ echo); msg3 + application
//! data. Without the optimisations the count rises by one round trip (two flights)
//! each.

#[path = "upgrade_support.rs"]
mod support;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::Keypair;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{boxed, upgrader, Sec};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// One-way delay the relay adds.
const DELAY: Duration = Duration::from_millis(25);

/// Deepest chunk delivered to each side, and deepest chunk read from the dialer.
#[derive(Default, Debug)]
struct Depths {
    delivered_to_dialer: u32,
    delivered_to_listener: u32,
    from_dialer: u32,
}

#[derive(Clone, Copy)]
enum Towards {
    Listener,
    Dialer,
}

/// Forwards `from` → `to` with [`DELAY`], numbering chunks by causal depth.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    towards: Towards,
    depths: Arc<Mutex<Depths>>,
) {
    let (queue, mut queued) = mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>, u32)>();
    let writer_depths = depths.clone();
    let writer = tokio::spawn(async move {
        while let Some((due, bytes, depth)) = queued.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
            let mut d = writer_depths.lock().unwrap();
            match towards {
                Towards::Listener => d.delivered_to_listener = d.delivered_to_listener.max(depth),
                Towards::Dialer => d.delivered_to_dialer = d.delivered_to_dialer.max(depth),
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        let depth = {
            let mut d = depths.lock().unwrap();
            match towards {
                Towards::Listener => {
                    let depth = d.delivered_to_dialer + 1;
                    d.from_dialer = d.from_dialer.max(depth);
                    depth
                }
                Towards::Dialer => d.delivered_to_listener + 1,
            }
        };
        let due = tokio::time::Instant::now() + DELAY;
        if queue.send((due, buf[..n].to_vec(), depth)).is_err() {
            break;
        }
    }
    drop(queue);
    let _ = writer.await;
}

/// Dials through the relay, writes one application message on a new stream as soon
/// as the upgrade returns, and returns the deepest flight the dialer had sent when
/// the listener read that message.
async fn flights_to_first_app_byte(sec: Sec, inline: bool, lazy: bool) -> u32 {
    let (dialer_key, listener_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let dialer = upgrader(sec, &dialer_key, inline, lazy);
    let listener = upgrader(sec, &listener_key, inline, lazy);

    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let server_addr = server.local_addr().unwrap();
    let depths = Arc::new(Mutex::new(Depths::default()));

    let relay_depths = depths.clone();
    tokio::spawn(async move {
        let (client, _) = relay.accept().await.unwrap();
        let upstream = TcpStream::connect(server_addr).await.unwrap();
        client.set_nodelay(true).unwrap();
        upstream.set_nodelay(true).unwrap();
        let (client_read, client_write) = client.into_split();
        let (upstream_read, upstream_write) = upstream.into_split();
        tokio::join!(
            pump(
                client_read,
                upstream_write,
                Towards::Listener,
                relay_depths.clone()
            ),
            pump(upstream_read, client_write, Towards::Dialer, relay_depths),
        );
    });

    let listening = tokio::spawn(async move {
        let (tcp, _) = server.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let connection = listener.upgrade_inbound(boxed(tcp)).await.unwrap();
        tokio::spawn(connection.driver);
        let mut stream = connection.muxed.accept_stream().await.unwrap();
        let mut hello = [0u8; 5];
        stream.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello, b"hello");
        connection.muxed
    });

    let tcp = TcpStream::connect(relay_addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let connection = dialer.upgrade_outbound(boxed(tcp), None).await.unwrap();
    tokio::spawn(connection.driver);
    let mut stream = connection.muxed.open_stream().await.unwrap();
    stream.write_all(b"hello").await.unwrap();
    stream.flush().await.unwrap();

    let _listener_side = tokio::time::timeout(Duration::from_secs(10), listening)
        .await
        .expect("the listener never read the application data")
        .unwrap();
    let depths = depths.lock().unwrap();
    depths.from_dialer
}

#[tokio::test]
async fn noise_inlined_and_lazy_reaches_the_minimum_of_three_flights() {
    assert_eq!(flights_to_first_app_byte(Sec::Noise, true, true).await, 3);
}

#[tokio::test]
async fn tls_inlined_and_lazy_reaches_the_minimum_of_three_flights() {
    assert_eq!(flights_to_first_app_byte(Sec::Tls, true, true).await, 3);
}

/// Each optimisation alone: lazy proposals save the security negotiation round
/// trip; with a lazy muxer proposal the muxer negotiation costs no round trip
/// either, so inlining adds nothing on top for the first byte; without lazy, the
/// security negotiation costs a round trip, and without both the muxer one does too.
#[tokio::test]
async fn each_optimisation_saves_a_round_trip() {
    for (inline, lazy, want) in [(false, true, 3), (true, false, 5), (false, false, 7)] {
        let got = flights_to_first_app_byte(Sec::Noise, inline, lazy).await;
        assert_eq!(got, want, "noise, inline {inline}, lazy {lazy}");
    }
}
