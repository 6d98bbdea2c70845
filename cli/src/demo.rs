//! `weft demo`: two hosts on 127.0.0.1 in one process, every security x muxer
//! combination: dial, identify, ping, echo 1 MiB, and a table of what happened.

use crate::dial::{dial_with, DialOptions};
use crate::echo;
use crate::options::{build_host, Security};
use std::time::Duration;
use weft_host::{Keypair, Protocol};

const ECHO_BYTES: usize = 1024 * 1024;

struct Row {
    security: Security,
    lazy: bool,
    result: Result<crate::dial::DialReport, String>,
}

/// Runs the demo; fails if any combination fails.
pub async fn run() -> Result<(), String> {
    println!("weft demo: two hosts on 127.0.0.1, TCP, each security protocol with yamux");
    println!("(dial, identify, 3 pings, echo of 1 MiB verified)\n");
    let mut rows = Vec::new();
    for security in Security::ALL {
        for lazy in [true, false] {
            rows.push(Row {
                security,
                lazy,
                result: one(security, lazy).await,
            });
        }
    }
    println!(
        "{:<6} {:<5} {:<12} {:<14} {:>10} {:>9} {:>11}  remote agent",
        "sec", "lazy", "security", "muxer", "connect", "rtt", "echo"
    );
    let mut failed = 0;
    for r in &rows {
        match &r.result {
            Ok(rep) => println!(
                "{:<6} {:<5} {:<12} {:<14} {:>7.2} ms {:>6.3} ms {:>5.0} MiB/s  {}",
                r.security.name(),
                if r.lazy { "yes" } else { "no" },
                rep.security,
                rep.muxer,
                rep.connect_ms,
                rep.rtt_ms,
                rep.echo_mib_per_s,
                rep.agent_version
            ),
            Err(e) => {
                failed += 1;
                println!(
                    "{:<6} {:<5} FAILED: {e}",
                    r.security.name(),
                    if r.lazy { "yes" } else { "no" }
                );
            }
        }
    }
    if failed > 0 {
        return Err(format!("{failed} of {} combinations failed", rows.len()));
    }
    println!("\nall {} combinations passed", rows.len());
    Ok(())
}

async fn one(security: Security, lazy: bool) -> Result<crate::dial::DialReport, String> {
    let server = build_host(Keypair::generate_ed25519(), &[security], lazy)?;
    echo::serve(&server);
    let addrs = server
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?;
    let addr = addrs
        .first()
        .ok_or("no listen address")?
        .clone()
        .with(Protocol::P2p(server.peer_id()));
    let client = build_host(Keypair::generate_ed25519(), &[security], lazy)?;
    let opts = DialOptions {
        addr,
        security: vec![security],
        pings: 3,
        echo_bytes: ECHO_BYTES,
        lazy,
        seed: None,
        timeout: Duration::from_secs(30),
    };
    let result = tokio::time::timeout(opts.timeout, dial_with(&client, &opts))
        .await
        .unwrap_or_else(|_| Err("timed out".into()));
    client.shutdown().await;
    server.shutdown().await;
    result
}
