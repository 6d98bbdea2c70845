//! weft's rust-libp2p interop peer (libp2p 0.57), following the interop peer contract:
//!
//! ```text
//! rust-libp2p-peer listen --security noise|tls [--ip 127.0.0.1] [--port 0] [--transport tcp|quic]
//! rust-libp2p-peer dial MULTIADDR --security noise|tls [--echo-bytes N] [--timeout-secs S]
//! ```
//!
//! TCP with Noise or TLS and yamux, or QUIC (`--transport quic` to listen; a dial
//! follows its address; `--security` is then ignored: QUIC runs TLS); serves `/ipfs/ping/1.0.0`, `/ipfs/id/1.0.0` and
//! `/echo/1.0.0`. stdout carries only the contract's output (one multiaddr line for
//! `listen`, one JSON line for `dial`); logs go to stderr.
//!
//! `rust-libp2p-peer transport-interop` instead follows libp2p/test-plans'
//! transport-interop contract (parameters from the environment, redis; see
//! `weft_interop_tests::transport_interop`).

mod echo;
mod transport_interop;

use std::error::Error;
use std::io::Write;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, tls, yamux, Multiaddr, Swarm, SwarmBuilder};
use weft_interop_tests::{DialReport, DialResult, Security};

/// The agent version this peer announces through identify.
const AGENT_VERSION: &str = "rust-libp2p-interop-peer";
/// The identify protocol version this peer announces.
const PROTOCOL_VERSION: &str = "/ipfs/0.1.0";
/// Size of the write chunks on the echo stream.
const ECHO_CHUNK: usize = 64 * 1024;

type BoxError = Box<dyn Error + Send + Sync>;

/// The peer's behaviours: identify, ping and echo.
#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    echo: echo::Behaviour,
}

/// Parsed command line.
enum Command {
    Listen {
        security: Security,
        ip: Ipv4Addr,
        port: u16,
        quic: bool,
    },
    Dial {
        addr: Multiaddr,
        security: Security,
        echo_bytes: usize,
        timeout: Duration,
    },
}

const USAGE: &str = "usage:
  rust-libp2p-peer listen --security noise|tls [--ip 127.0.0.1] [--port 0] [--transport tcp|quic]
  rust-libp2p-peer dial MULTIADDR --security noise|tls [--echo-bytes 1048576] [--timeout-secs 30]";

fn parse_args(args: &[String]) -> Result<Command, String> {
    let (command, rest) = args.split_first().ok_or("missing command")?;
    let mut positional = Vec::new();
    let mut security = None;
    let mut ip = Ipv4Addr::LOCALHOST;
    let mut port = 0u16;
    let mut echo_bytes = 1_048_576usize;
    let mut timeout_secs = 30f64;
    let mut quic = false;
    let mut iter = rest.iter();
    while let Some(arg) = iter.next() {
        let mut value = |name: &str| {
            iter.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--security" => {
                let v = value(arg)?;
                security = Some(v.parse::<Security>().map_err(|e| e.to_string())?);
            }
            "--ip" => ip = value(arg)?.parse().map_err(|e| format!("--ip: {e}"))?,
            "--port" => port = value(arg)?.parse().map_err(|e| format!("--port: {e}"))?,
            "--transport" => {
                quic = match value(arg)?.as_str() {
                    "tcp" => false,
                    "quic" => true,
                    other => return Err(format!("--transport tcp|quic, not {other}")),
                }
            }
            "--echo-bytes" => {
                echo_bytes = value(arg)?
                    .parse()
                    .map_err(|e| format!("--echo-bytes: {e}"))?
            }
            "--timeout-secs" => {
                timeout_secs = value(arg)?
                    .parse()
                    .map_err(|e| format!("--timeout-secs: {e}"))?
            }
            other if other.starts_with("--") => return Err(format!("unknown flag {other}")),
            other => positional.push(other.to_owned()),
        }
    }
    let security = security.ok_or("--security noise|tls is required")?;
    match command.as_str() {
        "listen" if positional.is_empty() => Ok(Command::Listen {
            security,
            ip,
            port,
            quic,
        }),
        "dial" => {
            let [addr] = positional.as_slice() else {
                return Err("dial needs exactly one MULTIADDR".into());
            };
            if !(timeout_secs.is_finite() && timeout_secs > 0.0) {
                return Err("--timeout-secs must be positive".into());
            }
            Ok(Command::Dial {
                addr: addr
                    .parse()
                    .map_err(|e| format!("bad multiaddr {addr}: {e}"))?,
                security,
                echo_bytes,
                timeout: Duration::from_secs_f64(timeout_secs),
            })
        }
        _ => Err(format!("bad command line: {}", args.join(" "))),
    }
}

