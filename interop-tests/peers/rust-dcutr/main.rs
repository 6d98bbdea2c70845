//! A stock rust-libp2p (0.57) peer with DCUtR (`libp2p-dcutr`), for weft's hole
//! punching interop:
//!
//! ```text
//! rust-libp2p-dcutr listen tcp|quic RELAY_MULTIADDR  # B: reserve, print the circuit address
//! rust-libp2p-dcutr dial tcp|quic CIRCUIT_MULTIADDR  # A: dial B through the relay
//! ```
//!
//! Either way it first listens on 127.0.0.1 (TCP or QUIC, as asked), so that it has
//! a direct address to punch to. rust-libp2p's DCUtR sends only the addresses others
//! observed (identify), so reach the relay over the transport to punch with. TCP with Noise and
//! yamux, QUIC; relay client, identify, ping and DCUtR. It prints the circuit
//! address (`listen`), then `dcutr ok <remote address>` when a hole punch produced a
//! direct connection, or `dcutr failed <error>`; it exits 0 two seconds after a success, 1
//! after 60 s without one. Logs go to stderr.

use std::collections::HashMap;
use std::error::Error;
use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{dcutr, identify, noise, ping, relay, tcp, yamux, Multiaddr, SwarmBuilder};

type BoxError = Box<dyn Error + Send + Sync>;

/// The peer's behaviours.
#[derive(NetworkBehaviour)]
struct Behaviour {
    relay_client: relay::client::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    dcutr: dcutr::Behaviour,
}

fn say(line: &str) -> Result<(), BoxError> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, transport, addr) = match args.as_slice() {
        [command, transport, addr] if command == "listen" || command == "dial" => (
            command == "listen",
            transport.clone(),
            addr.parse::<Multiaddr>()?,
        ),
        _ => return Err("usage: rust-libp2p-dcutr listen|dial tcp|quic MULTIADDR".into()),
    };
    let direct: Multiaddr = match transport.as_str() {
        "tcp" => "/ip4/127.0.0.1/tcp/0".parse()?,
        "quic" => "/ip4/127.0.0.1/udp/0/quic-v1".parse()?,
        other => return Err(format!("unknown transport {other}").into()),
    };
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)?
        .with_behaviour(|key, relay_client| Behaviour {
            relay_client,
            identify: identify::Behaviour::new(identify::Config::new(
                "/ipfs/0.1.0".into(),
                key.public(),
            )),
            ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(1))),
            dcutr: dcutr::Behaviour::new(key.public().to_peer_id()),
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    let local_peer = *swarm.local_peer_id();
    swarm.listen_on(direct)?;
    // Wait until the direct listener is up, so the relay connection leaves from it.
    loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            eprintln!("listening on {address}");
            break;
        }
    }
    if listen {
        swarm.listen_on(addr.with(Protocol::P2pCircuit))?;
    } else {
        swarm.dial(addr)?;
    }
    let mut endpoints: HashMap<ConnectionId, Multiaddr> = HashMap::new();
    let deadline = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(deadline);
    // After a success the swarm keeps running a moment, so the peer's side of the
    // direct connection settles.
    let mut succeeded = false;
    loop {
        let event = tokio::select! {
            _ = &mut deadline => {
                return if succeeded { Ok(()) } else { Err("no hole punch in 60 s".into()) };
            }
            event = swarm.select_next_some() => event,
        };
        match event {
            SwarmEvent::NewListenAddr { address, .. }
                if address.iter().any(|p| p == Protocol::P2pCircuit) =>
            {
                say(&address.with(Protocol::P2p(local_peer)).to_string())?;
            }
            SwarmEvent::ConnectionEstablished {
                connection_id,
                endpoint,
                ..
            } => {
                endpoints.insert(connection_id, endpoint.get_remote_address().clone());
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            })) => match result {
                Ok(connection) => {
                    let remote = endpoints
                        .get(&connection)
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| format!("(connection {connection:?})"));
                    say(&format!("dcutr ok {remote}"))?;
                    eprintln!("hole punch with {remote_peer_id} succeeded");
                    succeeded = true;
                    deadline
                        .as_mut()
                        .reset(tokio::time::Instant::now() + Duration::from_secs(2));
                }
                Err(e) => say(&format!("dcutr failed {e}"))?,
            },
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                eprintln!("dial failed: {error}");
            }
            other => eprintln!("{other:?}"),
        }
    }
}
