//! Hosts talking to each other over real TCP on 127.0.0.1: dialing, identify, ping,
//! handlers by exact id and by match function, `na`, events, identify push, the
//! peerstore, dial by peer id, and concurrent dials sharing one attempt.

use futures::{AsyncReadExt, AsyncWriteExt};
use std::time::Duration;
use tokio::sync::broadcast;
use weft_host::{Direction, Event, Host, Multiaddr, PeerId, Protocol, StreamError};

const ECHO: &str = "/echo/1.0.0";

fn tcp() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

async fn echo_host() -> (Host, Multiaddr) {
    let host = Host::builder().build().unwrap();
    host.set_handler(ECHO, |mut s| async move {
        let mut buf = Vec::new();
        if s.read_to_end(&mut buf).await.is_ok() {
            let _ = s.write_all(&buf).await;
            let _ = s.close().await;
        }
    });
    let addrs = host.listen(&tcp()).await.unwrap();
    let full = addrs[0].clone().with(Protocol::P2p(host.peer_id()));
    (host, full)
}

async fn next_matching<F: Fn(&Event) -> bool>(rx: &mut broadcast::Receiver<Event>, f: F) -> Event {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rx.recv().await {
                Ok(e) if f(&e) => return e,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await
    .expect("event did not arrive in time")
}

async fn echo(client: &Host, peer: PeerId, data: &[u8]) -> Vec<u8> {
    let mut s = client.new_stream(peer, &[ECHO]).await.unwrap();
    assert_eq!(s.protocol(), ECHO);
    s.write_all(data).await.unwrap();
    s.close().await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn two_hosts_dial_identify_ping_and_echo() {
    let (server, addr) = echo_host().await;
    let client = Host::builder()
        .agent_version("weft-test-client")
        .build()
        .unwrap();
    let mut client_events = client.subscribe();
    let mut server_events = server.subscribe();

    let info = client.dial(&addr).await.unwrap();
    assert_eq!(info.peer, server.peer_id());
    assert_eq!(info.direction, Direction::Outbound);
    assert_eq!(info.muxer, "/yamux/1.0.0");
    assert_eq!(info.security, "/noise");

    // Events, on both sides, with the right fields.
    let connected =
        next_matching(&mut client_events, |e| matches!(e, Event::Connected { .. })).await;
    let Event::Connected {
        peer,
        direction,
        connection,
        ..
    } = connected
    else {
        unreachable!()
    };
    assert_eq!(
        (peer, direction, connection),
        (server.peer_id(), Direction::Outbound, info.id)
    );
    let Event::Connected {
        peer, direction, ..
    } = next_matching(&mut server_events, |e| matches!(e, Event::Connected { .. })).await
    else {
        unreachable!()
    };
    assert_eq!((peer, direction), (client.peer_id(), Direction::Inbound));

    // Identify: each side learns the other's agent and protocols.
    let Event::PeerIdentified {
        peer,
        agent_version,
        protocols,
        listen_addrs,
        ..
    } = next_matching(&mut client_events, |e| {
        matches!(e, Event::PeerIdentified { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(peer, server.peer_id());
    assert!(agent_version.starts_with("weft/"));
    assert!(protocols.contains(&ECHO.to_string()));
    assert!(protocols.contains(&"/ipfs/ping/1.0.0".to_string()));
    assert!(listen_addrs
        .iter()
        .any(|a| addr.to_string().starts_with(&a.to_string())));
    let Event::PeerIdentified { agent_version, .. } = next_matching(&mut server_events, |e| {
        matches!(e, Event::PeerIdentified { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(agent_version, "weft-test-client");

    // The peerstore was filled.
    let ps = client.peerstore();
    assert_eq!(
        ps.agent_version(&server.peer_id()).unwrap().as_deref(),
        Some(agent_version_of(&server))
    );
    assert!(ps
        .supports_protocols(&server.peer_id(), &[ECHO])
        .unwrap()
        .contains(&ECHO.to_string()));
    assert_eq!(
        ps.pubkey(&server.peer_id()).unwrap(),
        Some(server.keypair().public())
    );
    assert!(!ps.addrs(&server.peer_id()).unwrap().is_empty());

    // Ping, with the RTT stored.
    let rtt = client.ping(server.peer_id()).await.unwrap();
    assert!(rtt < Duration::from_secs(5));
    assert!(ps.latency(&server.peer_id()).unwrap().is_some());

    // Echo 1 MiB.
    let data: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    assert_eq!(echo(&client, server.peer_id(), &data).await, data);

    // Stream events.
    let Event::OpenedStream {
        protocol,
        direction,
        ..
    } = next_matching(
        &mut server_events,
        |e| matches!(e, Event::OpenedStream { protocol, .. } if protocol == ECHO),
    )
    .await
    else {
        unreachable!()
    };
    assert_eq!((protocol.as_str(), direction), (ECHO, Direction::Inbound));
    next_matching(
        &mut server_events,
        |e| matches!(e, Event::ClosedStream { protocol, .. } if protocol == ECHO),
    )
    .await;

    client.shutdown().await;
    next_matching(&mut server_events, |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    server.shutdown().await;
}

fn agent_version_of(_h: &Host) -> &'static str {
    concat!("weft/", env!("CARGO_PKG_VERSION"))
}

#[tokio::test]
async fn unknown_protocol_is_refused_and_match_handlers_work() {
    let (server, addr) = echo_host().await;
    server.set_match_handler(
        "/versioned",
        |p| p.starts_with("/versioned/"),
        |mut s| async move {
            let reply = s.protocol().to_string();
            let _ = s.write_all(reply.as_bytes()).await;
            let _ = s.close().await;
        },
    );
    let client = Host::builder().build().unwrap();
    client.dial(&addr).await.unwrap();

    // Several ids, none known: negotiation fails with a typed error.
    let err = client
        .new_stream(server.peer_id(), &["/nope/1", "/nope/2"])
        .await
        .unwrap_err();
    assert!(matches!(err, StreamError::Negotiation(_)), "{err:?}");

    // A single unknown id is proposed lazily: the refusal surfaces on the first read.
    let mut s = client
        .new_stream(server.peer_id(), &["/nope/3"])
        .await
        .unwrap();
    let _ = s.write_all(b"x").await;
    let mut buf = [0u8; 1];
    assert!(s.read(&mut buf).await.is_err());

    // The match function picks a handler; the negotiated id is the proposed one.
    let mut s = client
        .new_stream(server.peer_id(), &["/nope/4", "/versioned/7"])
        .await
        .unwrap();
    assert_eq!(s.protocol(), "/versioned/7");
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert_eq!(out, "/versioned/7");

    // After removal the handler is gone.
    assert!(server.remove_handler("/versioned"));
    let err = client
        .new_stream(server.peer_id(), &["/nope/5", "/versioned/8"])
        .await
        .unwrap_err();
    assert!(matches!(err, StreamError::Negotiation(_)));
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn identify_push_announces_new_handlers() {
    let (server, addr) = echo_host().await;
    let client = Host::builder().build().unwrap();
    let mut events = client.subscribe();
    client.dial(&addr).await.unwrap();
    next_matching(&mut events, |e| matches!(e, Event::PeerIdentified { .. })).await;

    server.set_handler("/fresh/1.0.0", |_s| async {});
    let Event::PeerProtocolsChanged {
        peer,
        added,
        removed,
    } = next_matching(&mut events, |e| {
        matches!(e, Event::PeerProtocolsChanged { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(peer, server.peer_id());
    assert_eq!(added, vec!["/fresh/1.0.0".to_string()]);
    assert!(removed.is_empty());
    assert!(
        client
            .peerstore()
            .supports_protocols(&server.peer_id(), &["/fresh/1.0.0"])
            .unwrap()
            .len()
            == 1
    );

    server.remove_handler("/fresh/1.0.0");
    let Event::PeerProtocolsChanged { removed, .. } = next_matching(&mut events, |e| {
        matches!(e, Event::PeerProtocolsChanged { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(removed, vec!["/fresh/1.0.0".to_string()]);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn dial_by_peer_id_and_concurrent_dials_share_one_connection() {
    let (server, addr) = echo_host().await;
    let client = Host::builder().build().unwrap();
    // Unknown peer, no addresses: a clear error.
    let err = client.dial_peer(server.peer_id()).await.unwrap_err();
    assert!(
        matches!(err, weft_host::DialError::NoAddresses(_)),
        "{err:?}"
    );

    // Addresses from the peerstore.
    let bare: Multiaddr = addr.iter().take(2).collect();
    client
        .peerstore()
        .add_addrs(&server.peer_id(), &[bare], Duration::from_secs(60))
        .unwrap();
    let dials = (0..16).map(|_| client.dial_peer(server.peer_id()));
    let results = futures::future::join_all(dials).await;
    let ids: std::collections::HashSet<_> = results.into_iter().map(|r| r.unwrap().id).collect();
    assert_eq!(ids.len(), 1, "concurrent dials must share one connection");
    assert_eq!(client.connections_to(&server.peer_id()).len(), 1);
    // A later dial reuses it.
    assert_eq!(
        client.dial(&addr).await.unwrap().id,
        *ids.iter().next().unwrap()
    );
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn dialing_the_wrong_peer_id_fails() {
    let (server, addr) = echo_host().await;
    let client = Host::builder().build().unwrap();
    let other = PeerId::random();
    let wrong: Multiaddr = addr
        .iter()
        .take(2)
        .collect::<Multiaddr>()
        .with(Protocol::P2p(other));
    let err = client.dial(&wrong).await.unwrap_err();
    assert!(
        err.to_string().contains("expected") || err.to_string().contains("mismatch"),
        "{err}"
    );
    assert!(!client.is_connected(&server.peer_id()));
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn ten_hosts_in_a_ring() {
    let mut hosts = Vec::new();
    for _ in 0..10 {
        hosts.push(echo_host().await);
    }
    for i in 0..10 {
        let (next_host, next_addr) = &hosts[(i + 1) % 10];
        let (host, _) = &hosts[i];
        host.dial(next_addr).await.unwrap();
        let data = format!("hello from {i}").into_bytes();
        assert_eq!(echo(host, next_host.peer_id(), &data).await, data);
        host.ping(next_host.peer_id()).await.unwrap();
    }
    for (h, _) in &hosts {
        assert_eq!(h.connections().len(), 2);
    }
    for (h, _) in &hosts {
        h.shutdown().await;
    }
}

#[tokio::test]
async fn shutdown_closes_listeners_and_connections() {
    let (server, addr) = echo_host().await;
    let mut events = server.subscribe();
    let client = Host::builder().build().unwrap();
    let mut client_events = client.subscribe();
    client.dial(&addr).await.unwrap();
    server.shutdown().await;
    next_matching(&mut events, |e| matches!(e, Event::ListenClose { .. })).await;
    next_matching(&mut client_events, |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    assert!(server.connections().is_empty());
    // Nothing listens any more.
    let bare: Multiaddr = addr.iter().take(2).collect();
    assert!(tokio::net::TcpStream::connect(bare_socket(&bare))
        .await
        .is_err());
    client.shutdown().await;
}

fn bare_socket(addr: &Multiaddr) -> std::net::SocketAddr {
    let mut it = addr.iter();
    let (Some(Protocol::Ip4(ip)), Some(Protocol::Tcp(port))) = (it.next(), it.next()) else {
        panic!()
    };
    (ip, port).into()
}

#[tokio::test]
async fn memory_transport_works_too() {
    let server = Host::builder().build().unwrap();
    server.set_handler(ECHO, |mut s| async move {
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let _ = s.write_all(&buf).await;
        let _ = s.close().await;
    });
    let addrs = server.listen(&"/memory/0".parse().unwrap()).await.unwrap();
    let client = Host::builder().build().unwrap();
    client
        .dial(&addrs[0].clone().with(Protocol::P2p(server.peer_id())))
        .await
        .unwrap();
    assert_eq!(
        echo(&client, server.peer_id(), b"in memory").await,
        b"in memory"
    );
    client.shutdown().await;
    server.shutdown().await;
}