/// Builds a TCP + `security` + yamux and QUIC swarm with our behaviours.
fn build_swarm(security: Security) -> Result<Swarm<Behaviour>, BoxError> {
    let behaviour = |key: &libp2p::identity::Keypair| Behaviour {
        identify: identify::Behaviour::new(
            identify::Config::new(PROTOCOL_VERSION.into(), key.public())
                .with_agent_version(AGENT_VERSION.into()),
        ),
        // One ping right after connecting; the next one would come after an hour.
        ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(3600))),
        echo: echo::Behaviour::default(),
    };
    let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(300));
    let builder = SwarmBuilder::with_new_identity().with_tokio();
    let swarm = match security {
        Security::Noise => builder
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_quic()
            .with_behaviour(behaviour)?
            .with_swarm_config(idle)
            .build(),
        Security::Tls => builder
            .with_tcp(
                tcp::Config::default(),
                tls::Config::new,
                yamux::Config::default,
            )?
            .with_quic()
            .with_behaviour(behaviour)?
            .with_swarm_config(idle)
            .build(),
    };
    Ok(swarm)
}

/// Echoes every byte until the remote half-closes, then closes the write side.
async fn serve_echo(stream: libp2p::Stream) -> std::io::Result<()> {
    let (reader, mut writer) = stream.split();
    futures::io::copy(reader, &mut writer).await?;
    writer.close().await
}

async fn listen(security: Security, ip: Ipv4Addr, port: u16, quic: bool) -> Result<(), BoxError> {
    let mut swarm = build_swarm(security)?;
    let local_peer = *swarm.local_peer_id();
    let addr = Multiaddr::empty().with(Protocol::Ip4(ip));
    swarm.listen_on(if quic {
        addr.with(Protocol::Udp(port)).with(Protocol::QuicV1)
    } else {
        addr.with(Protocol::Tcp(port))
    })?;
    let mut printed = false;
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { address, .. } if !printed => {
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{}", address.with(Protocol::P2p(local_peer)))?;
                stdout.flush()?;
                printed = true;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Echo(echo::Event::Inbound { peer, stream })) => {
                tokio::spawn(async move {
                    if let Err(e) = serve_echo(stream).await {
                        eprintln!("echo stream from {peer} failed: {e}");
                    }
                });
            }
            SwarmEvent::ListenerError { error, .. } => return Err(error.into()),
            SwarmEvent::ListenerClosed { reason, .. } => {
                return Err(format!("listener closed: {reason:?}").into())
            }
            _ => {}
        }
    }
}

/// Sends `n` random bytes on an echo stream while reading, half-closes, reads to EOF and
/// checks that the same bytes came back.
async fn run_echo(stream: libp2p::Stream, n: usize) -> Result<(), String> {
    let mut payload = vec![0u8; n];
    rand::fill(&mut payload[..]);
    let (mut reader, mut writer) = stream.split();
    let write = async {
        for chunk in payload.chunks(ECHO_CHUNK) {
            writer.write_all(chunk).await?;
        }
        writer.close().await
    };
    let read = async {
        let mut received = Vec::with_capacity(n);
        // Read at most one byte more than we sent, so an over-long echo is noticed but
        // never buffered without bound.
        let limit = u64::try_from(n).unwrap_or(u64::MAX).saturating_add(1);
        (&mut reader).take(limit).read_to_end(&mut received).await?;
        Ok::<_, std::io::Error>(received)
    };
    let (written, received) = futures::join!(write, read);
    written.map_err(|e| format!("echo write: {e}"))?;
    let received = received.map_err(|e| format!("echo read: {e}"))?;
    if received.len() != n {
        return Err(format!("echoed {} bytes, sent {n}", received.len()));
    }
    if received != payload {
        return Err("echoed bytes differ from the bytes sent".into());
    }
    Ok(())
}

