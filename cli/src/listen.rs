//! `weft listen`: serve ping, identify, echo (and perf with `--perf`) until Ctrl-C,
//! printing each address listened on (also those an interface gains later);
//! with `--metrics ADDR`, Prometheus metrics at `http://ADDR/metrics`.

use crate::echo;
use crate::metrics::Exporter;
use crate::options::{build_host_with, keypair, Security};
use std::net::SocketAddr;
use weft_host::relay::RelayConfig;
use weft_host::{Multiaddr, Protocol};
use weft_resource_manager::Limits;

/// What `weft listen` (or `weft relay`) serves, and where.
pub struct ListenOptions {
    /// Addresses to listen on (default `/ip4/127.0.0.1/tcp/0`).
    pub addrs: Vec<Multiaddr>,
    /// Relays (addresses ending in `/p2p/<relay>`) to reserve a slot at and listen
    /// through.
    pub relays: Vec<Multiaddr>,
    /// Peers to connect to (`--connect`) after listening directly and before
    /// reserving at the relays: more observers of our address.
    pub connect: Vec<Multiaddr>,
    /// Whether to serve circuit relay v2 (`weft relay`).
    pub relay_server: bool,
    /// Whether to serve `/perf/1.0.0`.
    pub perf: bool,
    /// Where to serve Prometheus metrics.
    pub metrics: Option<SocketAddr>,
    /// Whether to serve AutoNAT v2.
    pub autonat_server: bool,
    /// Address classes taken as public (test networks).
    pub public: Vec<weft_host::dial::classify::AddrClass>,
}

/// Listens, prints each full address on stdout, serves until Ctrl-C; `/perf/1.0.0`
/// only when `perf` is set, circuit relay v2 when `relay_server` is; everything it
/// serves stays within `limits`; metrics on `metrics` when given (its address is
/// printed on stderr as `metrics: http://ADDR/metrics`).
pub async fn run(
    options: ListenOptions,
    security: Vec<Security>,
    seed: Option<String>,
    limits: Limits,
) -> Result<(), String> {
    let ListenOptions {
        addrs,
        relays,
        connect,
        relay_server,
        perf,
        metrics,
        autonat_server,
        public,
    } = options;
    tracing::info!(
        memory = limits.system.memory,
        fds = limits.system.fds,
        "resource limits"
    );
    let exporter = metrics.map(|_| Exporter::new());
    let host = build_host_with(keypair(seed.as_deref())?, &security, true, limits, |b| {
        let b = if relay_server {
            b.relay_server(RelayConfig::default())
        } else {
            b
        };
        let b = if autonat_server {
            b.autonat_server(weft_host::autonat::ServerConfig::default())
        } else {
            b
        };
        let classifier = weft_host::dial::classify::Classifier::new().with_public(&public);
        let b = b.dial_config(weft_host::DialConfig::default().with_classifier(classifier));
        match &exporter {
            Some(e) => e.observe(b),
            None => b,
        }
    })?;
    if let (Some(exporter), Some(addr)) = (exporter, metrics) {
        let bound = exporter
            .serve(addr, &host)
            .await
            .map_err(|e| format!("cannot serve metrics: {e}"))?;
        eprintln!("metrics: http://{bound}/metrics");
    }
    echo::serve(&host);
    if perf {
        host.enable_perf();
    }
    let addrs = if addrs.is_empty() && relays.is_empty() {
        DEFAULT_LISTEN
            .iter()
            .map(|a| a.parse().map_err(|e| format!("{e}")))
            .collect::<Result<Vec<Multiaddr>, String>>()?
    } else {
        addrs
    };
    // Direct addresses first (so dials leave from their ports), then the observers,
    // then the relays: a relayed address is printed once our observations are in.
    let circuits: Vec<Multiaddr> = relays
        .into_iter()
        .map(|r| r.with(Protocol::P2pCircuit))
        .collect();
    for addr in &addrs {
        listen_on(&host, addr).await?;
    }
    crate::observers::connect(&host, &connect).await;
    for addr in &circuits {
        listen_on(&host, addr).await?;
    }
    let announcer = tokio::spawn(announce_changes(host.clone()));
    tracing::info!(peer = %host.peer_id(), "serving; Ctrl-C to stop");
    wait_for_signal().await;
    announcer.abort();
    tracing::info!("shutting down");
    host.shutdown().await;
    Ok(())
}

/// Listens on `addr` and prints each address it gave, with our peer id.
async fn listen_on(host: &weft_host::Host, addr: &Multiaddr) -> Result<(), String> {
    let actual = host
        .listen(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    for a in actual {
        print_addr(&a.with(Protocol::P2p(host.peer_id())));
    }
    Ok(())
}

/// What `weft listen` listens on without `--listen`: TCP first (the first line
/// printed, which scripts read), then QUIC, both on an ephemeral loopback port.
const DEFAULT_LISTEN: &[&str] = &["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"];

/// Prints a full address on stdout as one line. A reader that went away (a script
/// that took the first line and closed the pipe) is no error: serving goes on.
fn print_addr(addr: &Multiaddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{addr}").and_then(|()| out.flush());
}

/// Prints each address gained later (an interface of a `0.0.0.0` or `::` listener got
/// one) on stdout, as the first ones were printed, and each one lost on stderr.
async fn announce_changes(host: weft_host::Host) {
    use tokio::sync::broadcast::error::RecvError;
    let mut events = host.subscribe();
    loop {
        match events.recv().await {
            Ok(weft_host::Event::Listen { addrs }) => {
                for a in addrs {
                    print_addr(&a.with(Protocol::P2p(host.peer_id())));
                }
            }
            Ok(weft_host::Event::ListenClose { addrs }) => {
                for a in addrs {
                    eprintln!("no longer listening on {a}");
                }
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
