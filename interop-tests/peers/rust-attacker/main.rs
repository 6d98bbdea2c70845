//! A hostile rust-libp2p 0.57 peer, for weft's hostile-peer tests and bench: stock
//! swarms (TCP with Noise and yamux, or QUIC, as the address says; identify, ping) that
//! dial a listener, open streams of
//! `/echo/1.0.0`, write into each without end and never read: whatever the listener
//! buffers for them (its unread receive windows, the echo it cannot send back) stays
//! pinned.
//!
//! ```text
//! rust-libp2p-attacker MULTIADDR [--connections 4] [--streams 64]
//! ```
//!
//! Each connection comes from its own swarm with its own peer id. stdout:
//! `ready <connections> <streams>` once every stream is open, then every 250 ms
//! `progress <bytes written> <streams that failed>`. Runs until killed; exits 1 if a
//! connection fails before its streams are open.

#[path = "../rust/echo.rs"]
mod echo;

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr, SwarmBuilder};

/// Size of each write.
const CHUNK: usize = 64 * 1024;

/// A stock behaviour set, plus the stream opener.
#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    echo: echo::Behaviour,
}

/// Shared counters of all connections.
#[derive(Default)]
struct Counters {
    open: AtomicUsize,
    written: AtomicU64,
    failed: AtomicU64,
}

struct Args {
    addr: Multiaddr,
    connections: usize,
    streams: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut addr = None;
    let mut connections = 4;
    let mut streams = 64;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--connections" => {
                connections = value(&arg)?.parse().map_err(|e| format!("{arg}: {e}"))?
            }
            "--streams" => streams = value(&arg)?.parse().map_err(|e| format!("{arg}: {e}"))?,
            other if other.starts_with("--") => return Err(format!("unknown flag {other}")),
            other => addr = Some(other.parse().map_err(|e| format!("bad multiaddr: {e}"))?),
        }
    }
    Ok(Args {
        addr: addr
            .ok_or("usage: rust-libp2p-attacker MULTIADDR [--connections N] [--streams N]")?,
        connections,
        streams,
    })
}

/// Writes into `stream` until it fails; never reads.
async fn write_forever(mut stream: libp2p::Stream, counters: Arc<Counters>) {
    let chunk = vec![0x5a; CHUNK];
    loop {
        match stream.write(&chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                counters.written.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
    counters.failed.fetch_add(1, Ordering::Relaxed);
    // Keep the stream (and its unread receive buffer) alive: a hostile peer never
    // lets go on its own.
    std::future::pending::<()>().await;
}

/// One connection from a fresh identity; never returns unless the dial fails.
async fn attack(addr: Multiaddr, streams: usize, counters: Arc<Counters>) -> Result<(), String> {
    let Some(Protocol::P2p(remote)) = addr.iter().last() else {
        return Err(format!("{addr} does not end in /p2p/<peer id>"));
    };
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| e.to_string())?
        .with_quic()
        .with_behaviour(|key| Behaviour {
            identify: identify::Behaviour::new(identify::Config::new(
                "/ipfs/0.1.0".into(),
                key.public(),
            )),
            ping: ping::Behaviour::default(),
            echo: echo::Behaviour::default(),
        })
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    swarm.dial(addr).map_err(|e| format!("dial: {e}"))?;
    let mut opened = 0;
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == remote => {
                for _ in 0..streams {
                    swarm.behaviour_mut().echo.open_stream(remote);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Echo(echo::Event::Outbound { peer, stream }))
                if peer == remote =>
            {
                opened += 1;
                counters.open.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(write_forever(stream, Arc::clone(&counters)));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Echo(echo::Event::OutboundFailed {
                peer,
                error,
            })) if opened < streams => {
                return Err(format!("opening a stream to {peer} failed: {error}"))
            }
            SwarmEvent::Behaviour(BehaviourEvent::Echo(echo::Event::Inbound { peer, stream })) => {
                // Not ours to serve: the stream is reset.
                drop(stream);
                eprintln!("dropped an inbound echo stream from {peer}");
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                return Err(format!("connect: {error}"))
            }
            SwarmEvent::ConnectionClosed { cause, .. } if opened < streams => {
                return Err(format!("connection closed early: {cause:?}"))
            }
            _ => {}
        }
    }
}

fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    // Nothing sensible is left to do if stdout is gone.
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let counters = Arc::new(Counters::default());
    let (failed, mut failures) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..args.connections {
        let addr = args.addr.clone();
        let (counters, failed) = (Arc::clone(&counters), failed.clone());
        tokio::spawn(async move {
            if let Err(e) = attack(addr, args.streams, counters).await {
                let _ = failed.send(e);
            }
        });
    }
    let total = args.connections * args.streams;
    let mut ready = false;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            Some(e) = failures.recv(), if !ready => {
                eprintln!("attack failed: {e}");
                std::process::exit(1);
            }
            _ = tick.tick() => {}
        }
        if !ready && counters.open.load(Ordering::Relaxed) >= total {
            ready = true;
            say(&format!("ready {} {}", args.connections, args.streams));
        }
        say(&format!(
            "progress {} {}",
            counters.written.load(Ordering::Relaxed),
            counters.failed.load(Ordering::Relaxed)
        ));
    }
}
