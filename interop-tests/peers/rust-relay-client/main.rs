//! A stock rust-libp2p (0.57) circuit relay v2 client, for weft's relay interop tests:
//!
//! ```text
//! rust-libp2p-relay-client listen RELAY_MULTIADDR   # reserve, print the circuit address
//! rust-libp2p-relay-client dial CIRCUIT_MULTIADDR   # connect through it, ping, exit 0
//! ```
//!
//! TCP and `libp2p-relay`'s client transport, Noise, yamux; identify and ping.
//! `listen` prints its circuit address (with `/p2p/`) once the relay accepted the
//! reservation, then serves; `dial` prints `ping <micros>` after the first successful
//! ping of the target and exits 0 (1 on failure or after 30 s). Logs go to stderr.

use std::error::Error;
use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, relay, tcp, yamux, Multiaddr, PeerId, SwarmBuilder};

type BoxError = Box<dyn Error + Send + Sync>;

/// The client's behaviours.
#[derive(NetworkBehaviour)]
struct Behaviour {
    relay_client: relay::client::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, addr) = match args.as_slice() {
        [command, addr] if command == "listen" => (true, addr.parse::<Multiaddr>()?),
        [command, addr] if command == "dial" => (false, addr.parse::<Multiaddr>()?),
        _ => return Err("usage: rust-libp2p-relay-client listen|dial MULTIADDR".into()),
    };
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_relay_client(noise::Config::new, yamux::Config::default)?
        .with_behaviour(|key, relay_client| Behaviour {
            relay_client,
            identify: identify::Behaviour::new(identify::Config::new(
                "/ipfs/0.1.0".into(),
                key.public(),
            )),
            ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(1))),
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    let local_peer = *swarm.local_peer_id();
    let target: Option<PeerId> = match addr.iter().last() {
        Some(Protocol::P2p(peer)) if !listen => Some(peer),
        _ => None,
    };
    if listen {
        swarm.listen_on(addr.with(Protocol::P2pCircuit))?;
    } else {
        swarm.dial(addr)?;
    }
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    loop {
        let event = tokio::select! {
            _ = &mut deadline, if !listen => return Err("no ping through the relay in 30 s".into()),
            event = swarm.select_next_some() => event,
        };
        match event {
            SwarmEvent::NewListenAddr { address, .. } if listen => {
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{}", address.with(Protocol::P2p(local_peer)))?;
                stdout.flush()?;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            })) if Some(peer) == target => {
                println!("ping {}", rtt.as_micros());
                return Ok(());
            }
            SwarmEvent::OutgoingConnectionError { error, .. } if !listen => {
                return Err(format!("dial failed: {error}").into());
            }
            other => eprintln!("{other:?}"),
        }
    }
}
