//! `weft demo`: two hosts on 127.0.0.1 in one process, every security x muxer
//! combination over TCP and QUIC (its own TLS and streams): dial, identify, ping,
//! echo 1 MiB, and a table of what happened.

use crate::dial::{dial_with, DialOptions};
use crate::echo;
use crate::options::{build_host, Security};
use std::time::Duration;
use weft_host::{Keypair, Protocol};

const ECHO_BYTES: usize = 1024 * 1024;

/// How the two hosts of one row connect.
#[derive(Debug, Clone, Copy)]
enum Transport {
    /// TCP, upgraded with the row's security protocol and yamux.
    Tcp(Security),
    /// QUIC: TLS 1.3 and streams of its own.
    Quic,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp(_) => "tcp",
            Transport::Quic => "quic",
        }
    }

    fn listen_addr(self) -> &'static str {
        match self {
            Transport::Tcp(_) => "/ip4/127.0.0.1/tcp/0",
            Transport::Quic => "/ip4/127.0.0.1/udp/0/quic-v1",
        }
    }

    /// The security protocol the hosts are built with (QUIC ignores it).
    fn security(self) -> Security {
        match self {
            Transport::Tcp(s) => s,
            Transport::Quic => Security::Tls,
        }
    }
}

struct Row {
    transport: Transport,
    lazy: bool,
    result: Result<crate::dial::DialReport, String>,
}

/// Runs the demo; fails if any combination fails.
pub async fn run() -> Result<(), String> {
    println!("weft demo: two hosts on 127.0.0.1: TCP with each security protocol and yamux,");
    println!("and QUIC (dial, identify, 3 pings, echo of 1 MiB verified)\n");
    let mut transports: Vec<Transport> = Security::ALL.into_iter().map(Transport::Tcp).collect();
    transports.push(Transport::Quic);
    let mut rows = Vec::new();
    for transport in transports {
        for lazy in [true, false] {
            rows.push(Row {
                transport,
                lazy,
                result: one(transport, lazy).await,
            });
        }
    }
    println!(
        "{:<5} {:<5} {:<12} {:<14} {:>10} {:>9} {:>11}  remote agent",
        "via", "lazy", "security", "muxer", "connect", "rtt", "echo"
    );
    let mut failed = 0;
    for r in &rows {
        match &r.result {
            Ok(rep) => println!(
                "{:<5} {:<5} {:<12} {:<14} {:>7.2} ms {:>6.3} ms {:>5.0} MiB/s  {}",
                r.transport.name(),
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
                    "{:<5} {:<5} FAILED: {e}",
                    r.transport.name(),
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

async fn one(transport: Transport, lazy: bool) -> Result<crate::dial::DialReport, String> {
    let security = transport.security();
    let server = build_host(Keypair::generate_ed25519(), &[security], lazy)?;
    echo::serve(&server);
    let addrs = server
        .listen(
            &transport
                .listen_addr()
                .parse()
                .map_err(|e| format!("{e}"))?,
        )
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
        reconnect: 0,
        listen: Vec::new(),
        connect: Vec::new(),
        public: Vec::new(),
    };
    let result = tokio::time::timeout(opts.timeout, dial_with(&client, &opts))
        .await
        .unwrap_or_else(|_| Err("timed out".into()));
    client.shutdown().await;
    server.shutdown().await;
    result
}
