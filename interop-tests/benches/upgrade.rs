//! Full connection upgrades per second over loopback TCP (TCP connect +
//! multistream-select + Noise XX + yamux, both sides complete), weft against
//! rust-libp2p's upgrade stack (`libp2p` 0.57, `Version::V1Lazy`), sequential and 64
//! in parallel. Prints the ratios at the end.
//!
//! Run: `cargo bench -p weft-interop-tests --bench upgrade`

use criterion::{criterion_group, Criterion};
use futures::StreamExt;
use libp2p::core::muxing::{StreamMuxerBox, StreamMuxerExt};
use libp2p::core::transport::{Boxed, DialOpts, ListenerId, PortUse, TransportEvent};
use libp2p::core::upgrade::Version;
use libp2p::core::Endpoint;
use libp2p::{Multiaddr, PeerId, Transport};
use libp2p_identity::Keypair;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, Mutex};
use tokio_util::compat::TokioAsyncReadCompatExt;
use weft_upgrader::Upgrader;

const PARALLEL: usize = 64;

fn weft_upgrader(keypair: &Keypair) -> Upgrader {
    Upgrader::builder()
        .security(Arc::new(weft_security_noise::Noise::new(keypair).unwrap()))
        .muxer(Arc::new(weft_muxer_yamux::Yamux::new()))
        .build()
        .unwrap()
}

fn rust_transport(keypair: &Keypair) -> Boxed<(PeerId, StreamMuxerBox)> {
    libp2p::tcp::tokio::Transport::new(libp2p::tcp::Config::default().nodelay(true))
        .upgrade(Version::V1Lazy)
        .authenticate(libp2p::noise::Config::new(keypair).unwrap())
        .multiplex(libp2p::yamux::Config::default())
        .boxed()
}

/// Something that can run `n` full upgrades at once and wait for both sides.
trait Bench: Send + Sync {
    fn run(&self, n: usize) -> futures::future::BoxFuture<'_, ()>;
}

/// weft on both sides: a listener task upgrades every accepted connection and
/// reports each completed upgrade.
struct Weft {
    addr: SocketAddr,
    dialer: Upgrader,
    done: Mutex<mpsc::UnboundedReceiver<()>>,
}

impl Weft {
    async fn start() -> Self {
        let listener_upgrader = weft_upgrader(&Keypair::generate_ed25519());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, done) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                tcp.set_nodelay(true).unwrap();
                let upgrader = listener_upgrader.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let connection = upgrader.upgrade_inbound(Box::new(tcp.compat())).await;
                    assert!(connection.is_ok(), "weft listener: {connection:?}");
                    let _ = tx.send(());
                });
            }
        });
        Weft {
            addr,
            dialer: weft_upgrader(&Keypair::generate_ed25519()),
            done: Mutex::new(done),
        }
    }
}

impl Bench for Weft {
    fn run(&self, n: usize) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let dials = (0..n).map(|_| async {
                let tcp = TcpStream::connect(self.addr).await.unwrap();
                tcp.set_nodelay(true).unwrap();
                self.dialer
                    .upgrade_outbound(Box::new(tcp.compat()), None)
                    .await
                    .unwrap()
            });
            let connections = futures::future::join_all(dials).await;
            let mut done = self.done.lock().await;
            for _ in 0..n {
                done.recv().await.unwrap();
            }
            drop(connections);
        })
    }
}

/// rust-libp2p on both sides.
struct Rust {
    addr: Multiaddr,
    dialer: std::sync::Mutex<Boxed<(PeerId, StreamMuxerBox)>>,
    done: Mutex<mpsc::UnboundedReceiver<()>>,
}

impl Rust {
    async fn start() -> Self {
        let mut listener = rust_transport(&Keypair::generate_ed25519());
        listener
            .listen_on(ListenerId::next(), "/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let addr = match listener.next().await.unwrap() {
            TransportEvent::NewAddress { listen_addr, .. } => listen_addr,
            other => panic!("unexpected {other:?}"),
        };
        let (tx, done) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(event) = listener.next().await {
                if let TransportEvent::Incoming { upgrade, .. } = event {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let connection = upgrade.await;
                        assert!(connection.is_ok(), "rust-libp2p listener failed");
                        let _ = tx.send(());
                    });
                }
            }
        });
        Rust {
            addr,
            dialer: std::sync::Mutex::new(rust_transport(&Keypair::generate_ed25519())),
            done: Mutex::new(done),
        }
    }
}

impl Bench for Rust {
    fn run(&self, n: usize) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let dials: Vec<_> = (0..n)
                .map(|_| {
                    let opts = DialOpts {
                        role: Endpoint::Dialer,
                        port_use: PortUse::New,
                    };
                    self.dialer
                        .lock()
                        .unwrap()
                        .dial(self.addr.clone(), opts)
                        .unwrap()
                })
                .collect();
            let connections = futures::future::join_all(dials).await;
            // With `V1Lazy` the dialer's muxer proposal leaves when its muxer is first
            // polled: drive each connection until the listener side completed.
            let drivers: Vec<_> = connections
                .into_iter()
                .map(|connection| {
                    let (_, mut muxer) = connection.expect("rust-libp2p dialer failed");
                    tokio::spawn(futures::future::poll_fn(move |cx| loop {
                        match muxer.poll_unpin(cx) {
                            Poll::Ready(Ok(_)) => continue,
                            Poll::Ready(Err(_)) => return Poll::Ready(()),
                            Poll::Pending => return Poll::Pending,
                        }
                    }))
                })
                .collect();
            let mut done = self.done.lock().await;
            for _ in 0..n {
                done.recv().await.unwrap();
            }
            for driver in drivers {
                driver.abort();
            }
        })
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let weft = rt.block_on(Weft::start());
    let rust = rt.block_on(Rust::start());
    let mut group = c.benchmark_group("upgrade_noise_yamux");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    for (name, bench) in [("weft", &weft as &dyn Bench), ("rust-libp2p", &rust)] {
        group.bench_function(format!("{name}/sequential"), |b| {
            b.to_async(&rt).iter(|| bench.run(1))
        });
        group.bench_function(format!("{name}/parallel_{PARALLEL}"), |b| {
            b.to_async(&rt).iter(|| bench.run(PARALLEL))
        });
    }
    group.finish();
}

/// Upgrades per second: median of `batches` runs of `n` upgrades each.
fn rate(rt: &Runtime, bench: &dyn Bench, n: usize, batches: usize) -> f64 {
    let mut rates: Vec<f64> = (0..batches)
        .map(|_| {
            let start = Instant::now();
            rt.block_on(bench.run(n));
            n as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    rates[rates.len() / 2]
}

/// The side-by-side summary: the same workloads, alternating implementations.
fn summary() {
    let rt = runtime();
    let weft = rt.block_on(Weft::start());
    let rust = rt.block_on(Rust::start());
    println!("\nupgrades per second (TCP + mss + Noise XX + yamux, loopback, 2 worker threads; median of batches)");
    println!(
        "{:<14} {:>12} {:>12} {:>8}",
        "workload", "weft", "rust-libp2p", "ratio"
    );
    for (workload, n, batches) in [("sequential", 1, 200), ("parallel 64", PARALLEL, 15)] {
        // Warm up both.
        rate(&rt, &weft, n, 3);
        rate(&rt, &rust, n, 3);
        let w = rate(&rt, &weft, n, batches);
        let r = rate(&rt, &rust, n, batches);
        println!("{workload:<14} {w:>12.0} {r:>12.0} {:>7.2}x", w / r);
    }
}

criterion_group!(upgrade, benches);

fn main() {
    upgrade();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
