//! The cost of metrics: throughput and dials/s of two hosts with the metrics observer
//! (`weft-metrics` on both ends, counting every stream's bytes) against the same hosts
//! without an observer, alternating in one run. TCP + Noise + yamux on loopback.
//!
//! `cargo bench -p weft-metrics --bench overhead` (about 30 s; `-- --quick`: fewer,
//! smaller runs). A host built without `weft-host`'s `metrics-hook` feature has no hook
//! points at all; this measures the next cheapest thing, a host built with the hook
//! whose observer is absent, against one whose observer counts.

use prometheus_client::registry::Registry;
use std::time::{Duration, Instant};
use weft_host::{Host, Multiaddr, Protocol};
use weft_metrics::Metrics;

struct Pair {
    server: Host,
    client: Host,
    target: Multiaddr,
    registries: Vec<Registry>,
}

fn host(metrics: bool, registries: &mut Vec<Registry>) -> Host {
    let mut builder = Host::builder();
    let mut registry = Registry::default();
    let m = metrics.then(|| Metrics::new(&mut registry));
    if let Some(m) = &m {
        builder = builder.observer(m.observer());
    }
    let host = builder.build().expect("a host");
    if let Some(m) = m {
        m.register_host(&mut registry, &host);
        registries.push(registry);
    }
    host
}

async fn pair(metrics: bool) -> Pair {
    let mut registries = Vec::new();
    let server = host(metrics, &mut registries);
    server.enable_perf();
    let addr = server
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().expect("an address"))
        .await
        .expect("listening")[0]
        .clone();
    let client = host(metrics, &mut registries);
    Pair {
        target: addr,
        server,
        client,
        registries,
    }
}

/// MiB/s of one upload of `bytes` over /perf/1.0.0 on a fresh connection.
async fn upload(pair: &Pair, bytes: u64) -> f64 {
    let peer = pair.server.peer_id();
    pair.client
        .dial(&pair.target.clone().with(Protocol::P2p(peer)))
        .await
        .expect("dial");
    let mut stream = pair
        .client
        .new_stream(peer, &[weft_host::perf::PROTOCOL])
        .await
        .expect("a perf stream");
    let started = Instant::now();
    weft_host::perf::run_client(&mut stream, bytes, 0)
        .await
        .expect("perf");
    let secs = started.elapsed().as_secs_f64();
    drop(stream);
    pair.client.disconnect(&peer).await;
    bytes as f64 / (1 << 20) as f64 / secs
}

/// Sequential dials per second: dial, upgrade, disconnect, `n` times.
async fn dials(pair: &Pair, n: usize) -> f64 {
    let peer = pair.server.peer_id();
    let started = Instant::now();
    for _ in 0..n {
        // Without /p2p every dial makes a new connection.
        pair.client.dial(&pair.target).await.expect("dial");
        pair.client.disconnect(&peer).await;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn median_min_max(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (runs, bytes, n_dials) = if quick {
        (3, 64u64 << 20, 100)
    } else {
        (7, 256u64 << 20, 300)
    };
    let off = pair(false).await;
    let on = pair(true).await;
    // Warm-up.
    upload(&off, 8 << 20).await;
    upload(&on, 8 << 20).await;
    let mut results: [(Vec<f64>, Vec<f64>); 2] = Default::default();
    for _ in 0..runs {
        for (i, p) in [&off, &on].into_iter().enumerate() {
            results[i].0.push(upload(p, bytes).await);
            results[i].1.push(dials(p, n_dials).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The observer did count: the bytes are in the registry.
    let text = weft_metrics::encode(&on.registries[0]).expect("encoding");
    assert!(text.contains("weft_stream_bytes_total{protocol=\"/perf/1.0.0\""));

    println!(
        "metrics overhead: {runs} runs each, alternating; upload {} MiB, {n_dials} sequential dials",
        bytes >> 20
    );
    println!("| figure | unit | metrics off | metrics on | on/off |");
    println!("|---|---|---|---|---|");
    let rows = [
        ("upload, Noise+yamux, loopback", "MiB/s", 0),
        ("dials, sequential, Noise+yamux, loopback", "dials/s", 1),
    ];
    for (name, unit, k) in rows {
        let pick = |i: usize| {
            if k == 0 {
                results[i].0.clone()
            } else {
                results[i].1.clone()
            }
        };
        let (off_m, off_lo, off_hi) = median_min_max(pick(0));
        let (on_m, on_lo, on_hi) = median_min_max(pick(1));
        println!(
            "| {name} | {unit} | {off_m:.0} ({off_lo:.0}–{off_hi:.0}) | {on_m:.0} ({on_lo:.0}–{on_hi:.0}) | {:.2} |",
            on_m / off_m
        );
    }
    for p in [off, on] {
        p.client.shutdown().await;
        p.server.shutdown().await;
    }
}
