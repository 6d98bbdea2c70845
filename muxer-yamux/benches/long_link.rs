//! One stream's download through a relay that delays each direction (a long link) and
//! over plain loopback TCP (no security), weft-yamux with its default config beside
//! libp2p-yamux 0.48 with its defaults, in one run. Prints the median MiB/s of each
//! and weft's relay/loopback ratio.
//!
//! `cargo bench -p weft-muxer-yamux --bench long_link -- [--mib N] [--rtt-ms MS] [--runs N]`

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::time::{Duration, Instant};
use support::libp2p_peer::Libp2pPeer;
use support::{relayed_pair, tcp_pair, weft_peer};
use tokio::net::TcpStream;
use weft_muxer_yamux::YamuxConfig;
use weft_upgrader::Role;

#[derive(Clone, Copy, PartialEq)]
enum Muxer {
    Weft,
    Libp2p,
}

/// Writes `bytes` into the stream, then closes it.
async fn send<S: AsyncWrite + Unpin>(mut stream: S, bytes: usize) {
    let chunk = vec![7u8; 256 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n]).await.expect("send");
        left -= n;
    }
    stream.close().await.expect("close");
}

/// Reads the stream to its end; MiB/s from the first request byte sent.
async fn receive<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, bytes: usize) -> f64 {
    stream.write_all(b"go").await.expect("request");
    let started = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    loop {
        let n = stream.read(&mut buf).await.expect("receive");
        if n == 0 {
            break;
        }
        got += n;
    }
    assert_eq!(got, bytes, "the whole transfer arrived");
    bytes as f64 / started.elapsed().as_secs_f64() / (1 << 20) as f64
}

async fn pair(relayed: Option<Duration>) -> (TcpStream, TcpStream, Option<support::relay::Relay>) {
    match relayed {
        Some(one_way) => {
            let (a, b, relay) = relayed_pair(one_way).await;
            (a, b, Some(relay))
        }
        None => {
            let (a, b) = tcp_pair().await;
            (a, b, None)
        }
    }
}

async fn run(muxer: Muxer, relayed: Option<Duration>, bytes: usize) -> f64 {
    let (a, b, _relay) = pair(relayed).await;
    match muxer {
        Muxer::Weft => {
            let (client, _) = weft_peer(a, Role::Initiator, YamuxConfig::default());
            let (server, _) = weft_peer(b, Role::Responder, YamuxConfig::default());
            let sender = tokio::spawn(async move {
                let stream = server.accept_stream().await.expect("accept");
                send(stream, bytes).await;
                server
            });
            let stream = client.open_stream().await.expect("open");
            let rate = receive(stream, bytes).await;
            drop(sender.await);
            rate
        }
        Muxer::Libp2p => {
            let mut client = Libp2pPeer::spawn(a, true).await;
            let mut server = Libp2pPeer::spawn(b, false).await;
            let sender = tokio::spawn(async move {
                let stream = server.accept().await.expect("accept");
                send(stream, bytes).await;
                server
            });
            let stream = client.open().await.expect("open");
            let rate = receive(stream, bytes).await;
            drop(sender.await);
            rate
        }
    }
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut mib, mut rtt_ms, mut runs) = (256usize, 60u64, 3usize);
    while let Some(arg) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse::<u64>().ok());
        match arg.as_str() {
            "--mib" => mib = value().expect("--mib N") as usize,
            "--rtt-ms" => rtt_ms = value().expect("--rtt-ms MS"),
            "--runs" => runs = value().expect("--runs N").max(1) as usize,
            _ => {} // cargo bench's own flags
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let bytes = mib << 20;
    let one_way = Duration::from_millis(rtt_ms / 2);
    println!("{mib} MiB download, one stream, {rtt_ms} ms RTT relay, median of {runs}");
    let mut results = Vec::new();
    for (muxer, name) in [(Muxer::Weft, "weft-yamux"), (Muxer::Libp2p, "libp2p-yamux")] {
        let mut loopback = Vec::new();
        let mut relay = Vec::new();
        for _ in 0..runs {
            loopback.push(rt.block_on(run(muxer, None, bytes)));
            relay.push(rt.block_on(run(muxer, Some(one_way), bytes)));
        }
        let (lo, re) = (median(loopback), median(relay));
        println!(
            "{name:>13}: loopback {lo:6.0} MiB/s, relay {re:6.0} MiB/s, relay/loopback {:.2}",
            re / lo
        );
        results.push(re);
    }
    println!("weft/libp2p on the relay: {:.2}x", results[0] / results[1]);
}
