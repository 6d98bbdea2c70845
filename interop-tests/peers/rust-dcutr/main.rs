//! A stock rust-libp2p (0.57) peer with DCUtR (`libp2p-dcutr`), for weft's hole
//! punching interop:
//!
//! ```text
//! rust-libp2p-dcutr listen tcp|quic RELAY_MULTIADDR [--listen ADDR]
//!     # B: reserve, print the circuit address, run until killed
//! rust-libp2p-dcutr dial tcp|quic CIRCUIT_MULTIADDR [--listen ADDR] [--punch-wait-secs N]
//!     # A: dial B through the relay, print a JSON report
//! ```
//!
//! Either way it first listens on `--listen` (default `127.0.0.1`, any port, of the
//! transport asked for), so that it has a direct address to punch to and, with
//! rust-libp2p's port reuse, dials from that port. Then, as rust-libp2p's own DCUtR
//! example does, it connects to the relay and waits for identify to tell it the address
//! the relay observed: rust-libp2p's DCUtR sends only the address candidates others
//! observed, so the relay is reached over the transport to punch with. TCP with Noise
//! and yamux, QUIC; relay client, identify, ping and DCUtR, all configured as
//! rust-libp2p's users get them. Logs go to stderr.
//!
//! `listen` prints the circuit address, then `dcutr ok <remote address>` for each hole
//! punch its DCUtR reports as a direct connection, or `dcutr failed <error>`.
//!
//! `dial` prints one JSON report: `ok` (the relayed connection carried a ping, or the
//! exchange that made a direct connection), `direct` (a direct connection to the peer
//! came up), `dcutr_event` (rust-libp2p's DCUtR reported it as its own), `attempts`
//! (the direct dials DCUtR made, each answering a CONNECT of the listener's),
//! `time_to_direct_ms` (from the relayed connection to the direct one), `punch_error`
//! and `error`; it exits 0 when `ok`, two seconds after a direct connection. As the
//! dialer (A), rust-libp2p's DCUtR reports a failed exchange but never a failed direct
//! dial (only the listener side counts attempts), so without a direct connection the
//! report says so `--punch-wait-secs` (default 20) after the relayed connection.

use std::collections::HashMap;
use std::error::Error;
use std::io::Write;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    dcutr, identify, noise, ping, relay, tcp, yamux, Multiaddr, PeerId, Swarm, SwarmBuilder,
};

type BoxError = Box<dyn Error + Send + Sync>;

/// How long the whole run may take.
const RUN_LIMIT: Duration = Duration::from_secs(60);

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

/// What the command line asks for.
struct Args {
    listen: bool,
    target: Multiaddr,
    direct: Multiaddr,
    punch_wait: Duration,
}

fn parse_args() -> Result<Args, BoxError> {
    const USAGE: &str = "usage: rust-libp2p-dcutr listen|dial tcp|quic MULTIADDR \
                         [--listen ADDR] [--punch-wait-secs N]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, transport, target) = match args.get(..3) {
        Some([command, transport, target]) if command == "listen" || command == "dial" => (
            command.clone(),
            transport.clone(),
            target.parse::<Multiaddr>()?,
        ),
        _ => return Err(USAGE.into()),
    };
    let mut direct: Multiaddr = match transport.as_str() {
        "tcp" => "/ip4/127.0.0.1/tcp/0".parse()?,
        "quic" => "/ip4/127.0.0.1/udp/0/quic-v1".parse()?,
        other => return Err(format!("unknown transport {other}").into()),
    };
    let mut punch_wait = Duration::from_secs(20);
    let mut rest = args[3..].iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--listen" => {
                direct = rest.next().ok_or("--listen needs an address")?.parse()?;
            }
            "--punch-wait-secs" => {
                let secs: u64 = rest.next().ok_or("--punch-wait-secs needs N")?.parse()?;
                punch_wait = Duration::from_secs(secs);
            }
            other => return Err(format!("unknown option {other}; {USAGE}").into()),
        }
    }
    Ok(Args {
        listen: command == "listen",
        target,
        direct,
        punch_wait,
    })
}

