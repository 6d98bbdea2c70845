//! Helpers shared by the integration tests: TCP pairs, weft peers, echo servers.
#![allow(dead_code)]

pub mod libp2p_peer;
pub mod relay;

use futures::{AsyncReadExt, AsyncWriteExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::TokioAsyncReadCompatExt;
use weft_muxer_yamux::{Yamux, YamuxConfig};
use weft_upgrader::{BoxedStream, Budget, MuxedConnection, MuxerError, Role, StreamMuxer};

/// Polls `check` every 20 ms until it holds, for at most `secs` seconds.
pub async fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP pair whose bytes pass through a relay delaying each direction by
/// `one_way`: (dialer side, listener side, relay).
pub async fn relayed_pair(one_way: Duration) -> (TcpStream, TcpStream, relay::Relay) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = relay::Relay::start(listener.local_addr().unwrap(), one_way).await;
    let (dialed, accepted) = tokio::join!(TcpStream::connect(relay.addr), listener.accept());
    let dialed = dialed.unwrap();
    dialed.set_nodelay(true).unwrap();
    let accepted = accepted.unwrap().0;
    accepted.set_nodelay(true).unwrap();
    (dialed, accepted, relay)
}

/// A weft yamux connection over `tcp` charging `budget`, its driver spawned.
pub fn weft_peer_with(
    yamux: &Yamux,
    tcp: TcpStream,
    role: Role,
    budget: Budget,
) -> (
    Arc<dyn MuxedConnection>,
    tokio::task::JoinHandle<Result<(), MuxerError>>,
) {
    let muxed = yamux
        .upgrade_with_budget(Box::new(tcp.compat()), role, budget)
        .unwrap();
    (muxed.connection, tokio::spawn(muxed.driver))
}

/// A connected pair of TCP sockets on 127.0.0.1: (dialer, listener side).
pub async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let dialed = dialed.unwrap();
    dialed.set_nodelay(true).unwrap();
    let accepted = accepted.unwrap().0;
    accepted.set_nodelay(true).unwrap();
    (dialed, accepted)
}

/// A weft yamux connection over `tcp`, its driver spawned.
pub fn weft_peer(
    tcp: TcpStream,
    role: Role,
    config: YamuxConfig,
) -> (
    Arc<dyn MuxedConnection>,
    tokio::task::JoinHandle<Result<(), MuxerError>>,
) {
    let muxed = Yamux::with_config(config)
        .unwrap()
        .upgrade(Box::new(tcp.compat()), role)
        .unwrap();
    (muxed.connection, tokio::spawn(muxed.driver))
}

/// Two weft peers on one TCP connection: (initiator, responder).
pub async fn weft_pair(
    config: YamuxConfig,
) -> (Arc<dyn MuxedConnection>, Arc<dyn MuxedConnection>) {
    let (a, b) = tcp_pair().await;
    let (client, _) = weft_peer(a, Role::Initiator, config.clone());
    let (server, _) = weft_peer(b, Role::Responder, config);
    (client, server)
}

/// Echoes one stream: reads to EOF, writing everything back, then closes.
pub async fn echo(mut stream: BoxedStream) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n]).await?;
        total += n as u64;
    }
    stream.close().await?;
    Ok(total)
}

/// Accepts streams forever and echoes each in its own task.
pub fn spawn_echo_server(connection: Arc<dyn MuxedConnection>) {
    tokio::spawn(async move {
        while let Ok(stream) = connection.accept_stream().await {
            tokio::spawn(echo(stream));
        }
    });
}

/// Writes `data`, half-closes, reads the echo to EOF and returns it.
pub async fn echo_roundtrip(stream: BoxedStream, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let (mut reader, mut writer) = stream.split();
    let write = async {
        writer.write_all(data).await?;
        writer.close().await
    };
    let read = async {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    let (w, r) = tokio::join!(write, read);
    w?;
    r
}

/// Test data that is not all the same byte.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Fails the test if `fut` takes longer than `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {secs}s"))
}
