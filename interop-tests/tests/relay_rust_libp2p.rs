//! weft's relay client against rust-libp2p's relay server (`libp2p-relay` 0.22, the
//! `rust-libp2p-relay` example): weft A reserves a slot at the rust-libp2p relay and
//! listens through it, weft B dials A through it; the circuit is upgraded (Noise +
//! yamux) and carries identify, ping and an echo stream, until the relay's data limit
//! ends it.

use futures::{AsyncReadExt, AsyncWriteExt};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::broadcast;
use weft_host::{Event, Host, Multiaddr, PeerId, Protocol};

const ECHO: &str = "/echo/1.0.0";
const WAIT: Duration = Duration::from_secs(30);
/// The relay's cap per direction: room for identify, ping and a small echo.
const DATA_LIMIT: u64 = 64 * 1024;

/// Starts the rust-libp2p relay; returns the process and its address with `/p2p/`.
async fn rust_relay() -> (Child, Multiaddr) {
    let program = tokio::task::spawn_blocking(weft_interop_tests::prepare_rust_relay)
        .await
        .unwrap()
        .unwrap();
    let mut child = Command::new(&program)
        .args(["--max-circuit-bytes", &DATA_LIMIT.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the relay printed its address in time")
        .unwrap()
        .expect("the relay printed a line");
    (child, line.trim().parse().unwrap())
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
async fn weft_peers_meet_through_a_rust_libp2p_relay() {
    let (_relay, relay_addr) = rust_relay().await;
    let a = Host::builder().build().unwrap();
    a.set_handler(ECHO, |mut s| async move {
        let mut buf = Vec::new();
        if s.read_to_end(&mut buf).await.is_ok() {
            let _ = s.write_all(&buf).await;
            let _ = s.close().await;
        }
    });
    let circuit = relay_addr.clone().with(Protocol::P2pCircuit);
    let addrs = tokio::time::timeout(WAIT, a.listen(&circuit))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        addrs,
        vec![circuit.clone()],
        "the relay's external address, then /p2p-circuit"
    );

    let b = Host::builder().build().unwrap();
    let mut b_events = b.subscribe();
    let info = tokio::time::timeout(WAIT, b.dial(&circuit.with(Protocol::P2p(a.peer_id()))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.peer, a.peer_id());
    assert!(info.is_relayed());
    next_matching(
        &mut b_events,
        |e| matches!(e, Event::PeerIdentified { peer, .. } if *peer == a.peer_id()),
    )
    .await;
    tokio::time::timeout(WAIT, b.ping(a.peer_id()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        echo(&b, a.peer_id(), b"via rust-libp2p").await.unwrap(),
        b"via rust-libp2p"
    );

    // Past the relay's data limit the circuit ends, and the connection over it.
    let big = vec![1u8; 2 * DATA_LIMIT as usize];
    let over = tokio::time::timeout(WAIT, echo(&b, a.peer_id(), &big))
        .await
        .unwrap();
    assert!(over.map(|back| back != big).unwrap_or(true));
    next_matching(
        &mut b_events,
        |e| matches!(e, Event::Disconnected { connection, .. } if *connection == info.id),
    )
    .await;
    a.shutdown().await;
    b.shutdown().await;
}
