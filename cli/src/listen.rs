//! `weft listen`: serve ping, identify, echo (and perf with `--perf`) until Ctrl-C.

use crate::echo;
use crate::options::{build_host_within, keypair, Security};
use weft_host::{Multiaddr, Protocol};
use weft_resource_manager::Limits;

/// Listens, prints each full address on stdout, serves until Ctrl-C; `/perf/1.0.0`
/// only when `perf` is set; everything it serves stays within `limits`.
pub async fn run(
    addrs: Vec<Multiaddr>,
    security: Vec<Security>,
    seed: Option<String>,
    perf: bool,
    limits: Limits,
) -> Result<(), String> {
    tracing::info!(
        memory = limits.system.memory,
        fds = limits.system.fds,
        "resource limits"
    );
    let host = build_host_within(keypair(seed.as_deref())?, &security, true, limits)?;
    echo::serve(&host);
    if perf {
        host.enable_perf();
    }
    let addrs = if addrs.is_empty() {
        vec!["/ip4/127.0.0.1/tcp/0".parse().map_err(|e| format!("{e}"))?]
    } else {
        addrs
    };
    for addr in &addrs {
        let actual = host
            .listen(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        for a in actual {
            println!("{}", a.with(Protocol::P2p(host.peer_id())));
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tracing::info!(peer = %host.peer_id(), "serving; Ctrl-C to stop");
    wait_for_signal().await;
    tracing::info!("shutting down");
    host.shutdown().await;
    Ok(())
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