async fn dial(
    addr: Multiaddr,
    security: Security,
    echo_bytes: usize,
) -> Result<DialReport, String> {
    let Some(Protocol::P2p(remote)) = addr.iter().last() else {
        return Err(format!("{addr} does not end in /p2p/<peer id>"));
    };
    let over_quic = addr.iter().any(|p| matches!(p, Protocol::QuicV1));
    let mut swarm = build_swarm(security).map_err(|e| e.to_string())?;
    swarm.dial(addr.clone()).map_err(|e| format!("dial: {e}"))?;

    let mut identified: Option<identify::Info> = None;
    let mut rtt: Option<Duration> = None;
    let mut echo_requested = false;
    let mut echo_task: Option<tokio::task::JoinHandle<Result<(), String>>> = None;
    loop {
        if let (Some(_), Some(_), false) = (&identified, rtt, echo_requested) {
            swarm.behaviour_mut().echo.open_stream(remote);
            echo_requested = true;
        }
        let event = match echo_task.as_mut() {
            Some(task) => tokio::select! {
                done = task => {
                    done.map_err(|e| format!("echo task: {e}"))??;
                    break;
                }
                event = swarm.select_next_some() => event,
            },
            None => swarm.select_next_some().await,
        };
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) if peer_id == remote => identified = Some(info),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Error {
                peer_id,
                error,
                ..
            })) if peer_id == remote && identified.is_none() => {
                return Err(format!("identify: {error}"))
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result, .. }))
                if peer == remote && rtt.is_none() =>
            {
                rtt = Some(result.map_err(|e| format!("ping: {e}"))?);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Echo(echo::Event::Outbound { peer, stream }))
                if peer == remote && echo_task.is_none() =>
            {
                echo_task = Some(tokio::spawn(run_echo(stream, echo_bytes)));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Echo(echo::Event::OutboundFailed {
                peer,
                error,
            })) if peer == remote => return Err(format!("open echo stream: {error}")),
            SwarmEvent::Behaviour(BehaviourEvent::Echo(echo::Event::Inbound {
                stream, ..
            })) => {
                tokio::spawn(serve_echo(stream));
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                return Err(format!("connect: {error}"))
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } if peer_id == remote => {
                return Err(format!("connection closed early: {cause:?}"))
            }
            _ => {}
        }
    }
    let info = identified.ok_or("no identify")?;
    let rtt = rtt.ok_or("no ping")?;
    Ok(DialReport {
        remote_peer: remote,
        agent_version: info.agent_version,
        protocols: info.protocols.iter().map(ToString::to_string).collect(),
        // rust-libp2p does not expose the negotiated ids per connection: as configured
        // (QUIC: libp2p TLS inside QUIC and QUIC's own streams, named as weft does).
        security: if over_quic {
            "/tls/1.0.0"
        } else {
            security.protocol_id()
        }
        .to_owned(),
        muxer: if over_quic { "quic-v1" } else { "/yamux/1.0.0" }.to_owned(),
        rtt_ms: rtt.as_secs_f64() * 1e3,
        echo_bytes: echo_bytes as u64,
    })
}

fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    // Nothing sensible is left to do if stdout is gone.
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "transport-interop") {
        match transport_interop::run().await {
            Ok(Some(report)) => print_line(&report.to_json_line()),
            Ok(None) => {}
            Err(e) => {
                eprintln!("transport-interop failed: {e}");
                std::process::exit(weft_interop_tests::transport_interop::EXIT_FAILURE);
            }
        }
        return;
    }
    let command = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    match command {
        Command::Listen {
            security,
            ip,
            port,
            quic,
        } => {
            if let Err(e) = listen(security, ip, port, quic).await {
                eprintln!("listen failed: {e}");
                std::process::exit(1);
            }
        }
        Command::Dial {
            addr,
            security,
            echo_bytes,
            timeout,
        } => {
            let result = match tokio::time::timeout(timeout, dial(addr, security, echo_bytes)).await
            {
                Ok(Ok(report)) => DialResult::Ok(report),
                Ok(Err(error)) => DialResult::Failed(error),
                Err(_) => DialResult::Failed(format!("timed out after {timeout:?}")),
            };
            print_line(&result.to_json_line());
            std::process::exit(if result.is_ok() { 0 } else { 1 });
        }
    }
}
