//! Hosts over QUIC on 127.0.0.1: identify, ping and an echo stream over a QUIC
//! connection, a host with TCP and QUIC addresses reached over QUIC first, and
//! QUIC connections that a peer's memory budget gives smaller windows instead of
//! refusing them.

use futures::{AsyncReadExt, AsyncWriteExt};
use std::time::Duration;
use tokio::sync::broadcast;
use weft_host::{Direction, Event, Host, Limits, Multiaddr, PeerId, Protocol, ResourceManager};
use weft_resource_manager::Resource;

const ECHO: &str = "/echo/1.0.0";

fn addr(s: &str) -> Multiaddr {
    s.parse().expect("a multiaddr")
}

fn echo_host() -> Host {
    echo_host_with(Limits::auto())
}

fn echo_host_with(limits: Limits) -> Host {
    let host = Host::builder()
        .resource_manager(ResourceManager::new(limits))
        .build()
        .expect("builds");
    host.set_handler(ECHO, |mut s| async move {
        let mut buf = Vec::new();
        if s.read_to_end(&mut buf).await.is_ok() {
            let _ = s.write_all(&buf).await;
            let _ = s.close().await;
        }
    });
    host
}

async fn next_matching<F: Fn(&Event) -> bool>(rx: &mut broadcast::Receiver<Event>, f: F) -> Event {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rx.recv().await {
                Ok(e) if f(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await
    .expect("event did not arrive in time")
}

async fn echo(client: &Host, peer: PeerId, data: &[u8]) -> Vec<u8> {
    let mut s = client.new_stream(peer, &[ECHO]).await.expect("opens");
    s.write_all(data).await.expect("writes");
    s.close().await.expect("half-closes");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("reads the echo");
    out
}

fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::QuicV1))
}

#[tokio::test]
async fn two_hosts_identify_ping_and_echo_over_quic() {
    let server = echo_host();
    let listened = server
        .listen(&addr("/ip4/127.0.0.1/udp/0/quic-v1"))
        .await
        .expect("listens on QUIC");
    assert!(is_quic(&listened[0]));
    let client = Host::builder().build().expect("builds");
    let mut client_events = client.subscribe();
    let mut server_events = server.subscribe();

    let target = listened[0].clone().with(Protocol::P2p(server.peer_id()));
    let info = client.dial(&target).await.expect("dials over QUIC");
    assert_eq!(info.peer, server.peer_id());
    assert_eq!(info.direction, Direction::Outbound);
    assert_eq!(info.security, "/tls/1.0.0");
    assert_eq!(info.muxer, "quic-v1");
    assert!(is_quic(&info.remote_addr));

    let Event::Connected { direction, .. } =
        next_matching(&mut server_events, |e| matches!(e, Event::Connected { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(direction, Direction::Inbound);
    let Event::PeerIdentified {
        peer, listen_addrs, ..
    } = next_matching(&mut client_events, |e| {
        matches!(e, Event::PeerIdentified { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(peer, server.peer_id());
    assert!(listen_addrs.iter().any(is_quic), "{listen_addrs:?}");

    let rtt = client.ping(server.peer_id()).await.expect("pings");
    assert!(rtt < Duration::from_secs(1));
    let data: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    assert!(echo(&client, server.peer_id(), &data).await == data);

    // A dial expecting another peer fails in the handshake.
    let stranger = Host::builder().build().expect("builds").peer_id();
    let wrong = listened[0].clone().with(Protocol::P2p(stranger));
    assert!(client.dial(&wrong).await.is_err());
}

#[tokio::test]
async fn a_peer_with_tcp_and_quic_addresses_is_reached_over_quic_first() {
    let server = echo_host();
    let mut addrs = server
        .listen(&addr("/ip4/127.0.0.1/tcp/0"))
        .await
        .expect("listens on TCP");
    addrs.extend(
        server
            .listen(&addr("/ip4/127.0.0.1/udp/0/quic-v1"))
            .await
            .expect("listens on QUIC"),
    );
    let client = Host::builder().build().expect("builds");
    client
        .peerstore()
        .add_addrs(&server.peer_id(), &addrs, Duration::from_secs(60))
        .expect("stores the addresses");
    let info = client.dial_peer(server.peer_id()).await.expect("dials");
    assert!(is_quic(&info.remote_addr), "went over {}", info.remote_addr);
    assert_eq!(
        echo(&client, server.peer_id(), b"quic first").await,
        b"quic first"
    );
}

/// Dials `server` over QUIC `count` times from one client (a new connection each
/// time: the address names no peer), then echoes on the newest connection.
async fn many_connections(server: &Host, count: usize) -> Host {
    let listened = server
        .listen(&addr("/ip4/127.0.0.1/udp/0/quic-v1"))
        .await
        .expect("listens on QUIC");
    let client = Host::builder().build().expect("builds");
    for i in 0..count {
        if let Err(e) = client.dial(&listened[0]).await {
            panic!(
                "QUIC connection {} of {count} from one client failed: {e}",
                i + 1
            );
        }
    }
    let peer = client.peer_id();
    let all_in = tokio::time::timeout(Duration::from_secs(30), async {
        while server.connections_to(&peer).len() < count {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        all_in.is_ok(),
        "the server holds {} of the client's {count} connections",
        server.connections_to(&peer).len()
    );
    let data: Vec<u8> = (0..256 << 10).map(|i| (i % 251) as u8).collect();
    assert!(echo(&client, server.peer_id(), &data).await == data);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_quic_connections_from_one_client_all_get_in_with_the_default_limits() {
    // Each connection used to reserve a 4 MiB window in the peer's scope, whose
    // 128 MiB held 32: the 33rd was refused.
    let server = echo_host();
    let client = many_connections(&server, 40).await;
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_peer_budget_gives_quic_connections_smaller_windows_not_refusals() {
    // 4 MiB for the client's peer scope: at the windows' low priority about 1.6 MiB,
    // the starting 1 MiB window of one connection and a half of another; every
    // connection after that runs with the minimum window, unreserved.
    let mut limits = Limits::auto();
    limits.peer = limits.peer.with_memory(4 << 20);
    let server = echo_host_with(limits);
    let client = many_connections(&server, 12).await;
    let held = server
        .resource_manager()
        .stats()
        .system
        .get(Resource::Memory);
    assert!(
        held <= 4 << 20,
        "the client's 12 connections hold {held} bytes, more than its peer budget"
    );
    client.shutdown().await;
    server.shutdown().await;
}
