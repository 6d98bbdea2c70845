//! Hosts over QUIC on 127.0.0.1 reconnecting with early data: a resumed connection
//! proves the same peers as a full one, a ping goes in 0-RTT, and a handler that
//! does not accept replayable requests gets an early stream only once the
//! handshake has completed.

use futures::{AsyncReadExt, AsyncWriteExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use weft_host::{
    ping, DialOpts, Direction, EarlyData, Event, HandlerOptions, Host, Multiaddr, PeerId, Protocol,
};

const GUARDED: &str = "/guarded/1.0.0";
const WAIT: Duration = Duration::from_secs(10);

async fn next_connected(rx: &mut broadcast::Receiver<Event>) -> (PeerId, Direction) {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Ok(Event::Connected {
                    peer, direction, ..
                }) => return (peer, direction),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await
    .expect("a connection in time")
}

/// A QUIC listener whose `/guarded/1.0.0` handler (not replayable) reports whether
/// the handshake of its stream's connection had completed when it ran.
async fn server() -> (Host, Multiaddr, mpsc::UnboundedReceiver<bool>) {
    let host = Host::builder().build().expect("builds");
    let (tx, rx) = mpsc::unbounded_channel();
    let observer = host.clone();
    host.set_handler_with(GUARDED, HandlerOptions::default(), move |mut s| {
        let complete = observer
            .session_info(s.connection())
            .is_some_and(|i| i.handshake_complete);
        let _ = tx.send(complete);
        async move {
            let mut buf = Vec::new();
            if s.read_to_end(&mut buf).await.is_ok() {
                let _ = s.write_all(&buf).await;
                let _ = s.close().await;
            }
        }
    });
    let listened = host
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("a multiaddr"))
        .await
        .expect("listens");
    let addr = listened[0].clone().with(Protocol::P2p(host.peer_id()));
    (host, addr, rx)
}

/// A UDP relay in front of `server` for one client: every datagram from the client
/// reaches the server `delay` late, the server's go back at once. The listener so
/// reads a client's first flight (ClientHello and 0-RTT) well before its Finished.
async fn delaying_relay(server: SocketAddr, delay: Duration) -> SocketAddr {
    use std::sync::{Arc, Mutex};
    use tokio::net::UdpSocket;
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("binds"));
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("binds"));
    let addr = front.local_addr().expect("an address");
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let (inbound, outbound, seen) = (front.clone(), back.clone(), client.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = inbound.recv_from(&mut buf).await {
            *seen.lock().expect("not poisoned") = Some(from);
            let datagram = buf[..n].to_vec();
            let outbound = outbound.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = outbound.send_to(&datagram, server).await;
            });
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
    addr
}

/// Pings over an early stream: 32 bytes out, the same 32 back.
async fn early_ping(client: &Host, peer: PeerId) {
    let mut s = client
        .new_early_stream(peer, &[ping::PROTOCOL])
        .await
        .expect("opens an early ping stream");
    let payload = [7u8; 32];
    s.write_all(&payload).await.expect("writes");
    s.flush().await.expect("flushes");
    let mut back = [0u8; 32];
    s.read_exact(&mut back).await.expect("reads the echo");
    assert_eq!(back, payload);
}

/// The UDP socket address of a `/ip4/../udp/../quic-v1` address.
fn udp_socket(addr: &Multiaddr) -> SocketAddr {
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(a),
            Protocol::Udp(p) => port = Some(p),
            _ => {}
        }
    }
    SocketAddr::from((ip.expect("an IPv4 address"), port.expect("a UDP port")))
}

async fn disconnect(client: &Host, peer: &PeerId) {
    client.disconnect(peer).await;
    tokio::time::timeout(WAIT, async {
        while client.is_connected(peer) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("disconnected in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_host_connection_pings_in_0rtt_and_guards_other_handlers() {
    let (server, addr, mut guarded) = server().await;
    let server_id = server.peer_id();
    let client = Host::builder().build().expect("builds");
    let mut server_events = server.subscribe();
    let early = DialOpts::new().with_early_data(true);

    // A first connection: a full handshake; the ping round trip brings the tickets.
    let first = client.dial_with(&addr, early.clone()).await.expect("dials");
    let info = client.session_info(first.id).expect("open");
    assert_eq!(info.resumed, Some(false));
    assert_eq!(info.early_data, EarlyData::NotAttempted);
    client.ping(server_id).await.expect("pings");
    assert_eq!(
        next_connected(&mut server_events).await,
        (client.peer_id(), Direction::Inbound)
    );
    disconnect(&client, &server_id).await;

    // The reconnect returns before the listener answered, and its ping goes in 0-RTT.
    // It goes through a relay that holds the client's packets back, so that the
    // listener has the early streams well before the handshake completes.
    let relay = delaying_relay(udp_socket(&addr), Duration::from_millis(100)).await;
    let relayed: Multiaddr = format!(
        "/ip4/127.0.0.1/udp/{}/quic-v1/p2p/{server_id}",
        relay.port()
    )
    .parse()
    .expect("a multiaddr");
    let second = client
        .dial_with(&relayed, early)
        .await
        .expect("dials again");
    assert_eq!(second.peer, server_id, "the same peer");
    let before = client.session_info(second.id).expect("open");
    assert_eq!(before.early_data, EarlyData::Pending, "{before:?}");

    // A request to a handler that does not accept replayable requests, sent in
    // 0-RTT, is served only after the handshake ...
    let mut guarded_stream = client
        .new_early_stream(server_id, &[GUARDED])
        .await
        .expect("opens an early stream");
    guarded_stream
        .write_all(b"not twice")
        .await
        .expect("writes");
    guarded_stream.close().await.expect("half-closes");
    // ... while a ping (replayable) is answered at once.
    early_ping(&client, server_id).await;
    let mut back = Vec::new();
    guarded_stream
        .read_to_end(&mut back)
        .await
        .expect("reads the echo");
    assert_eq!(back, b"not twice");
    assert_eq!(
        tokio::time::timeout(WAIT, guarded.recv())
            .await
            .expect("ran"),
        Some(true),
        "the guarded handler ran only after the handshake"
    );

    assert!(client.handshake_complete(second.id).await);
    let after = client.session_info(second.id).expect("open");
    assert_eq!(after.resumed, Some(true));
    assert_eq!(after.early_data, EarlyData::Accepted);

    // The listener sees the resumed connection like a full one: the client's peer id.
    assert_eq!(
        next_connected(&mut server_events).await,
        (client.peer_id(), Direction::Inbound)
    );
    let resumed_inbound = server
        .connections_to(&client.peer_id())
        .iter()
        .filter_map(|c| server.session_info(c.id))
        .any(|i| i.resumed == Some(true));
    assert!(resumed_inbound, "the listener saw the session resumed");
    client.shutdown().await;
    server.shutdown().await;
}
