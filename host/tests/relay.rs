//! Circuit relay v2 between three hosts on 127.0.0.1: a relay R, a listener A that
//! reserves a slot at R, and a dialer B that reaches A through R's circuit. The
//! circuit is upgraded (Noise + yamux) like a TCP socket; identify, ping and an echo
//! stream run over it; the relay's data limit ends it.

use futures::{AsyncReadExt, AsyncWriteExt};
use std::time::Duration;
use tokio::sync::broadcast;
use weft_host::relay::RelayConfig;
use weft_host::{Direction, Event, Host, Multiaddr, PeerId, Protocol};

const ECHO: &str = "/echo/1.0.0";
const WAIT: Duration = Duration::from_secs(20);
/// The relay's cap per direction: room for identify, ping and a small echo.
const DATA_LIMIT: u64 = 64 * 1024;

fn tcp() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

async fn next_matching<F: Fn(&Event) -> bool>(rx: &mut broadcast::Receiver<Event>, f: F) -> Event {
    tokio::time::timeout(WAIT, async {
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

/// The relay, listening on TCP; returns it and its address with `/p2p/`.
async fn relay(config: RelayConfig) -> (Host, Multiaddr) {
    let relay = Host::builder().relay_server(config).build().unwrap();
    let addrs = relay.listen(&tcp()).await.unwrap();
    let addr = addrs[0].clone().with(Protocol::P2p(relay.peer_id()));
    (relay, addr)
}

/// A host that echoes `/echo/1.0.0`, reserving a slot at the relay and listening
/// through it; returns it and the addresses it listens at.
async fn listener_through(relay_addr: &Multiaddr) -> (Host, Vec<Multiaddr>) {
    let host = Host::builder().build().unwrap();
    host.set_handler(ECHO, |mut s| async move {
        let mut buf = Vec::new();
        if s.read_to_end(&mut buf).await.is_ok() {
            let _ = s.write_all(&buf).await;
            let _ = s.close().await;
        }
    });
    let circuit = relay_addr.clone().with(Protocol::P2pCircuit);
    let addrs = tokio::time::timeout(WAIT, host.listen(&circuit))
        .await
        .unwrap()
        .unwrap();
    (host, addrs)
}

async fn echo(client: &Host, peer: PeerId, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = client
        .new_stream(peer, &[ECHO])
        .await
        .map_err(std::io::Error::other)?;
    s.write_all(data).await?;
    s.close().await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn a_dialer_reaches_a_reserved_listener_through_the_relay() {
    let (r, r_addr) = relay(RelayConfig::default().with_max_circuit_bytes(Some(DATA_LIMIT))).await;
    let (a, a_addrs) = listener_through(&r_addr).await;
    let expected = r_addr.clone().with(Protocol::P2pCircuit);
    assert_eq!(
        a_addrs,
        vec![expected.clone()],
        "the relay's address, then /p2p-circuit"
    );
    assert!(a.listen_addrs().contains(&expected));

    let b = Host::builder().build().unwrap();
    let mut b_events = b.subscribe();
    let mut a_events = a.subscribe();
    let through = expected.with(Protocol::P2p(a.peer_id()));
    let info = tokio::time::timeout(WAIT, b.dial(&through))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        info.peer,
        a.peer_id(),
        "the handshake over the circuit proved A"
    );
    assert!(info.is_relayed());
    assert_eq!(info.direction, Direction::Outbound);
    assert_eq!(
        (info.security.as_str(), info.muxer.as_str()),
        ("/noise", "/yamux/1.0.0")
    );
    assert!(
        b.is_connected(&r.peer_id()),
        "B reached R directly for the hop stream"
    );
    let Event::Connected {
        peer,
        direction,
        remote_addr,
        ..
    } = next_matching(
        &mut a_events,
        |e| matches!(e, Event::Connected { peer, .. } if *peer == b.peer_id()),
    )
    .await
    else {
        unreachable!()
    };
    assert_eq!((peer, direction), (b.peer_id(), Direction::Inbound));
    assert!(remote_addr.iter().any(|p| p == Protocol::P2pCircuit));
    assert!(a.connections_to(&b.peer_id())[0].is_relayed());

    // Identify and ping run over the circuit.
    let Event::PeerIdentified {
        agent_version,
        protocols,
        ..
    } = next_matching(
        &mut b_events,
        |e| matches!(e, Event::PeerIdentified { peer, .. } if *peer == a.peer_id()),
    )
    .await
    else {
        unreachable!()
    };
    assert!(agent_version.starts_with("weft/"));
    assert!(protocols.iter().any(|p| p == ECHO));
    let rtt = tokio::time::timeout(WAIT, b.ping(a.peer_id()))
        .await
        .unwrap()
        .unwrap();
    assert!(rtt < WAIT);
    assert_eq!(
        echo(&b, a.peer_id(), b"hello through R").await.unwrap(),
        b"hello through R"
    );

    // Past the relay's data limit the circuit is reset, and the connection over it ends.
    let big = vec![7u8; 2 * DATA_LIMIT as usize];
    let over = tokio::time::timeout(WAIT, echo(&b, a.peer_id(), &big))
        .await
        .unwrap();
    assert!(
        over.map(|back| back != big).unwrap_or(true),
        "the whole echo cannot pass"
    );
    next_matching(
        &mut b_events,
        |e| matches!(e, Event::Disconnected { connection, .. } if *connection == info.id),
    )
    .await;
    assert!(
        b.is_connected(&r.peer_id()),
        "the direct connection to R stays"
    );
    for h in [&a, &b, &r] {
        h.shutdown().await;
    }
}

#[tokio::test]
async fn a_circuit_to_a_peer_without_a_reservation_is_refused() {
    let (r, r_addr) = relay(RelayConfig::default()).await;
    let b = Host::builder().build().unwrap();
    let nobody = PeerId::random();
    let through = r_addr
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(nobody));
    let refused = tokio::time::timeout(WAIT, b.dial(&through)).await.unwrap();
    let error = refused.unwrap_err().to_string();
    assert!(error.contains("NO_RESERVATION"), "{error}");

    // A host without the relay server does not serve reservations.
    let plain = Host::builder().build().unwrap();
    let plain_addr = plain.listen(&tcp()).await.unwrap()[0]
        .clone()
        .with(Protocol::P2p(plain.peer_id()))
        .with(Protocol::P2pCircuit);
    let a = Host::builder().build().unwrap();
    assert!(tokio::time::timeout(WAIT, a.listen(&plain_addr))
        .await
        .unwrap()
        .is_err());
    for h in [&a, &b, &r, &plain] {
        h.shutdown().await;
    }
}

#[tokio::test]
async fn the_listener_renews_its_reservation_before_it_expires() {
    // Reservations of 3 s: the listener renews after about 2 s, so a dial at 4.5 s,
    // after the first reservation's end, still finds one.
    let (r, r_addr) =
        relay(RelayConfig::default().with_reservation_duration(Duration::from_secs(3))).await;
    let (a, _) = listener_through(&r_addr).await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let b = Host::builder().build().unwrap();
    let through = r_addr
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(a.peer_id()));
    let info = tokio::time::timeout(WAIT, b.dial(&through))
        .await
        .unwrap()
        .unwrap();
    assert!(info.is_relayed());
    assert_eq!(echo(&b, a.peer_id(), b"renewed").await.unwrap(), b"renewed");
    for h in [&a, &b, &r] {
        h.shutdown().await;
    }
}

/// A connection manager that trims down to one connection above two, at once (no
/// grace period): what a busy host's watermarks do, in small.
fn tight_manager() -> weft_connmgr::ConnectionManager {
    let config = weft_connmgr::ConnectionManagerConfig::default()
        .with_watermarks(1, 2)
        .with_grace_period(Duration::ZERO);
    weft_connmgr::ConnectionManager::new(config).unwrap()
}

/// Waits until `done` holds (checked every 50 ms), or panics after `WAIT`.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: not within {WAIT:?}"));
}

