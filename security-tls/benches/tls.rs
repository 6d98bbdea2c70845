//! weft TLS vs rust-libp2p's `libp2p-tls` in one run: handshakes per second and
//! single-direction throughput over TCP on 127.0.0.1, plus raw AES-128-GCM sealing
//! (ring, one core) for reference. Ratios are printed at the end.
//!
//! `cargo bench -p weft-security-tls --bench tls`
//!
//! The defaults differ: libp2p-tls 0.7 fixes its rustls config on aws-lc-rs with
//! ChaCha20-Poly1305 first and the X25519MLKEM768 hybrid key exchange (a closed
//! config, nothing to tune), weft uses *ring* with AES-128-GCM first and X25519. So
//! weft runs twice: with its defaults (`weft`, a comparison of defaults), and
//! suite-matched (`weft_matched`: `TlsConfig::with_crypto_provider` set to the very
//! provider libp2p-tls builds, aws-lc-rs with its suite order and key exchange
//! groups, a comparison of the code). The bench prints what libp2p-tls negotiated
//! with itself and with a suite-matched weft dialer, so the table says which suites
//! it compares.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use libp2p_core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
use libp2p_identity::Keypair;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};
use weft_security_tls::{TlsConfig, TlsUpgrade};
use weft_upgrader::SecurityUpgrade;

/// Bytes moved per throughput iteration.
const TRANSFER: usize = 32 * 1024 * 1024;
/// Size of each application write.
const WRITE_SIZE: usize = 256 * 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn tcp_pair(listener: &TcpListener) -> (Compat<TcpStream>, Compat<TcpStream>) {
    let addr = listener.local_addr().expect("addr");
    let (dialer, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let dialer = dialer.expect("connect");
    let (accepted, _) = accepted.expect("accept");
    dialer.set_nodelay(true).expect("nodelay");
    accepted.set_nodelay(true).expect("nodelay");
    (dialer.compat(), accepted.compat())
}

/// Sends TRANSFER bytes one way and waits until the reader has them all.
async fn one_way<W, R>(mut writer: W, mut reader: R, payload: &[u8])
where
    W: futures::io::AsyncWrite + Unpin,
    R: futures::io::AsyncRead + Unpin,
{
    let write = async {
        let mut sent = 0;
        while sent < TRANSFER {
            writer.write_all(payload).await.expect("write");
            sent += payload.len();
        }
        writer.flush().await.expect("flush");
        writer
    };
    let read = async {
        let mut buf = vec![0u8; WRITE_SIZE];
        let mut got = 0;
        while got < TRANSFER {
            let n = reader.read(&mut buf).await.expect("read");
            assert!(n > 0, "early EOF");
            got += n;
        }
    };
    let (_writer, ()) = futures::join!(write, read);
}

/// The provider libp2p-tls 0.7 configures: aws-lc-rs's default (key exchange groups
/// X25519MLKEM768 first), with its TLS 1.3 suites in libp2p-tls's order.
fn libp2p_tls_provider() -> Arc<CryptoProvider> {
    use aws_lc_rs::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_AES_128_GCM_SHA256,
        ],
        ..aws_lc_rs::default_provider()
    })
}

/// weft suite-matched to libp2p-tls.
fn matched() -> TlsConfig {
    TlsConfig::default().with_crypto_provider(libp2p_tls_provider())
}