fn build_swarm() -> Result<Swarm<Behaviour>, BoxError> {
    Ok(SwarmBuilder::with_new_identity()
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
        .build())
}

/// The relay's address in `target`: everything before `/p2p-circuit`.
fn relay_part(target: &Multiaddr) -> Multiaddr {
    target
        .iter()
        .take_while(|p| *p != Protocol::P2pCircuit)
        .collect()
}

/// Connects to the relay and waits until identify has told this peer the address the
/// relay observed (rust-libp2p's DCUtR example does the same), or the run ends.
async fn learn_observed_address(
    swarm: &mut Swarm<Behaviour>,
    relay: Multiaddr,
) -> Result<(), BoxError> {
    swarm.dial(relay)?;
    let wait = tokio::time::sleep(RUN_LIMIT / 2);
    tokio::pin!(wait);
    loop {
        let event = tokio::select! {
            _ = &mut wait => return Err("identify did not report an observed address".into()),
            event = swarm.select_next_some() => event,
        };
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                info,
                ..
            })) => {
                eprintln!("the relay observed {}", info.observed_addr);
                return Ok(());
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                return Err(format!("dialing the relay: {error}").into());
            }
            other => eprintln!("{other:?}"),
        }
    }
}

/// The dialer's findings, for the JSON report.
#[derive(Default)]
struct DialReport {
    relayed_at: Option<Instant>,
    relayed_ping: bool,
    direct_after: Option<Duration>,
    attempts: u32,
    /// Whether rust-libp2p's DCUtR reported the direct connection as its own.
    dcutr_event: bool,
    punch_error: Option<String>,
    error: Option<String>,
}

impl DialReport {
    fn to_json(&self) -> String {
        let mut report = serde_json::json!({
            "ok": self.relayed_ok(),
            "direct": self.direct_after.is_some(),
            "attempts": self.attempts,
            "dcutr_event": self.dcutr_event,
        });
        if let Some(after) = self.direct_after {
            report["time_to_direct_ms"] = serde_json::json!(after.as_millis() as u64);
        }
        if let Some(e) = &self.punch_error {
            report["punch_error"] = serde_json::json!(e);
        }
        if let Some(e) = &self.error {
            report["error"] = serde_json::json!(e);
        }
        report.to_string()
    }

    /// Whether the relayed connection worked: it carried a ping, or the DCUtR
    /// exchange that produced a direct connection.
    fn relayed_ok(&self) -> bool {
        self.relayed_ping || self.direct_after.is_some()
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let mut swarm = build_swarm()?;
    let local_peer = *swarm.local_peer_id();
    swarm.listen_on(args.direct.clone())?;
    // Wait until the direct listener is up, so the relay connection leaves from it.
    loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            eprintln!("listening on {address}");
            break;
        }
    }
    let relay = relay_part(&args.target);
    if args.listen {
        learn_observed_address(&mut swarm, relay.clone()).await?;
        swarm.listen_on(relay.with(Protocol::P2pCircuit))?;
        return listen(&mut swarm, local_peer).await;
    }
    let mut report = DialReport::default();
    let outcome = match learn_observed_address(&mut swarm, relay).await {
        Ok(()) => match swarm.dial(args.target.clone()) {
            Ok(()) => dial(&mut swarm, &mut report, &args).await,
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e),
    };
    if let Err(e) = &outcome {
        if report.error.is_none() && !report.relayed_ok() {
            report.error = Some(e.to_string());
        }
    }
    say(&report.to_json())?;
    if report.relayed_ok() {
        Ok(())
    } else {
        Err("no working relayed connection".into())
    }
}