#[tokio::test]
async fn a_reservation_keeps_its_relay_connection_through_trimming() {
    let relay_manager = tight_manager();
    let r = Host::builder()
        .relay_server(RelayConfig::default())
        .connection_policy(std::sync::Arc::new(relay_manager.clone()))
        .build()
        .unwrap();
    let r_addr = r.listen(&tcp()).await.unwrap()[0]
        .clone()
        .with(Protocol::P2p(r.peer_id()));
    let manager = tight_manager();
    let a = Host::builder()
        .connection_policy(std::sync::Arc::new(manager.clone()))
        .build()
        .unwrap();
    a.set_handler(ECHO, |mut s| async move {
        let mut buf = Vec::new();
        if s.read_to_end(&mut buf).await.is_ok() {
            let _ = s.write_all(&buf).await;
            let _ = s.close().await;
        }
    });
    let circuit = r_addr.clone().with(Protocol::P2pCircuit);
    tokio::time::timeout(WAIT, a.listen(&circuit))
        .await
        .unwrap()
        .unwrap();
    let tag = weft_host::relay::RESERVATION_TAG;
    assert!(manager.is_protected(&r.peer_id(), Some(tag)));
    // The relay tags the peers it holds reservations for.
    wait_for("the relay tags its reserved peer", || {
        relay_manager.tag_value(&a.peer_id(), tag) == Some(weft_host::relay::RESERVATION_TAG_VALUE)
    })
    .await;
    let relay_conn = a.connections_to(&r.peer_id());
    assert_eq!(relay_conn.len(), 1);
    let relay_conn = relay_conn[0].id;

    // Four more connections, each newer than the relay's (the oldest closes first
    // among equals): every one takes A over its high watermark of 2.
    let mut others = Vec::new();
    for _ in 0..4 {
        let other = Host::builder().build().unwrap();
        let addr = other.listen(&tcp()).await.unwrap()[0]
            .clone()
            .with(Protocol::P2p(other.peer_id()));
        tokio::time::timeout(WAIT, a.dial(&addr))
            .await
            .unwrap()
            .unwrap();
        others.push(other);
    }
    wait_for("A trims down to its low watermark", || {
        a.connections().len() <= 1
    })
    .await;
    assert_eq!(
        a.connections().iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![relay_conn],
        "trimming kept exactly the relay's connection"
    );

    // The reservation is still there: a dialer reaches A through the relay.
    let b = Host::builder().build().unwrap();
    let through = circuit.clone().with(Protocol::P2p(a.peer_id()));
    let info = tokio::time::timeout(WAIT, b.dial(&through))
        .await
        .unwrap()
        .unwrap();
    assert!(info.is_relayed());
    assert_eq!(echo(&b, a.peer_id(), b"kept").await.unwrap(), b"kept");

    // Without the listener, the relay is no longer protected.
    assert!(a.close_listener(&circuit));
    wait_for("the relay's protection ends with the listener", || {
        !manager.is_protected(&r.peer_id(), Some(tag))
    })
    .await;
    for h in others.iter().chain([&a, &b, &r]) {
        h.shutdown().await;
    }
}

