//! The `weft` command: a demo of two hosts, a listener, a dialer, perf, and peer ids.
//!
//! ```text
//! weft                  # the demo (same as `weft demo`)
//! weft listen --listen /ip4/127.0.0.1/tcp/4001
//! weft relay --listen /ip4/0.0.0.0/tcp/4001          # a circuit relay v2 server
//! weft listen --relay /ip4/1.2.3.4/tcp/4001/p2p/12D3KooW...  # reachable through it
//! weft dial /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW... --ping 3 --echo 1048576
//! weft dial /ip4/127.0.0.1/tcp/4001   # the peer id is learned from the handshake
//! weft dial /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW... --echo 1048576
//! weft perf /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW... --upload 0 --download 104857600
//! weft nat --server /ip4/1.2.3.4/tcp/4001/p2p/12D3KooW... --server ...  # AutoNAT v2
//! weft id --seed 000102...1f
//! ```

mod demo;
mod dial;
mod echo;
mod explain;
mod holepunch;
mod listen;
mod metrics;
mod nat;
mod observers;
mod options;
mod perf;
mod progress;
mod reconnect;

use clap::{Args, Parser, Subcommand};
use options::{parse_security_list, SecurityList};
use std::process::ExitCode;
use std::time::Duration;
use weft_host::Multiaddr;

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "libp2p connections: demo, listen, dial, perf"
)]
struct Cli {
    /// Print one JSON line (dial, perf) instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Two hosts on 127.0.0.1: every security x muxer combination, with a table.
    Demo,
    /// Listen and serve ping, identify and /echo/1.0.0 (and /perf/1.0.0 with --perf) until Ctrl-C.
    Listen(ListenArgs),
    /// `listen`, and serve circuit relay v2 (reservations and circuits, within the
    /// default limits) until Ctrl-C.
    Relay(ListenArgs),
    /// Connect, identify, ping and echo; exit 0 only if everything checked out.
    Dial(DialArgs),
    /// Run /perf/1.0.0 against a peer.
    Perf(PerfArgs),
    /// Print the peer id (of --seed, or of a fresh key).
    Id(IdArgs),
    /// Ask AutoNAT v2 servers whether each of our addresses is reachable, and print
    /// the verdict per address.
    Nat(NatArgs),
}

#[derive(Args)]
struct NatArgs {
    /// An AutoNAT v2 server to ask (repeatable; a verdict needs 3 that agree).
    /// Without any, the peers that connect to us are asked, for the whole timeout.
    #[arg(long = "server", value_name = "MULTIADDR")]
    server: Vec<Multiaddr>,
    /// Address to listen on (repeatable); default /ip4/0.0.0.0/tcp/0.
    #[arg(long = "listen", value_name = "MULTIADDR")]
    listen: Vec<Multiaddr>,
    /// Another address of ours to test, such as a port mapping (repeatable).
    #[arg(long = "external", value_name = "MULTIADDR")]
    external: Vec<Multiaddr>,
    /// Take these address classes as public, comma-separated (loopback, private,
    /// link-local, shared, documentation, benchmarking): for test networks.
    #[arg(long, value_name = "CLASSES", value_delimiter = ',', value_parser = nat::parse_class)]
    public: Vec<weft_host::dial::classify::AddrClass>,
    /// Security protocols in order of preference.
    #[arg(long, default_value = "noise,tls", value_parser = parse_security_list)]
    security: SecurityList,
    /// A 32-byte Ed25519 secret in hex, for a fixed identity.
    #[arg(long, value_name = "HEX32")]
    seed: Option<String>,
    /// Give up waiting for verdicts after this many seconds (and print those so far).
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
}

