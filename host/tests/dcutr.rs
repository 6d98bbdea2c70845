//! DCUtR hole punching between two weft hosts that meet through a weft relay on
//! 127.0.0.1. Loopback is directly reachable (the classifier's test override takes
//! it as public), so the punch succeeds: the direct connection replaces the relayed
//! one, over TCP and over QUIC. Unpunchable setups fail with their reason and stay
//! relayed.

#[path = "support/closed_port.rs"]
mod closed_port;

use closed_port::ClosedPort;
use std::time::Duration;
use tokio::sync::broadcast;
use weft_host::dcutr::{DirectConnection, Failure, PunchTransport, Side};
use weft_host::dial::classify::{AddrClass, Classifier};
use weft_host::relay::RelayConfig;
use weft_host::{ConnectionId, DialConfig, Event, Host, Multiaddr, PeerId, Protocol};

const WAIT: Duration = Duration::from_secs(30);

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

/// A host whose classifier takes loopback as public, as in a test network.
fn host() -> Host {
    Host::builder()
        .dial_config(
            DialConfig::new()
                .with_classifier(Classifier::new().with_public(&[AddrClass::Loopback])),
        )
        .relayed_grace(Duration::from_millis(200))
        .build()
        .unwrap()
}

async fn relay() -> (Host, Multiaddr) {
    let relay = Host::builder()
        .relay_server(RelayConfig::default())
        .build()
        .unwrap();
    let addrs = relay.listen(&addr("/ip4/127.0.0.1/tcp/0")).await.unwrap();
    (
        relay.clone(),
        addrs[0].clone().with(Protocol::P2p(relay.peer_id())),
    )
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

/// The hole punch event of `side` about `peer`.
async fn hole_punch(
    rx: &mut broadcast::Receiver<Event>,
    peer: PeerId,
    side: Side,
) -> (
    ConnectionId,
    Result<DirectConnection, Failure>,
    u8,
    Duration,
) {
    match next_matching(
        rx,
        |e| matches!(e, Event::HolePunch { peer: p, side: s, .. } if *p == peer && *s == side),
    )
    .await
    {
        Event::HolePunch {
            relayed,
            outcome,
            attempts,
            elapsed,
            ..
        } => (relayed, outcome, attempts, elapsed),
        _ => unreachable!(),
    }
}

/// A successful punch over `transport`: both sides report it, the relayed
/// connection closes, one direct connection remains and carries a ping.
async fn punches_over(listen: &str, transport: PunchTransport) {
    let (_r, r_addr) = relay().await;
    // Subscribed before the relayed connection exists.
    let b = host();
    let mut b_events = b.subscribe();
    b.listen(&addr(listen)).await.unwrap();
    let circuit = r_addr.clone().with(Protocol::P2pCircuit);
    tokio::time::timeout(WAIT, b.listen(&circuit))
        .await
        .unwrap()
        .unwrap();
    let a = host();
    let mut a_events = a.subscribe();
    a.listen(&addr(listen)).await.unwrap();
    let relayed = tokio::time::timeout(WAIT, a.dial(&circuit.with(Protocol::P2p(b.peer_id()))))
        .await
        .unwrap()
        .unwrap();
    assert!(relayed.is_relayed());

    let (b_relayed, outcome, attempts, elapsed) =
        hole_punch(&mut b_events, a.peer_id(), Side::Initiator).await;
    let direct = outcome.expect("the initiator punched through");
    assert_eq!(attempts, 1, "loopback punches at the first attempt");
    assert!(elapsed < WAIT);
    assert_eq!(direct.transport, Some(transport));
    assert!(direct.rtt.is_some(), "the initiator measured the RTT");
    let (a_relayed, a_outcome, _, _) =
        hole_punch(&mut a_events, b.peer_id(), Side::Responder).await;
    assert_eq!(a_relayed, relayed.id);
    let a_direct = a_outcome.expect("the responder punched through");
    assert_eq!(a_direct.transport, Some(transport));

    // The relayed connection goes after the grace period; the direct one stays.
    next_matching(
        &mut a_events,
        |e| matches!(e, Event::Disconnected { connection, .. } if *connection == relayed.id),
    )
    .await;
    next_matching(
        &mut b_events,
        |e| matches!(e, Event::Disconnected { connection, .. } if *connection == b_relayed),
    )
    .await;
    let conns = a.connections_to(&b.peer_id());
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert!(!conns[0].is_relayed());
    assert_eq!(PunchTransport::of(&conns[0].remote_addr), Some(transport));
    assert!(b
        .connections_to(&a.peer_id())
        .iter()
        .all(|c| !c.is_relayed()));
    tokio::time::timeout(WAIT, a.ping(b.peer_id()))
        .await
        .unwrap()
        .unwrap();
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_direct_tcp_connection_replaces_the_relayed_one() {
    punches_over("/ip4/127.0.0.1/tcp/0", PunchTransport::Tcp).await;
}

#[tokio::test]
async fn a_direct_quic_connection_replaces_the_relayed_one() {
    punches_over("/ip4/127.0.0.1/udp/0/quic-v1", PunchTransport::Quic).await;
}

#[tokio::test]
async fn a_peer_without_addresses_leaves_the_connection_relayed_with_that_reason() {
    let (_r, r_addr) = relay().await;
    let b = host();
    let mut b_events = b.subscribe();
    b.listen(&addr("/ip4/127.0.0.1/tcp/0")).await.unwrap();
    let circuit = r_addr.clone().with(Protocol::P2pCircuit);
    tokio::time::timeout(WAIT, b.listen(&circuit))
        .await
        .unwrap()
        .unwrap();
    // A listens nowhere directly, and with the default classifier its loopback
    // address as the relay observes it is no address to punch to: nothing to send.
    let a = Host::builder().build().unwrap();
    let mut a_events = a.subscribe();
    let relayed = tokio::time::timeout(WAIT, a.dial(&circuit.with(Protocol::P2p(b.peer_id()))))
        .await
        .unwrap()
        .unwrap();
    let (b_relayed, outcome, attempts, _) =
        hole_punch(&mut b_events, a.peer_id(), Side::Initiator).await;
    assert_eq!(outcome, Err(Failure::NoRemoteAddresses { received: 0 }));
    assert_eq!(attempts, 1, "no retry: the peer has nothing to punch to");
    // A's exchange ends when B gives up (B sends no SYNC).
    let (_, a_outcome, _, _) = hole_punch(&mut a_events, b.peer_id(), Side::Responder).await;
    assert!(
        matches!(a_outcome, Err(Failure::Exchange { attempt: 1, .. })),
        "{a_outcome:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let conns = a.connections_to(&b.peer_id());
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].id, relayed.id);
    assert!(conns[0].is_relayed(), "stays relayed");
    assert!(b
        .connections_to(&a.peer_id())
        .iter()
        .any(|c| c.id == b_relayed && c.is_relayed()));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn unreachable_addresses_fail_after_three_attempts_and_stay_relayed() {
    let (_r, r_addr) = relay().await;
    // Neither side listens directly; each claims a port where nothing listens.
    let (closed_b, closed_a) = (ClosedPort::bind(), ClosedPort::bind());
    let b = host();
    let mut b_events = b.subscribe();
    b.add_external_addr(closed_b.addr());
    let circuit = r_addr.clone().with(Protocol::P2pCircuit);
    tokio::time::timeout(WAIT, b.listen(&circuit))
        .await
        .unwrap()
        .unwrap();
    let a = host();
    let mut a_events = a.subscribe();
    a.add_external_addr(closed_a.addr());
    let relayed = tokio::time::timeout(WAIT, a.dial(&circuit.with(Protocol::P2p(b.peer_id()))))
        .await
        .unwrap()
        .unwrap();

    let (_, outcome, attempts, _) = hole_punch(&mut b_events, a.peer_id(), Side::Initiator).await;
    assert_eq!(attempts, 3, "{outcome:?}");
    match outcome {
        Err(Failure::DialsFailed { attempts: 3, error }) => {
            assert!(error.contains("127.0.0.1"), "{error}");
        }
        other => panic!("expected failed dials at attempt 3, got {other:?}"),
    }
    // The responder saw three attempts.
    for n in 1..=3u8 {
        let (_, outcome, attempt, _) =
            hole_punch(&mut a_events, b.peer_id(), Side::Responder).await;
        assert_eq!(attempt, n);
        assert!(outcome.is_err());
    }
    let conns = a.connections_to(&b.peer_id());
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].id, relayed.id);
    a.shutdown().await;
    b.shutdown().await;
}