fn handshakes(c: &mut Criterion) {
    let rt = runtime();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let client_key = Keypair::generate_ed25519();
    let server_key = Keypair::generate_ed25519();
    let server_id = server_key.public().to_peer_id();
    let mut group = c.benchmark_group("tls_handshake");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(6));

    let weft_client = TlsUpgrade::new(client_key.clone());
    let weft_server = TlsUpgrade::new(server_key.clone());
    group.bench_function("weft", |b| {
        b.to_async(&rt).iter(|| async {
            let (d, l) = tcp_pair(&listener).await;
            let (c, s) = tokio::join!(
                weft_client.secure_outbound(Box::new(d), Some(server_id), &[]),
                weft_server.secure_inbound(Box::new(l), &[]),
            );
            c.expect("client");
            s.expect("server");
        })
    });

    let fresh = TlsConfig::default().with_certificate_lifetime(Duration::ZERO);
    let weft_client_fresh = TlsUpgrade::with_config(client_key.clone(), fresh.clone());
    let weft_server_fresh = TlsUpgrade::with_config(server_key.clone(), fresh);
    group.bench_function("weft_fresh_cert", |b| {
        b.to_async(&rt).iter(|| async {
            let (d, l) = tcp_pair(&listener).await;
            let (c, s) = tokio::join!(
                weft_client_fresh.secure_outbound(Box::new(d), Some(server_id), &[]),
                weft_server_fresh.secure_inbound(Box::new(l), &[]),
            );
            c.expect("client");
            s.expect("server");
        })
    });

    let weft_client_matched = TlsUpgrade::with_config(client_key.clone(), matched());
    let weft_server_matched = TlsUpgrade::with_config(server_key.clone(), matched());
    group.bench_function("weft_matched", |b| {
        b.to_async(&rt).iter(|| async {
            let (d, l) = tcp_pair(&listener).await;
            let (c, s) = tokio::join!(
                weft_client_matched.secure_outbound(Box::new(d), Some(server_id), &[]),
                weft_server_matched.secure_inbound(Box::new(l), &[]),
            );
            c.expect("client");
            s.expect("server");
        })
    });

    // libp2p-tls makes its certificates in Config::new and a swarm clones the config
    // per connection, so the fair equivalent is one Config, cloned per handshake.
    let libp2p_client = libp2p_tls::Config::new(&client_key).expect("config");
    let libp2p_server = libp2p_tls::Config::new(&server_key).expect("config");
    rt.block_on(print_libp2p_negotiated(
        &listener,
        &libp2p_client,
        &libp2p_server,
    ));
    rt.block_on(print_matched_negotiated(
        &listener,
        &weft_client_matched,
        &libp2p_server,
        server_id,
    ));
    group.bench_function("libp2p", |b| {
        b.to_async(&rt).iter(|| async {
            let (d, l) = tcp_pair(&listener).await;
            let (c, s) = tokio::join!(
                libp2p_client.clone().upgrade_outbound(d, "/tls/1.0.0"),
                libp2p_server.clone().upgrade_inbound(l, "/tls/1.0.0"),
            );
            c.expect("client");
            s.expect("server");
        })
    });
    group.finish();
}

/// One libp2p-tls handshake, printing the suite and key exchange group it negotiated.
async fn print_libp2p_negotiated(
    listener: &TcpListener,
    client: &libp2p_tls::Config,
    server: &libp2p_tls::Config,
) {
    let (d, l) = tcp_pair(listener).await;
    let (c, s) = tokio::join!(
        client.clone().upgrade_outbound(d, "/tls/1.0.0"),
        server.clone().upgrade_inbound(l, "/tls/1.0.0"),
    );
    let (c, _s) = (c.expect("client").1, s.expect("server").1);
    let (_, state) = c.get_ref();
    println!(
        "libp2p-tls negotiated {:?} with key exchange {:?}",
        state.negotiated_cipher_suite().map(|s| s.suite()),
        state.negotiated_key_exchange_group().map(|g| g.name()),
    );
}

/// One handshake of a suite-matched weft dialer with a libp2p-tls listener, printing
/// what the listener negotiated.
async fn print_matched_negotiated(
    listener: &TcpListener,
    client: &TlsUpgrade,
    server: &libp2p_tls::Config,
    server_id: libp2p_identity::PeerId,
) {
    let (d, l) = tcp_pair(listener).await;
    let (c, s) = tokio::join!(
        client.secure_outbound(Box::new(d), Some(server_id), &[]),
        server.clone().upgrade_inbound(l, "/tls/1.0.0"),
    );
    c.expect("client");
    let s = s.expect("server").1;
    let (_, state) = s.get_ref();
    println!(
        "suite-matched weft with libp2p-tls negotiated {:?} with key exchange {:?}",
        state.negotiated_cipher_suite().map(|s| s.suite()),
        state.negotiated_key_exchange_group().map(|g| g.name()),
    );
}

/// One-way throughput of a pair of weft upgrades, as criterion's custom timing.
fn weft_throughput(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    (client, server): (&TlsUpgrade, &TlsUpgrade),
    listener: &TcpListener,
    payload: &[u8],
) {
    group.bench_function(BenchmarkId::new(name, "32MiB"), |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let (d, l) = tcp_pair(listener).await;
            let (c, s) = tokio::join!(
                client.secure_outbound(Box::new(d), None, &[]),
                server.secure_inbound(Box::new(l), &[]),
            );
            let (mut c, mut s) = (c.expect("client").io, s.expect("server").io);
            let start = std::time::Instant::now();
            for _ in 0..iters {
                one_way(&mut c, &mut s, payload).await;
            }
            start.elapsed()
        })
    });
}