#[derive(Args)]
struct ListenArgs {
    /// Address to listen on (repeatable), for example /ip4/127.0.0.1/udp/0/quic-v1;
    /// default /ip4/127.0.0.1/tcp/0.
    #[arg(long = "listen", value_name = "MULTIADDR")]
    listen: Vec<Multiaddr>,
    /// Listen on this IPv4 address (with --port), the interop peers' way of saying it.
    #[arg(long, value_name = "IP", conflicts_with = "listen")]
    ip: Option<std::net::Ipv4Addr>,
    /// The TCP port for --ip (0: any free port).
    #[arg(long, default_value_t = 0, requires = "ip")]
    port: u16,
    /// Reserve a slot at this relay (its address ending in /p2p/RELAY_ID) and listen
    /// through it, at RELAY_ADDRESS/p2p-circuit (repeatable).
    #[arg(long = "relay", value_name = "MULTIADDR")]
    relay: Vec<Multiaddr>,
    /// Also connect to this peer at the start and stay connected (repeatable): each
    /// peer that identifies us tells the address it sees us at, and hole punching
    /// tells a symmetric NAT by the ports several observers see.
    #[arg(long = "connect", value_name = "MULTIADDR")]
    connect: Vec<Multiaddr>,
    /// Security protocols in order of preference.
    #[arg(long, default_value = "noise,tls", value_parser = parse_security_list)]
    security: SecurityList,
    /// A 32-byte Ed25519 secret in hex, for a fixed identity.
    #[arg(long, value_name = "HEX32")]
    seed: Option<String>,
    /// Also serve /perf/1.0.0 (off by default: it sends whatever a client asks for, up
    /// to 1 GiB a request and 120 s a stream).
    #[arg(long)]
    perf: bool,
    /// The memory weft may use for connections, streams and their buffers (for
    /// example `512MiB`, `2GiB`); every resource limit scales from it. Default: 1/8
    /// of this machine's memory.
    #[arg(long, value_name = "SIZE", value_parser = options::parse_memory)]
    max_memory: Option<u64>,
    /// The file descriptors weft may use for connections. Default: half of this
    /// process's open-files limit; more than the limit is refused.
    #[arg(long, value_name = "N")]
    max_fds: Option<u64>,
    /// Serve Prometheus metrics (OpenMetrics text) at http://ADDR/metrics, e.g.
    /// 127.0.0.1:9464 (port 0: any free port; the address is printed on stderr).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Also serve AutoNAT v2 (dial requests within the default limits; dial-backs
    /// from a second, listener-less host).
    #[arg(long)]
    autonat_server: bool,
    /// Take these address classes as public, comma-separated (loopback, private,
    /// link-local, shared, documentation, benchmarking): for test networks.
    #[arg(long, value_name = "CLASSES", value_delimiter = ',', value_parser = nat::parse_class)]
    public: Vec<weft_host::dial::classify::AddrClass>,
}

#[derive(Args)]
struct DialArgs {
    /// The peer's address; with a `/p2p/<peer id>` suffix the handshake must prove
    /// that peer, without one the peer id is learned from the handshake.
    addr: Multiaddr,
    /// Security protocols in order of preference.
    #[arg(long, default_value = "noise,tls", value_parser = parse_security_list)]
    security: SecurityList,
    /// Number of pings.
    #[arg(long, default_value_t = 1)]
    ping: usize,
    /// Bytes of random data to echo over /echo/1.0.0 and verify (0: skip).
    #[arg(long, alias = "echo-bytes", default_value_t = 0)]
    echo: usize,
    /// Propose protocols lazily (0-RTT) when there is a single choice.
    #[arg(long)]
    lazy: bool,
    /// Then close and reconnect N times, each with early data and a ping on an
    /// early stream, and report per attempt whether the session was resumed, whether
    /// 0-RTT was accepted, and the time to the ping's first byte (ms and RTTs).
    #[arg(long, value_name = "N", default_value_t = 0)]
    reconnect: usize,
    /// A 32-byte Ed25519 secret in hex, for a fixed identity.
    #[arg(long, value_name = "HEX32")]
    seed: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// Listen on this address before dialing (repeatable), e.g. /ip4/0.0.0.0/tcp/0:
    /// through a relay, hole punching needs it (TCP dials then leave from the
    /// listen port).
    #[arg(long = "listen", value_name = "MULTIADDR")]
    listen: Vec<Multiaddr>,
    /// Also connect to this peer at the start and stay connected (repeatable): each
    /// peer that identifies us tells the address it sees us at, and hole punching
    /// tells a symmetric NAT by the ports several observers see.
    #[arg(long = "connect", value_name = "MULTIADDR")]
    connect: Vec<Multiaddr>,
    /// Take these address classes as public, comma-separated (loopback, private,
    /// link-local, shared, documentation, benchmarking): for test networks.
    #[arg(long, value_name = "CLASSES", value_delimiter = ',', value_parser = nat::parse_class)]
    public: Vec<weft_host::dial::classify::AddrClass>,
}

