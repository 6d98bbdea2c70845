//! One stream's throughput through a relay that delays each direction (a long link)
//! and over plain loopback, weft-yamux with its default config beside libp2p-yamux.
//!
//! `cargo bench -p weft-muxer-yamux --bench long_link -- [--mib N] [--rtt-ms MS]`

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports, dead_code)]
mod support;

use futures::{AsyncReadExt, AsyncWriteExt};
use std::time::{Duration, Instant};
use support::{relayed_pair, tcp_pair, weft_peer};
use weft_muxer_yamux::YamuxConfig;
use weft_upgrader::Role;

async fn run_weft(relayed: Option<Duration>, bytes: usize) -> f64 {
    let (a, b, _relay) = match relayed {
        Some(one_way) => {
            let (a, b, r) = relayed_pair(one_way).await;
            (a, b, Some(r))
        }
        None => {
            let (a, b) = tcp_pair().await;
            (a, b, None)
        }
    };
    let (client, _) = weft_peer(a, Role::Initiator, YamuxConfig::default());
    let (server, _) = weft_peer(b, Role::Responder, YamuxConfig::default());
    tokio::spawn(async move {
        let mut stream = server.accept_stream().await.unwrap();
        let chunk = vec![7u8; 256 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            stream.write_all(&chunk[..n]).await.unwrap();
            left -= n;
        }
        stream.close().await.unwrap();
        std::future::pending::<()>().await;
    });
    let mut stream = client.open_stream().await.unwrap();
    stream.write_all(b"go").await.unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    assert_eq!(got, bytes);
    bytes as f64 / started.elapsed().as_secs_f64() / (1 << 20) as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut mib = 512usize;
    let mut rtt_ms = 60u64;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mib" => mib = args.next().and_then(|v| v.parse().ok()).expect("--mib N"),
            "--rtt-ms" => {
                rtt_ms = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rtt-ms MS")
            }
            _ => {}
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bytes = mib << 20;
    for _ in 0..3 {
        let lo = rt.block_on(run_weft(None, bytes));
        let re = rt.block_on(run_weft(Some(Duration::from_millis(rtt_ms / 2)), bytes));
        println!(
            "weft loopback {lo:.0} MiB/s, relay {re:.0} MiB/s, ratio {:.2}",
            re / lo
        );
    }
}