fn throughput(c: &mut Criterion) {
    let rt = runtime();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let client_key = Keypair::generate_ed25519();
    let server_key = Keypair::generate_ed25519();
    let payload = vec![0x5au8; WRITE_SIZE];
    let mut group = c.benchmark_group("tls_throughput");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(TRANSFER as u64));

    let weft_client = TlsUpgrade::new(client_key.clone());
    let weft_server = TlsUpgrade::new(server_key.clone());
    let pair = (&weft_client, &weft_server);
    weft_throughput(&mut group, &rt, "weft", pair, &listener, &payload);
    let matched_client = TlsUpgrade::with_config(client_key.clone(), matched());
    let matched_server = TlsUpgrade::with_config(server_key.clone(), matched());
    let pair = (&matched_client, &matched_server);
    weft_throughput(&mut group, &rt, "weft_matched", pair, &listener, &payload);

    let libp2p_client = libp2p_tls::Config::new(&client_key).expect("config");
    let libp2p_server = libp2p_tls::Config::new(&server_key).expect("config");
    group.bench_function(BenchmarkId::new("libp2p", "32MiB"), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (libp2p_client, libp2p_server, listener, payload) =
                (&libp2p_client, &libp2p_server, &listener, &payload);
            async move {
                let (d, l) = tcp_pair(listener).await;
                let (c, s) = tokio::join!(
                    libp2p_client.clone().upgrade_outbound(d, "/tls/1.0.0"),
                    libp2p_server.clone().upgrade_inbound(l, "/tls/1.0.0"),
                );
                let (mut c, mut s) = (c.expect("client").1, s.expect("server").1);
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    one_way(&mut c, &mut s, payload).await;
                }
                start.elapsed()
            }
        })
    });
    group.finish();
}

fn raw_aes_gcm(c: &mut Criterion) {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7u8; 16]).expect("key"));
    let mut record = vec![0x5au8; 16 * 1024];
    let mut group = c.benchmark_group("raw_aes_128_gcm");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Bytes(TRANSFER as u64));
    group.bench_function("seal_16KiB_records", |b| {
        b.iter(|| {
            let mut counter = 0u64;
            for _ in 0..TRANSFER / record.len() {
                counter += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&counter.to_be_bytes());
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from([23u8, 3, 3, 64, 17]),
                        &mut record,
                    )
                    .expect("seal");
                let _ = std::hint::black_box(tag);
            }
        })
    });
    group.finish();
}

/// The median time of one criterion benchmark, from its saved estimates.
fn median_ns(id: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("criterion").join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let median = text.split("\"median\"").nth(1)?;
    let estimate = median.split("\"point_estimate\":").nth(1)?;
    estimate.split([',', '}']).next()?.trim().parse().ok()
}

fn print_ratios() {
    let hs = |id| median_ns(&format!("tls_handshake/{id}"));
    if let (Some(weft), Some(fresh), Some(matched), Some(libp2p)) = (
        hs("weft"),
        hs("weft_fresh_cert"),
        hs("weft_matched"),
        hs("libp2p"),
    ) {
        println!("\n== handshakes/s (client+server on one machine, median) ==");
        println!("weft (cert reused 60 s): {:>8.0}/s", 1e9 / weft);
        println!("weft (fresh cert):       {:>8.0}/s", 1e9 / fresh);
        println!("weft (suite-matched):    {:>8.0}/s", 1e9 / matched);
        println!("libp2p-tls:              {:>8.0}/s", 1e9 / libp2p);
        println!(
            "ratio weft/libp2p: {:.2}x, weft fresh/libp2p: {:.2}x, suite-matched: {:.2}x",
            libp2p / weft,
            libp2p / fresh,
            libp2p / matched
        );
    }
    let tp = |id| median_ns(id).map(|ns| TRANSFER as f64 / ns * 1e9 / (1024.0 * 1024.0));
    if let (Some(weft), Some(matched), Some(libp2p), Some(raw)) = (
        tp("tls_throughput/weft/32MiB"),
        tp("tls_throughput/weft_matched/32MiB"),
        tp("tls_throughput/libp2p/32MiB"),
        tp("raw_aes_128_gcm/seal_16KiB_records"),
    ) {
        println!("\n== one-direction throughput (median) ==");
        println!("weft:          {weft:>8.0} MiB/s");
        println!("weft matched:  {matched:>8.0} MiB/s");
        println!("libp2p-tls:    {libp2p:>8.0} MiB/s");
        println!("raw AES-GCM:   {raw:>8.0} MiB/s (ring seal, one core)");
        println!(
            "ratio weft/libp2p: {:.2}x, suite-matched: {:.2}x, weft/raw AES-GCM: {:.0}%",
            weft / libp2p,
            matched / libp2p,
            100.0 * weft / raw
        );
    }
}

criterion_group!(benches, handshakes, throughput, raw_aes_gcm);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratios();
}