#[derive(Args)]
struct PerfArgs {
    /// The peer's address; with a `/p2p/<peer id>` suffix the handshake must prove
    /// that peer, without it whoever answers is the peer.
    addr: Multiaddr,
    /// Security protocols in order of preference.
    #[arg(long, default_value = "noise,tls", value_parser = parse_security_list)]
    security: SecurityList,
    /// Bytes to upload.
    #[arg(long, default_value_t = 0)]
    upload: u64,
    /// Bytes to download.
    #[arg(long, default_value_t = 0)]
    download: u64,
    /// A 32-byte Ed25519 secret in hex, for a fixed identity.
    #[arg(long, value_name = "HEX32")]
    seed: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

#[derive(Args)]
struct IdArgs {
    /// A 32-byte Ed25519 secret in hex.
    #[arg(long, value_name = "HEX32")]
    seed: Option<String>,
}

/// `weft listen` (and, with `relay_server`, `weft relay`).
async fn listen(a: ListenArgs, relay_server: bool) -> Result<(), String> {
    let mut addrs = a.listen;
    if let Some(ip) = a.ip {
        addrs.push(
            Multiaddr::empty()
                .with(weft_host::Protocol::Ip4(ip))
                .with(weft_host::Protocol::Tcp(a.port)),
        );
    }
    let limits = options::limits(a.max_memory, a.max_fds)?;
    let options = listen::ListenOptions {
        addrs,
        relays: a.relay,
        connect: a.connect,
        relay_server,
        perf: a.perf,
        metrics: a.metrics,
        autonat_server: a.autonat_server,
        public: a.public,
    };
    listen::run(options, a.security.0, a.seed, limits).await
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let json = cli.json;
    let result = match cli.command.unwrap_or(Command::Demo) {
        Command::Demo => demo::run().await,
        Command::Listen(a) => listen(a, false).await,
        Command::Relay(a) => listen(a, true).await,
        Command::Id(a) => {
            options::keypair(a.seed.as_deref()).map(|k| println!("{}", k.public().to_peer_id()))
        }
        Command::Dial(a) => {
            let opts = dial::DialOptions {
                addr: a.addr,
                security: a.security.0,
                pings: a.ping,
                echo_bytes: a.echo,
                lazy: a.lazy,
                seed: a.seed,
                timeout: Duration::from_secs(a.timeout_secs),
                reconnect: a.reconnect,
                listen: a.listen,
                connect: a.connect,
                public: a.public,
            };
            dial::run(opts).await.map(|report| {
                if json {
                    println!("{}", serde_json::to_string(&report).unwrap_or_default());
                } else {
                    dial::print_human(&report);
                }
            })
        }
        Command::Nat(a) => nat::run(nat::NatOptions {
            servers: a.server,
            listen: a.listen,
            external: a.external,
            public: a.public,
            security: a.security.0,
            seed: a.seed,
            timeout: Duration::from_secs(a.timeout_secs),
        })
        .await
        .map(|report| {
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                nat::print_human(&report);
            }
        }),
        Command::Perf(a) => perf::run(
            a.addr,
            a.security.0,
            a.upload,
            a.download,
            a.seed,
            Duration::from_secs(a.timeout_secs),
        )
        .await
        .map(|p| {
            if json {
                println!("{}", serde_json::to_string(&p).unwrap_or_default());
            } else {
                println!("security {} muxer {}", p.security, p.muxer);
                println!(
                    "upload   {} bytes in {:.3} s: {:.3} Gbit/s",
                    p.upload_bytes, p.upload_s, p.upload_gbit_s
                );
                println!(
                    "download {} bytes in {:.3} s: {:.3} Gbit/s",
                    p.download_bytes, p.download_s, p.download_gbit_s
                );
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "ok": false, "error": e }));
            }
            eprintln!("weft: {e}");
            ExitCode::FAILURE
        }
    }
}
