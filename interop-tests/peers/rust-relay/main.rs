//! A stock rust-libp2p (0.57) circuit relay v2 server, for weft's relay interop tests:
//!
//! ```text
//! rust-libp2p-relay [--max-circuit-bytes N]
//! ```
//!
//! TCP on 127.0.0.1 (port 0), Noise, yamux; identify, ping and `libp2p-relay`'s
//! server behaviour with its defaults except the byte cap per circuit direction. Its
//! listen address is its external address, so reservations carry it. stdout carries
//! one line, the listen multiaddr with `/p2p/`; logs go to stderr.

use std::error::Error;
use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, relay, tcp, yamux, Multiaddr, SwarmBuilder};

type BoxError = Box<dyn Error + Send + Sync>;

/// The relay's behaviours.
#[derive(NetworkBehaviour)]
struct Behaviour {
    relay: relay::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

fn parse_args(args: &[String]) -> Result<Option<u64>, String> {
    match args {
        [] => Ok(None),
        [flag, value] if flag == "--max-circuit-bytes" => value
            .parse()
            .map(Some)
            .map_err(|e| format!("bad --max-circuit-bytes: {e}")),
        _ => Err(format!(
            "usage: rust-libp2p-relay [--max-circuit-bytes N]; got {}",
            args.join(" ")
        )),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let max_circuit_bytes = parse_args(&args)?;
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| {
            let mut config = relay::Config::default();
            if let Some(bytes) = max_circuit_bytes {
                config.max_circuit_bytes = bytes;
            }
            Behaviour {
                relay: relay::Behaviour::new(key.public().to_peer_id(), config),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/ipfs/0.1.0".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::new(ping::Config::new()),
            }
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    let local_peer = *swarm.local_peer_id();
    swarm.listen_on(
        Multiaddr::empty()
            .with(Protocol::Ip4([127, 0, 0, 1].into()))
            .with(Protocol::Tcp(0)),
    )?;
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { address, .. } => {
                // The relay serves (and advertises) hop only with an external address.
                swarm.add_external_address(address.clone());
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{}", address.with(Protocol::P2p(local_peer)))?;
                stdout.flush()?;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => eprintln!("relay: {event:?}"),
            _ => {}
        }
    }
}
