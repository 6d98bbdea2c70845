//! weft Noise against rust-libp2p's `libp2p-noise` in one run: handshakes per second
//! and single-direction throughput (64 MiB over an in-memory duplex), with weft on both
//! crypto backends, plus raw ChaCha20-Poly1305 (`ring`, 64 KiB seals) for reference.
//! Prints the ratios at the end.

mod support;

use criterion::{Criterion, Throughput};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{duplex, libp2p, weft, Pair};
use weft_security_noise::{CryptoBackend, Noise};
use weft_upgrader::SecurityUpgrade;

const TRANSFER: usize = 64 << 20;
const DUPLEX_BUFFER: usize = 256 << 10;

thread_local! {
    /// Seconds per iteration for every sample, by benchmark name.
    static SAMPLES: RefCell<BTreeMap<String, Vec<f64>>> = const { RefCell::new(BTreeMap::new()) };
}

fn record(name: &str, iters: u64, elapsed: Duration) -> Duration {
    SAMPLES.with(|samples| {
        samples
            .borrow_mut()
            .entry(name.to_string())
            .or_default()
            .push(elapsed.as_secs_f64() / iters as f64)
    });
    elapsed
}

fn median(name: &str) -> f64 {
    SAMPLES.with(|samples| {
        let mut values = samples.borrow().get(name).cloned().unwrap_or_default();
        values.sort_by(|a, b| a.total_cmp(b));
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    })
}

async fn weft_pair(a: &Noise, b: &Noise) -> Pair {
    support::weft_pair(a, b, duplex(DUPLEX_BUFFER)).await
}

async fn libp2p_pair(a: &libp2p_noise::Config, b: &libp2p_noise::Config) -> Pair {
    support::libp2p_pair(a, b, duplex(DUPLEX_BUFFER)).await
}

/// Sends `TRANSFER` bytes from `pair.0` to `pair.1` and returns the time it took.
async fn transfer(pair: Pair, data: &'static [u8]) -> Duration {
    let (mut sender, mut receiver) = pair;
    let start = Instant::now();
    let send = tokio::spawn(async move {
        for chunk in data.chunks(1 << 20) {
            sender.write_all(chunk).await.unwrap();
        }
        sender.close().await.unwrap();
    });
    let mut buf = vec![0u8; 1 << 20];
    let mut received = 0;
    while received < TRANSFER {
        let n = receiver.read(&mut buf).await.unwrap();
        assert!(n > 0);
        received += n;
    }
    send.await.unwrap();
    start.elapsed()
}

fn handshakes(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("handshake");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    for (name, backend) in [
        ("weft-ring", CryptoBackend::Ring),
        ("weft-rustcrypto", CryptoBackend::RustCrypto),
    ] {
        let (a, b) = (weft(backend), weft(backend));
        group.bench_function(name, |bencher| {
            bencher.iter_custom(|iters| {
                let start = Instant::now();
                runtime.block_on(async {
                    for _ in 0..iters {
                        let (x, y) = duplex(DUPLEX_BUFFER);
                        let (out, inb) = tokio::join!(
                            a.secure_outbound(Box::new(x), None, &[]),
                            b.secure_inbound(Box::new(y), &[]),
                        );
                        out.unwrap();
                        inb.unwrap();
                    }
                });
                record(&format!("handshake/{name}"), iters, start.elapsed())
            })
        });
    }
    // One config per side, cloned per handshake, as rust-libp2p's transport does (and
    // as weft's `Noise` is built once above).
    let (a, b) = (libp2p(), libp2p());
    group.bench_function("libp2p-noise", |bencher| {
        bencher.iter_custom(|iters| {
            let start = Instant::now();
            runtime.block_on(async {
                for _ in 0..iters {
                    libp2p_pair(&a, &b).await;
                }
            });
            record("handshake/libp2p-noise", iters, start.elapsed())
        })
    });
    group.finish();
}

fn throughput(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let data: &'static [u8] = Box::leak(vec![0x5au8; TRANSFER].into_boxed_slice());
    let mut group = c.benchmark_group("throughput_64MiB");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(TRANSFER as u64));
    for (name, backend) in [
        ("weft-ring", CryptoBackend::Ring),
        ("weft-rustcrypto", CryptoBackend::RustCrypto),
    ] {
        let (a, b) = (weft(backend), weft(backend));
        group.bench_function(name, |bencher| {
            bencher.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total +=
                        runtime.block_on(async { transfer(weft_pair(&a, &b).await, data).await });
                }
                record(&format!("throughput/{name}"), iters, total)
            })
        });
    }
    let (a, b) = (libp2p(), libp2p());
    group.bench_function("libp2p-noise", |bencher| {
        bencher.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total +=
                    runtime.block_on(async { transfer(libp2p_pair(&a, &b).await, data).await });
            }
            record("throughput/libp2p-noise", iters, total)
        })
    });
    group.finish();
}

fn raw_chacha(c: &mut Criterion) {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[7u8; 32]).unwrap());
    let mut chunk = vec![0u8; 64 << 10];
    let mut group = c.benchmark_group("raw_chacha20poly1305");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(chunk.len() as u64));
    group.bench_function("ring-seal-64KiB", |bencher| {
        bencher.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&i.to_le_bytes());
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::empty(),
                        &mut chunk,
                    )
                    .unwrap();
                let _ = std::hint::black_box(tag);
            }
            record("raw/ring-seal-64KiB", iters, start.elapsed())
        })
    });
    group.finish();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut criterion = Criterion::default().configure_from_args();
    handshakes(&mut criterion, &runtime);
    throughput(&mut criterion, &runtime);
    raw_chacha(&mut criterion);
    criterion.final_summary();

    let gbps = |seconds: f64, bytes: usize| bytes as f64 / seconds / 1e9;
    println!("\n== weft-noise vs libp2p-noise (medians of this run) ==");
    let libp2p_hs = median("handshake/libp2p-noise");
    for name in ["weft-ring", "weft-rustcrypto"] {
        let ours = median(&format!("handshake/{name}"));
        println!(
            "handshakes/s  {name:<16} {:>8.0}   libp2p-noise {:>8.0}   ratio {:.2}x",
            1.0 / ours,
            1.0 / libp2p_hs,
            libp2p_hs / ours
        );
    }
    let libp2p_tp = median("throughput/libp2p-noise");
    let raw = gbps(median("raw/ring-seal-64KiB"), 64 << 10);
    println!("raw ChaCha20-Poly1305 (ring, one core, 64 KiB seal): {raw:.2} GB/s");
    for name in ["weft-ring", "weft-rustcrypto"] {
        let ours = gbps(median(&format!("throughput/{name}")), TRANSFER);
        let theirs = gbps(libp2p_tp, TRANSFER);
        println!(
            "throughput    {name:<16} {ours:>6.2} GB/s   libp2p-noise {theirs:>6.2} GB/s   ratio {:.2}x   {:.0}% of raw",
            ours / theirs,
            100.0 * ours / raw
        );
    }
}