/// No hole punching (when built in): a relayed connection stays relayed.
fn without_punching(builder: weft_host::HostBuilder) -> weft_host::HostBuilder {
    #[cfg(feature = "dcutr")]
    let builder = builder.hole_punching_enabled(false);
    builder
}

#[tokio::test]
async fn one_relay_brings_at_most_its_cap_of_inbound_circuits() {
    // The relay would carry more circuits to A than A's cap: only A's own
    // connection manager (its shipped default) stands in the way.
    let cap = weft_host::connection_manager_config_for(&weft_host::Limits::auto())
        .limits
        .max_relayed_inbound_per_relay
        .expect("the default caps relayed inbound connections per relay");
    let (r, r_addr) = relay(RelayConfig::default().with_max_circuits_per_peer(4 * cap)).await;
    let a = without_punching(Host::builder()).build().unwrap();
    let a_direct = a.listen(&tcp()).await.unwrap()[0]
        .clone()
        .with(Protocol::P2p(a.peer_id()));
    let circuit = r_addr.clone().with(Protocol::P2pCircuit);
    tokio::time::timeout(WAIT, a.listen(&circuit))
        .await
        .unwrap()
        .unwrap();
    let through = circuit.with(Protocol::P2p(a.peer_id()));

    // One dialer per circuit, each its own peer, all at once.
    let dialers: Vec<Host> = (0..cap + 4)
        .map(|_| without_punching(Host::builder()).build().unwrap())
        .collect();
    let dials = dialers.iter().map(|d| {
        let through = through.clone();
        async move { tokio::time::timeout(WAIT, d.dial(&through)).await }
    });
    let results = futures::future::join_all(dials).await;
    let relayed = results
        .iter()
        .filter(|r| matches!(r, Ok(Ok(info)) if info.is_relayed()))
        .count();
    assert_eq!(
        relayed, cap,
        "inbound circuits through one relay got in beyond (or short of) the cap: {results:?}"
    );
    // A registers each connection once its side of the upgrade ends, a little
    // after the dialer's.
    let relayed_at_a = || a.connections().iter().filter(|c| c.is_relayed()).count();
    wait_for("A holds its cap of relayed connections", || {
        relayed_at_a() == cap
    })
    .await;

    // A direct inbound connection still gets in, and so does nobody else's circuit.
    let direct = Host::builder().build().unwrap();
    let info = tokio::time::timeout(WAIT, direct.dial(&a_direct))
        .await
        .unwrap()
        .unwrap();
    assert!(!info.is_relayed());
    let late = without_punching(Host::builder()).build().unwrap();
    assert!(
        !matches!(
            tokio::time::timeout(WAIT, late.dial(&through)).await,
            Ok(Ok(_))
        ),
        "a circuit beyond the cap got in"
    );
    assert_eq!(relayed_at_a(), cap);
    for h in dialers.iter().chain([&a, &direct, &late, &r]) {
        h.shutdown().await;
    }
}
