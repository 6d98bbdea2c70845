//! weft and go-libp2p (v0.51, the go peer's `relay-*` modes) through a circuit relay v2
//! of either implementation, on 127.0.0.1: weft peers reserve at and dial through a go
//! relay, a go peer dials a weft peer through a go relay, and a go peer reserves at and
//! dials through a weft relay. Each circuit carries identify, ping and an echo stream.

use futures::{AsyncReadExt, AsyncWriteExt};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use weft_host::relay::RelayConfig;
use weft_host::{Host, Multiaddr, PeerId, Protocol};
use weft_interop_tests::{prepare_async, require_impls, Impl};

const ECHO: &str = "/echo/1.0.0";
const WAIT: Duration = Duration::from_secs(30);

/// The go peer run with `args`, stdout piped, killed on drop.
async fn go_peer(args: &[&str]) -> Child {
    let command = prepare_async(Impl::Go).await.unwrap();
    Command::new(&command.program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The first stdout line of `child`, as a multiaddr.
async fn first_addr(child: &mut Child) -> Multiaddr {
    let stdout = child.stdout.take().unwrap();
    let line = tokio::time::timeout(WAIT, BufReader::new(stdout).lines().next_line())
        .await
        .expect("the go peer printed in time")
        .unwrap()
        .expect("a line");
    line.trim().parse().unwrap()
}

fn last_peer(addr: &Multiaddr) -> PeerId {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => peer,
        _ => panic!("no /p2p/ at the end of {addr}"),
    }
}

/// A weft host serving /echo/1.0.0.
fn echo_host() -> Host {
    let host = Host::builder().build().unwrap();
    host.set_handler(ECHO, |mut s| async move {
        let mut buf = Vec::new();
        if s.read_to_end(&mut buf).await.is_ok() {
            let _ = s.write_all(&buf).await;
            let _ = s.close().await;
        }
    });
    host
}

async fn echo(client: &Host, peer: PeerId, data: &[u8]) -> Vec<u8> {
    let mut s = tokio::time::timeout(WAIT, client.new_stream(peer, &[ECHO]))
        .await
        .unwrap()
        .unwrap();
    s.write_all(data).await.unwrap();
    s.close().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
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

/// `go-peer relay-dial TARGET` to completion: its JSON report, which must say ok.
async fn go_relay_dial(target: &Multiaddr) -> serde_json::Value {
    let command = prepare_async(Impl::Go).await.unwrap();
    let output = tokio::time::timeout(
        WAIT,
        Command::new(&command.program)
            .args(["relay-dial", &target.to_string(), "--echo-bytes", "4096"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the go dialer finished in time")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(report["ok"], true, "{report}");
    assert!(output.status.success());
    report
}

#[tokio::test]
async fn weft_peers_meet_through_a_go_relay() {
    if !require_impls(&[Impl::Go]) {
        return;
    }
    let mut relay = go_peer(&["relay-server"]).await;
    let relay_addr = first_addr(&mut relay).await;
    let a = echo_host();
    let circuit = relay_addr.clone().with(Protocol::P2pCircuit);
    let addrs = tokio::time::timeout(WAIT, a.listen(&circuit))
        .await
        .unwrap()
        .unwrap();
    assert!(
        addrs
            .iter()
            .all(|a| a.iter().any(|p| p == Protocol::P2pCircuit)),
        "{addrs:?}"
    );
    let b = Host::builder().build().unwrap();
    let info = tokio::time::timeout(WAIT, b.dial(&circuit.with(Protocol::P2p(a.peer_id()))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.peer, a.peer_id());
    assert!(info.is_relayed());
    tokio::time::timeout(WAIT, b.ping(a.peer_id()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        echo(&b, a.peer_id(), b"via go-libp2p").await,
        b"via go-libp2p"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_go_peer_dials_a_weft_peer_through_a_go_relay() {
    if !require_impls(&[Impl::Go]) {
        return;
    }
    let mut relay = go_peer(&["relay-server"]).await;
    let relay_addr = first_addr(&mut relay).await;
    let a = echo_host();
    let circuit = relay_addr.with(Protocol::P2pCircuit);
    tokio::time::timeout(WAIT, a.listen(&circuit))
        .await
        .unwrap()
        .unwrap();
    let target = circuit.with(Protocol::P2p(a.peer_id()));
    let report = go_relay_dial(&target).await;
    assert_eq!(report["remote_peer"], a.peer_id().to_string());
    assert_eq!(report["relayed"], true, "{report}");
    assert_eq!(report["echo_bytes"], 4096);
    a.shutdown().await;
}

#[tokio::test]
async fn a_go_peer_reserves_at_a_weft_relay_and_a_weft_peer_reaches_it() {
    if !require_impls(&[Impl::Go]) {
        return;
    }
    let (relay, relay_addr) = weft_relay().await;
    let mut listener = go_peer(&["relay-listen", &relay_addr.to_string()]).await;
    let circuit = first_addr(&mut listener).await;
    assert!(
        circuit.iter().any(|p| p == Protocol::P2pCircuit),
        "{circuit}"
    );
    let go_id = last_peer(&circuit);
    let b = Host::builder().build().unwrap();
    let info = tokio::time::timeout(WAIT, b.dial(&circuit))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.peer, go_id);
    assert!(info.is_relayed());
    tokio::time::timeout(WAIT, b.ping(go_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echo(&b, go_id, b"to go-libp2p").await, b"to go-libp2p");
    b.shutdown().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_go_peer_dials_a_weft_peer_through_a_weft_relay() {
    if !require_impls(&[Impl::Go]) {
        return;
    }
    let (relay, relay_addr) = weft_relay().await;
    let a = echo_host();
    let circuit = relay_addr.with(Protocol::P2pCircuit);
    tokio::time::timeout(WAIT, a.listen(&circuit))
        .await
        .unwrap()
        .unwrap();
    let target = circuit.with(Protocol::P2p(a.peer_id()));
    let report = go_relay_dial(&target).await;
    assert_eq!(report["remote_peer"], a.peer_id().to_string());
    assert_eq!(report["relayed"], true, "{report}");
    a.shutdown().await;
    relay.shutdown().await;
}