/// Runs the swarm as B once the relay is known, until killed: prints the circuit
/// address and every DCUtR verdict.
async fn listen(swarm: &mut Swarm<Behaviour>, local_peer: PeerId) -> Result<(), BoxError> {
    let mut endpoints: HashMap<ConnectionId, Multiaddr> = HashMap::new();
    loop {
        match swarm.select_next_some().await {
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
            SwarmEvent::ConnectionClosed { connection_id, .. } => {
                endpoints.remove(&connection_id);
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
                    eprintln!("hole punch with {remote_peer_id} succeeded over {remote}");
                }
                Err(e) => say(&format!("dcutr failed {e}"))?,
            },
            other => eprintln!("{other:?}"),
        }
    }
}

/// Runs the swarm as A after dialing the circuit: fills `report` until a direct
/// connection has lasted two seconds, DCUtR failed, or the wait ran out. A direct
/// connection counts whether rust-libp2p's DCUtR reported it or not: its event covers
/// only a connection its own direct dial produced, while the listener's dial can
/// arrive first as an inbound connection (a cone NAT in front of this peer lets it
/// in), which is just as direct; `dcutr_event` says which it was.
async fn dial(
    swarm: &mut Swarm<Behaviour>,
    report: &mut DialReport,
    args: &Args,
) -> Result<(), BoxError> {
    let mut relayed: Option<(PeerId, ConnectionId)> = None;
    let deadline = tokio::time::sleep(RUN_LIMIT);
    tokio::pin!(deadline);
    loop {
        let event = tokio::select! {
            _ = &mut deadline => {
                if report.direct_after.is_some() {
                    return Ok(());
                }
                if report.relayed_ok() && report.punch_error.is_none() {
                    report.punch_error = Some(format!(
                        "no direct connection within {} s of the relayed connection \
                         ({} direct dials)",
                        report.relayed_at.map_or(0, |t| t.elapsed().as_secs()),
                        report.attempts
                    ));
                }
                return Err("no hole punch in time".into());
            }
            event = swarm.select_next_some() => event,
        };
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                let circuit = endpoint
                    .get_remote_address()
                    .iter()
                    .any(|p| p == Protocol::P2pCircuit);
                match relayed {
                    None if circuit => {
                        relayed = Some((peer_id, connection_id));
                        report.relayed_at = Some(Instant::now());
                        deadline
                            .as_mut()
                            .reset(tokio::time::Instant::now() + args.punch_wait);
                    }
                    Some((remote, _)) if !circuit && remote == peer_id => {
                        eprintln!(
                            "direct connection to {remote} over {} ({})",
                            endpoint.get_remote_address(),
                            if endpoint.is_dialer() {
                                "dialed"
                            } else {
                                "inbound"
                            }
                        );
                        if report.direct_after.is_none() {
                            report.direct_after = report.relayed_at.map(|t| t.elapsed());
                            report.attempts = report.attempts.max(1);
                            deadline
                                .as_mut()
                                .reset(tokio::time::Instant::now() + Duration::from_secs(2));
                        }
                    }
                    _ => {}
                }
            }
            SwarmEvent::Dialing {
                peer_id: Some(peer),
                ..
            } => {
                // After the relayed connection, every dial to the same peer is one of
                // DCUtR's direct dials.
                if relayed.is_some_and(|(remote, _)| remote == peer) {
                    report.attempts += 1;
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                connection,
                result: Ok(_),
                ..
            })) => {
                if relayed.is_some_and(|(_, relayed_connection)| relayed_connection == connection) {
                    report.relayed_ping = true;
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event { result, .. })) => {
                match result {
                    Ok(_) => report.dcutr_event = true,
                    Err(e) => {
                        report.punch_error.get_or_insert_with(|| e.to_string());
                        if report.relayed_ok() && report.direct_after.is_none() {
                            return Ok(());
                        }
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                eprintln!("dial failed: {error}");
            }
            other => eprintln!("{other:?}"),
        }
    }
}
