//! Negotiation cost, weft-mss against rust-libp2p's `multistream-select` 0.14, over an
//! in-memory duplex: one accepted proposal, and one `na` then an accepted one.
//! Prints the weft / rust-libp2p ratio of the medians at the end.

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use tokio_util::compat::TokioAsyncReadCompatExt;

const SUPPORTED: [&str; 2] = ["/noise", "/yamux/1.0.0"];

async fn weft_round(proposals: &[&str]) {
    let (a, b) = tokio::io::duplex(4096);
    let matcher = weft_mss::Protocols::from_iter(SUPPORTED);
    let (d, l) = tokio::join!(
        weft_mss::dialer_select(a.compat(), proposals.iter().copied(), weft_mss::Version::V1),
        weft_mss::listener_select(b.compat(), &matcher)
    );
    assert_eq!(d.expect("dialer").0, l.expect("listener").0);
}

async fn libp2p_round(proposals: &[&str]) {
    let (a, b) = tokio::io::duplex(4096);
    let (d, l) = tokio::join!(
        multistream_select::dialer_select_proto(
            a.compat(),
            proposals.iter().copied(),
            multistream_select::Version::V1
        ),
        multistream_select::listener_select_proto(b.compat(), SUPPORTED)
    );
    assert_eq!(d.expect("dialer").0, l.expect("listener").0);
}

fn median_ns(mut f: impl FnMut(), iters: usize) -> f64 {
    let mut samples: Vec<f64> = (0..iters)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..100 {
                f();
            }
            start.elapsed().as_nanos() as f64 / 100.0
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let cases: [(&str, &[&str]); 2] = [
        ("accept_first", &["/noise"]),
        ("na_then_accept", &["/tls/1.0.0", "/noise"]),
    ];
    let mut group = c.benchmark_group("mss_negotiation");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for (name, proposals) in cases {
        group.bench_function(format!("weft/{name}"), |b| {
            b.iter(|| rt.block_on(weft_round(proposals)))
        });
        group.bench_function(format!("rust-libp2p/{name}"), |b| {
            b.iter(|| rt.block_on(libp2p_round(proposals)))
        });
    }
    group.finish();
    // Side-by-side medians from this same run, for the ratio.
    for (name, proposals) in cases {
        let weft = median_ns(|| rt.block_on(weft_round(proposals)), 31);
        let libp2p = median_ns(|| rt.block_on(libp2p_round(proposals)), 31);
        println!(
            "RATIO {name}: weft {weft:.0} ns, rust-libp2p {libp2p:.0} ns, weft/rust-libp2p = {:.2}",
            weft / libp2p
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
