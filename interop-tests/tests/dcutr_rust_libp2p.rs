//! weft's DCUtR against rust-libp2p's (`libp2p-dcutr`, the `rust-libp2p-dcutr`
//! example) through a weft relay on 127.0.0.1, both roles: rust-libp2p as the
//! initiator (it accepted the relayed connection) with weft dialing through the
//! relay; and weft as the initiator with rust-libp2p dialing; each over TCP and QUIC.
//! Loopback is directly reachable (weft's classifier takes it as public here), so
//! the punch succeeds and a direct connection carries a ping.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::broadcast;
use weft_host::dcutr::{DirectConnection, Failure, PunchTransport, Side};
use weft_host::dial::classify::{AddrClass, Classifier};
use weft_host::relay::RelayConfig;
use weft_host::{DialConfig, Event, Host, Multiaddr, PeerId, Protocol};

const WAIT: Duration = Duration::from_secs(45);

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

fn weft_host() -> Host {
    Host::builder()
        .dial_config(
            DialConfig::new()
                .with_classifier(Classifier::new().with_public(&[AddrClass::Loopback])),
        )
        .build()
        .unwrap()
}

/// A weft relay listening on `listen`.
async fn weft_relay(listen: &str) -> (Host, Multiaddr) {
    let relay = Host::builder()
        .relay_server(RelayConfig::default())
        .build()
        .unwrap();
    let addrs = relay.listen(&addr(listen)).await.unwrap();
    let a = addrs[0].clone().with(Protocol::P2p(relay.peer_id()));
    (relay, a)
}

/// Starts the rust-libp2p peer with `args`.
async fn rust_peer(args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let program = tokio::task::spawn_blocking(weft_interop_tests::prepare_rust_dcutr)
        .await
        .unwrap()
        .unwrap();
    let mut child = Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    (child, BufReader::new(stdout).lines())
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the rust-libp2p peer printed in time")
        .unwrap()
        .expect("the rust-libp2p peer printed a line")
}

async fn hole_punch(
    rx: &mut broadcast::Receiver<Event>,
    peer: PeerId,
    side: Side,
) -> Result<DirectConnection, Failure> {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Ok(Event::HolePunch {
                    peer: p,
                    side: s,
                    outcome,
                    ..
                }) if p == peer && s == side => return outcome,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await
    .expect("the hole punch ended in time")
}

/// rust-libp2p reserves at the weft relay and starts DCUtR when weft dials it
/// through the relay; weft answers and dials. rust-libp2p sends only addresses
/// others observed (identify), so it reaches the relay over the transport it punches
/// with.
///
/// rust-libp2p's own verdict is not asserted: it reports success only for the
/// connection its role-reversed dial produced, and on loopback, with no delay
/// between the SYNC and weft's dial, weft's SYN (or QUIC Initial) often reaches
/// rust-libp2p's listener before rust-libp2p starts its punch, so the direct
/// connection is an ordinary inbound one there. The exchange must still have
/// worked for weft to learn the addresses and the moment to dial.
async fn rust_initiates(transport: &str, listen: &str, expected: PunchTransport) {
    let (_relay, relay_addr) = weft_relay(listen).await;
    let (_child, mut lines) = rust_peer(&["listen", transport, &relay_addr.to_string()]).await;
    let circuit: Multiaddr = next_line(&mut lines).await.trim().parse().unwrap();
    let Some(Protocol::P2p(rust_peer_id)) = circuit.iter().last() else {
        panic!("no peer id in {circuit}");
    };
    let a = weft_host();
    a.listen(&addr(listen)).await.unwrap();
    let mut events = a.subscribe();
    let relayed = tokio::time::timeout(WAIT, a.dial(&circuit))
        .await
        .unwrap()
        .unwrap();
    assert!(relayed.is_relayed());

    let direct = hole_punch(&mut events, rust_peer_id, Side::Responder)
        .await
        .expect("weft punched through to rust-libp2p");
    assert_eq!(direct.transport, Some(expected));
    // On loopback both punches can succeed (weft's dial and rust-libp2p's
    // role-reversed one), and under load one of the two direct connections has
    // been seen to go silent until its idle timeout closes it; a ping that runs on
    // it fails with the connection lost, so pings are retried until one gets
    // through a surviving connection or the wait ends.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut attempt = 1;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, a.ping(rust_peer_id)).await {
            Ok(Ok(_)) => break,
            Ok(Err(e)) if tokio::time::Instant::now() < deadline => {
                eprintln!("ping {attempt} over the punched connections failed ({e}); again");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Err(e)) => panic!("no ping got through within {WAIT:?}: {e}"),
            Err(_) => panic!("no ping got through within {WAIT:?}"),
        }
    }
    assert!(a
        .connections_to(&rust_peer_id)
        .iter()
        .any(|c| !c.is_relayed() && PunchTransport::of(&c.remote_addr) == Some(expected)));
    a.shutdown().await;
}

#[tokio::test]
async fn rust_libp2p_initiates_and_weft_answers_over_tcp() {
    rust_initiates("tcp", "/ip4/127.0.0.1/tcp/0", PunchTransport::Tcp).await;
}

#[tokio::test]
async fn rust_libp2p_initiates_and_weft_answers_over_quic() {
    rust_initiates("quic", "/ip4/127.0.0.1/udp/0/quic-v1", PunchTransport::Quic).await;
}

/// A weft host reserves at the weft relay; rust-libp2p dials it through the relay
/// and answers weft's DCUtR exchange.
async fn weft_initiates(transport: &str, listen: &str, expected: PunchTransport) {
    let (_relay, relay_addr) = weft_relay(listen).await;
    let b = weft_host();
    let mut events = b.subscribe();
    b.listen(&addr(listen)).await.unwrap();
    let circuit = relay_addr.with(Protocol::P2pCircuit);
    tokio::time::timeout(WAIT, b.listen(&circuit))
        .await
        .unwrap()
        .unwrap();
    let through = circuit.with(Protocol::P2p(b.peer_id()));
    let (_child, _lines) = rust_peer(&["dial", transport, &through.to_string()]).await;

    let rust_peer_id = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(Event::Connected {
                    peer, remote_addr, ..
                }) if remote_addr.iter().any(|p| p == Protocol::P2pCircuit) => return peer,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await
    .expect("rust-libp2p arrived through the relay");
    let direct = hole_punch(&mut events, rust_peer_id, Side::Initiator)
        .await
        .expect("weft punched through to rust-libp2p");
    assert_eq!(direct.transport, Some(expected));
    assert!(direct.rtt.is_some());
    tokio::time::timeout(WAIT, b.ping(rust_peer_id))
        .await
        .unwrap()
        .unwrap();
    b.shutdown().await;
}

#[tokio::test]
async fn weft_initiates_and_rust_libp2p_answers_over_tcp() {
    weft_initiates("tcp", "/ip4/127.0.0.1/tcp/0", PunchTransport::Tcp).await;
}

#[tokio::test]
async fn weft_initiates_and_rust_libp2p_answers_over_quic() {
    weft_initiates("quic", "/ip4/127.0.0.1/udp/0/quic-v1", PunchTransport::Quic).await;
}
