//! weft QUIC reconnecting to a rust-libp2p QUIC listener (libp2p 0.57, in process)
//! with early data: each reconnect must prove the listener's peer id and answer a
//! ping sent on an early stream, whether the listener resumes the session or not.
//!
//! What rust-libp2p does (rustls's server defaults): it keeps sessions in memory
//! and sends tickets, so weft's reconnects resume; its tickets allow no early data
//! (`max_early_data_size` 0), so no 0-RTT is attempted and the early ping waits
//! for the handshake: 2 round trips, as on a first connection.

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use std::time::Duration;
use weft_host::{ping, DialOpts, EarlyData, Host, Multiaddr, PeerId, Protocol};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A rust-libp2p QUIC listener serving ping, driven in a task; its address with
/// `/p2p/`.
async fn rust_listener() -> (Multiaddr, PeerId) {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_quic()
        .with_behaviour(|_| libp2p::ping::Behaviour::default())
        .expect("a behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("a multiaddr"))
        .expect("listens");
    let peer = *swarm.local_peer_id();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    let addr: Multiaddr = addr.to_string().parse().expect("a weft multiaddr");
    let peer: PeerId = peer.to_string().parse().expect("a weft peer id");
    (addr.with(Protocol::P2p(peer)), peer)
}

/// Pings over an early stream: 32 bytes out, the same 32 back.
async fn early_ping(host: &Host, peer: PeerId) -> std::io::Result<()> {
    let mut s = host
        .new_early_stream(peer, &[ping::PROTOCOL])
        .await
        .map_err(std::io::Error::other)?;
    let payload: [u8; 32] = rand::random();
    s.write_all(&payload).await?;
    s.flush().await?;
    let mut back = [0u8; 32];
    s.read_exact(&mut back).await?;
    if back != payload {
        return Err(std::io::Error::other("the ping came back altered"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_reconnects_to_rust_libp2p_quic_with_resumption_and_no_early_data() {
    let (addr, peer) = rust_listener().await;
    let host = Host::builder().build().expect("builds");
    let run = async {
        let mut seen = Vec::new();
        for attempt in 0..4 {
            let info = host
                .dial_with(&addr, DialOpts::new().with_early_data(true))
                .await
                .map_err(|e| format!("attempt {attempt}: dial: {e}"))?;
            if info.peer != peer {
                return Err(format!("attempt {attempt}: connected to {}", info.peer));
            }
            early_ping(&host, peer)
                .await
                .map_err(|e| format!("attempt {attempt}: ping: {e}"))?;
            if !host.handshake_complete(info.id).await {
                return Err(format!("attempt {attempt}: the handshake failed"));
            }
            let session = host
                .session_info(info.id)
                .ok_or_else(|| format!("attempt {attempt}: the connection closed"))?;
            seen.push((session.resumed, session.early_data));
            host.disconnect(&peer).await;
            while host.is_connected(&peer) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok::<_, String>(seen)
    };
    let seen = tokio::time::timeout(TIMEOUT, run)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    host.shutdown().await;
    assert_eq!(
        seen[0],
        (Some(false), EarlyData::NotAttempted),
        "the first connection is a full handshake"
    );
    for (attempt, outcome) in seen.iter().enumerate().skip(1) {
        assert_eq!(
            *outcome,
            (Some(true), EarlyData::NotAttempted),
            "reconnect {attempt}: resumed, without 0-RTT ({seen:?})"
        );
    }
}
