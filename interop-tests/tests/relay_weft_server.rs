//! rust-libp2p's relay client (`libp2p-relay` 0.22, the `rust-libp2p-relay-client`
//! example) against a weft relay server: a rust-libp2p peer reserves at the weft relay
//! and a weft peer reaches it through the circuit; a rust-libp2p peer dials a weft
//! peer listening through the weft relay. Each circuit carries identify and ping.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use weft_host::relay::RelayConfig;
use weft_host::{Event, Host, Multiaddr, PeerId, Protocol};

const WAIT: Duration = Duration::from_secs(30);

async fn client_command() -> Command {
    let program = tokio::task::spawn_blocking(weft_interop_tests::prepare_rust_relay_client)
        .await
        .unwrap()
        .unwrap();
    let mut command = Command::new(program);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    command
}

/// The weft relay on 127.0.0.1 and its address with `/p2p/`.
async fn weft_relay() -> (Host, Multiaddr) {
    let relay = Host::builder()
        .relay_server(RelayConfig::default())
        .build()
        .unwrap();
    let addr = relay
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .await
        .unwrap()[0]
        .clone()
        .with(Protocol::P2p(relay.peer_id()));
    (relay, addr)
}

/// The first stdout line of `child`.
async fn first_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    tokio::time::timeout(WAIT, BufReader::new(stdout).lines().next_line())
        .await
        .expect("the rust-libp2p client printed in time")
        .unwrap()
        .expect("a line")
}

#[tokio::test]
async fn a_rust_libp2p_peer_reserves_at_a_weft_relay_and_is_reached_through_it() {
    let (relay, relay_addr) = weft_relay().await;
    let mut command = client_command().await;
    let mut listener = command
        .args(["listen", &relay_addr.to_string()])
        .spawn()
        .unwrap();
    let circuit: Multiaddr = first_line(&mut listener).await.parse().unwrap();
    let Some(Protocol::P2p(rust_peer)) = circuit.iter().last() else {
        panic!("no /p2p/ in {circuit}")
    };
    assert!(
        circuit.iter().any(|p| p == Protocol::P2pCircuit),
        "{circuit}"
    );

    let b = Host::builder().build().unwrap();
    let info = tokio::time::timeout(WAIT, b.dial(&circuit))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.peer, rust_peer);
    assert!(info.is_relayed());
    tokio::time::timeout(WAIT, b.ping(rust_peer))
        .await
        .unwrap()
        .unwrap();
    b.shutdown().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_rust_libp2p_peer_dials_a_weft_peer_through_a_weft_relay() {
    let (relay, relay_addr) = weft_relay().await;
    let a = Host::builder().build().unwrap();
    let addrs = tokio::time::timeout(
        WAIT,
        a.listen(&relay_addr.clone().with(Protocol::P2pCircuit)),
    )
    .await
    .unwrap()
    .unwrap();
    let target: Multiaddr = addrs[0].clone().with(Protocol::P2p(a.peer_id()));
    let mut events = a.subscribe();
    let mut command = client_command().await;
    let mut dialer = command.args(["dial", &target.to_string()]).spawn().unwrap();
    let line = first_line(&mut dialer).await;
    assert!(line.starts_with("ping "), "{line}");
    let status = tokio::time::timeout(WAIT, dialer.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    // A saw the rust-libp2p peer come in through the relay.
    let mut relayed_from: Option<PeerId> = None;
    while let Ok(event) = events.try_recv() {
        if let Event::Connected {
            peer, remote_addr, ..
        } = event
        {
            if remote_addr.iter().any(|p| p == Protocol::P2pCircuit) {
                relayed_from = Some(peer);
            }
        }
    }
    assert!(relayed_from.is_some(), "an inbound relayed connection");
    a.shutdown().await;
    relay.shutdown().await;
}
