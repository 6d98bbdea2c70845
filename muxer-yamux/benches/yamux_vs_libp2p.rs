//! weft-yamux against rust-libp2p's libp2p-yamux over loopback TCP (no security), in
//! one run: single-stream throughput, and stream open + 1-byte echo. Prints the
//! median time per operation of each and the weft/libp2p ratios at the end.
//!
//! `cargo bench -p weft-muxer-yamux --bench yamux_vs_libp2p`

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use criterion::{criterion_group, Criterion, Throughput};
use futures::{AsyncReadExt, AsyncWriteExt};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::libp2p_peer::Libp2pPeer;
use support::{tcp_pair, weft_peer};
use tokio::runtime::Runtime;
use weft_muxer_yamux::YamuxConfig;
use weft_upgrader::{MuxedConnection, Role};

const BULK: usize = 16 * 1024 * 1024;

/// Median seconds per operation, by benchmark id.
static MEDIANS: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

fn record(id: &str, per_op: f64) {
    MEDIANS
        .lock()
        .unwrap()
        .entry(id.to_owned())
        .or_default()
        .push(per_op);
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The server side of both scenarios: read the stream to EOF, answer with the last
/// byte read (or one byte for an empty stream), close.
async fn serve<S: futures::AsyncRead + futures::AsyncWrite + Unpin>(mut stream: S) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut last = 0u8;
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => last = buf[n - 1],
            Err(_) => return,
        }
    }
    let _ = stream.write_all(&[last]).await;
    let _ = stream.close().await;
}

/// Client side: write `data`, half-close, read the one-byte answer.
async fn request<S: futures::AsyncRead + futures::AsyncWrite + Unpin>(mut stream: S, data: &[u8]) {
    stream.write_all(data).await.unwrap();
    stream.close().await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer.len(), 1);
}

async fn weft_connection(config: YamuxConfig) -> Arc<dyn MuxedConnection> {
    let (a, b) = tcp_pair().await;
    let (client, _) = weft_peer(a, Role::Initiator, config.clone());
    let (server, _) = weft_peer(b, Role::Responder, config);
    tokio::spawn(async move {
        while let Ok(stream) = server.accept_stream().await {
            tokio::spawn(serve(stream));
        }
    });
    client
}

async fn libp2p_connection() -> Libp2pPeer {
    let (a, b) = tcp_pair().await;
    let client = Libp2pPeer::spawn(a, true).await;
    let mut server = Libp2pPeer::spawn(b, false).await;
    tokio::spawn(async move {
        while let Some(stream) = server.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    client
}

fn weft_configs() -> Vec<(&'static str, YamuxConfig)> {
    let base = YamuxConfig::default();
    vec![
        ("weft", base.clone()),
        (
            "weft-split16k",
            base.clone().with_split_send_size(16 * 1024),
        ),
        ("weft-split256k", base.with_split_send_size(256 * 1024)),
    ]
}

fn bench(c: &mut Criterion, group_name: &str, payload: &[u8]) {
    let rt = runtime();
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_millis(500));
    if payload.len() > 1 {
        group.throughput(Throughput::Bytes(payload.len() as u64));
    }
    for (name, config) in weft_configs() {
        let client = rt.block_on(weft_connection(config));
        let id = format!("{group_name}/{name}");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let elapsed = rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let stream = client.open_stream().await.unwrap();
                        request(stream, payload).await;
                    }
                    start.elapsed()
                });
                record(&id, elapsed.as_secs_f64() / iters as f64);
                elapsed
            })
        });
    }
    let mut client = rt.block_on(libp2p_connection());
    let id = format!("{group_name}/libp2p");
    group.bench_function("libp2p", |b| {
        b.iter_custom(|iters| {
            let elapsed = rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let stream = client.open().await.unwrap();
                    request(stream, payload).await;
                }
                start.elapsed()
            });
            record(&id, elapsed.as_secs_f64() / iters as f64);
            elapsed
        })
    });
    group.finish();
}

fn throughput(c: &mut Criterion) {
    let payload = vec![0xab; BULK];
    bench(c, "single_stream_16MiB", &payload);
}

fn open_echo(c: &mut Criterion) {
    bench(c, "open_1byte_echo", b"x");
}

criterion_group!(benches, throughput, open_echo);

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let mut medians = MEDIANS.lock().unwrap();
    println!("\nmedian per operation (weft / libp2p ratio; < 1 means weft is faster):");
    for group in ["single_stream_16MiB", "open_1byte_echo"] {
        let Some(libp2p) = medians
            .get_mut(&format!("{group}/libp2p"))
            .map(|v| median(v))
        else {
            continue;
        };
        for name in ["weft", "weft-split16k", "weft-split256k", "libp2p"] {
            let Some(values) = medians.get_mut(&format!("{group}/{name}")) else {
                continue;
            };
            let m = median(values);
            let extra = if group.starts_with("single") {
                format!("{:8.1} MiB/s", BULK as f64 / m / (1024.0 * 1024.0))
            } else {
                format!("{:8.0} ops/s", 1.0 / m)
            };
            println!(
                "{group:22} {name:16} {:10.1} us  {extra}  ratio {:.2}",
                m * 1e6,
                m / libp2p
            );
        }
    }
}
