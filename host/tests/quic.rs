//! Hosts over QUIC on 127.0.0.1: identify, ping and an echo stream over a QUIC
//! connection, and a host with TCP and QUIC addresses reached over QUIC first.

use futures::{AsyncReadExt, AsyncWriteExt};
use std::time::Duration;
use tokio::sync::broadcast;
use weft_host::{Direction, Event, Host, Multiaddr, PeerId, Protocol};

const ECHO: &str = "/echo/1.0.0";

fn addr(s: &str) -> Multiaddr {
    s.parse().expect("a multiaddr")
}

fn echo_host() -> Host {
    let host = Host::builder().build().expect("builds");
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
