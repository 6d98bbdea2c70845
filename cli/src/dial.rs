//! `weft dial`: connect, identify, ping, echo, and report.

use crate::echo;
use crate::explain;
use crate::options::{build_host_with, keypair, Security};
use serde::Serialize;
use std::time::Duration;
use weft_host::dial::classify::{AddrClass, Classifier};
use weft_host::{DialConfig, Event, Host, Multiaddr, PeerId, Protocol};
use weft_resource_manager::Limits;

/// What `weft dial` found out. The JSON form is the interop peers' report format.
#[derive(Debug, Serialize)]
pub struct DialReport {
    /// Always true in a report (failures are reported as errors).
    pub ok: bool,
    /// The remote peer.
    pub remote_peer: String,
    /// Whether the remote peer id was learned from the handshake (the address had
    /// no `/p2p/` suffix) rather than given. Not in the JSON form, which the interop
    /// peers share.
    #[serde(skip)]
    pub peer_learned: bool,
    /// The remote's agent version (identify).
    pub agent_version: String,
    /// The remote's protocol version (identify).
    pub protocol_version: String,
    /// The remote's protocols (identify).
    pub protocols: Vec<String>,
    /// The remote's listen addresses (identify).
    pub listen_addrs: Vec<String>,
    /// The negotiated security protocol.
    pub security: String,
    /// The negotiated muxer.
    pub muxer: String,
    /// Time to connect and upgrade, in milliseconds.
    pub connect_ms: f64,
    /// The first ping's RTT, in milliseconds.
    pub rtt_ms: f64,
    /// Every ping's RTT.
    pub rtts_ms: Vec<f64>,
    /// Bytes echoed and checked.
    pub echo_bytes: usize,
    /// Echo throughput in MiB/s (both directions at once).
    pub echo_mib_per_s: f64,
    /// With `--reconnect N`: the first connection (attempt 0) and N reconnects.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reconnects: Vec<crate::reconnect::Attempt>,
    /// For a dial through `/p2p-circuit`: whether hole punching made it direct, and
    /// how long it took (absent for a direct dial).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hole_punch: Option<crate::holepunch::HolePunchReport>,
}

/// Options of one dial.
#[derive(Debug, Clone)]
pub struct DialOptions {
    /// Where.
    pub addr: Multiaddr,
    /// Security protocols offered, in order.
    pub security: Vec<Security>,
    /// Pings to send.
    pub pings: usize,
    /// Bytes to echo (0: skip).
    pub echo_bytes: usize,
    /// Lazy (0-RTT) proposals.
    pub lazy: bool,
    /// Our identity seed.
    pub seed: Option<String>,
    /// Overall time limit.
    pub timeout: Duration,
    /// Reconnects after the first connection (`--reconnect`), each measured.
    pub reconnect: usize,
    /// Addresses to listen on before dialing (`--listen`): through a relay, what
    /// hole punching needs (TCP dials leave from the listen port, and identify's
    /// observed addresses are then the NAT's mappings of it).
    pub listen: Vec<Multiaddr>,
    /// Peers to connect to first (`--connect`), each one more observer of our
    /// address.
    pub connect: Vec<Multiaddr>,
    /// Address classes taken as public (`--public`, test networks): observed
    /// addresses in them become hole punching candidates.
    pub public: Vec<AddrClass>,
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(p)) => Some(p),
        _ => None,
    }
}

/// Runs the dial on a fresh host (listening first on `opts.listen`) and shuts it
/// down.
pub async fn run(opts: DialOptions) -> Result<DialReport, String> {
    let classifier = Classifier::new().with_public(&opts.public);
    let host = build_host_with(
        keypair(opts.seed.as_deref())?,
        &opts.security,
        opts.lazy,
        Limits::auto(),
        |b| b.dial_config(DialConfig::default().with_classifier(classifier)),
    )?;
    for addr in &opts.listen {
        if let Err(e) = host.listen(addr).await {
            host.shutdown().await;
            return Err(format!("cannot listen on {addr}: {e}"));
        }
    }
    let result = tokio::time::timeout(opts.timeout, async {
        crate::observers::connect(&host, &opts.connect).await;
        dial_with(&host, &opts).await
    })
    .await;
    host.shutdown().await;
    result.map_err(|_| {
        format!(
            "gave up on {} after {:?} (raise --timeout-secs to wait longer)",
            opts.addr, opts.timeout
        )
    })?
}

/// Dials from an existing host (the demo uses this too).
pub async fn dial_with(host: &Host, opts: &DialOptions) -> Result<DialReport, String> {
    // Without `/p2p/`, whoever answers is the peer: the handshake proves who it is.
    let learned = peer_of(&opts.addr).is_none();
    let mut events = host.subscribe();
    let mut punch_events = host.subscribe();
    let started = std::time::Instant::now();
    let mut reconnects = Vec::new();
    let info = if opts.reconnect > 0 {
        // The first connection is measured as attempt 0.
        let (first, info) = crate::reconnect::attempt(host, &opts.addr, 0).await?;
        reconnects.push(first);
        info
    } else {
        host.dial(&opts.addr)
            .await
            .map_err(|e| explain::dial_failed(&opts.addr, &e))?
    };
    let connect_ms = started.elapsed().as_secs_f64() * 1e3;
    let connected_at = std::time::Instant::now();
    let peer = info.peer;
    let identified = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(Event::PeerIdentified {
                    peer: p,
                    agent_version,
                    protocol_version,
                    protocols,
                    listen_addrs,
                    ..
                }) if p == peer => {
                    return Ok((agent_version, protocol_version, protocols, listen_addrs));
                }
                Ok(_) | Err(weft_host::RecvError::Lagged(_)) => continue,
                Err(e) => return Err(format!("event stream ended: {e}")),
            }
        }
    })
    .await
    .map_err(|_| {
        format!(
            "the peer at {} did not answer identify within 10 s",
            opts.addr
        )
    })??;
    let (agent_version, protocol_version, protocols, listen_addrs) = identified;
    // Through a relay the peer punches a hole (it accepted the relayed connection);
    // the pings and the echo then go over the direct connection if there is one. A
    // peer need not list /libp2p/dcutr to start the exchange (rust-libp2p accepts
    // DCUtR streams only where it dialed the relayed connection), so it is waited
    // for either way.
    let hole_punch = if !info.is_relayed() {
        None
    } else {
        let advertised = protocols.iter().any(|p| p == weft_host::dcutr::PROTOCOL);
        Some(crate::holepunch::wait(&mut punch_events, peer, connected_at, advertised).await)
    };
    let mut rtts_ms = Vec::new();
    for _ in 0..opts.pings {
        let rtt = host
            .ping(peer)
            .await
            .map_err(|e| explain::step_failed(&opts.addr, "ping", &e))?;
        rtts_ms.push(rtt.as_secs_f64() * 1e3);
    }
    let mut echo_mib_per_s = 0.0;
    if opts.echo_bytes > 0 {
        let took = echo::check(host, peer, opts.echo_bytes).await?;
        echo_mib_per_s = opts.echo_bytes as f64 / (1024.0 * 1024.0) / took.as_secs_f64();
    }
    if opts.reconnect > 0 {
        let addr = crate::reconnect::with_peer(&opts.addr, peer);
        for number in 1..=opts.reconnect {
            crate::reconnect::disconnect(host, &peer).await?;
            reconnects.push(crate::reconnect::attempt(host, &addr, number).await?.0);
        }
    }
    Ok(DialReport {
        ok: true,
        remote_peer: peer.to_string(),
        peer_learned: learned,
        agent_version,
        protocol_version,
        protocols,
        listen_addrs: listen_addrs.iter().map(|a| a.to_string()).collect(),
        security: info.security,
        muxer: info.muxer,
        connect_ms,
        rtt_ms: rtts_ms.first().copied().unwrap_or(0.0),
        rtts_ms,
        echo_bytes: opts.echo_bytes,
        echo_mib_per_s,
        reconnects,
        hole_punch,
    })
}

/// Prints a report for people.
pub fn print_human(r: &DialReport) {
    if r.peer_learned {
        println!(
            "connected to   {} (learned from the handshake)",
            r.remote_peer
        );
    } else {
        println!("connected to   {}", r.remote_peer);
    }
    println!("security       {}", r.security);
    println!("muxer          {}", r.muxer);
    println!("connect        {:.2} ms", r.connect_ms);
    println!("agent          {}", r.agent_version);
    println!("protocol ver.  {}", r.protocol_version);
    println!("protocols      {}", r.protocols.join(", "));
    for a in &r.listen_addrs {
        println!("listens on     {a}");
    }
    for (i, rtt) in r.rtts_ms.iter().enumerate() {
        println!("ping {:<9} {rtt:.3} ms", i + 1);
    }
    if r.echo_bytes > 0 {
        println!(
            "echo           {} bytes verified ({:.1} MiB/s)",
            r.echo_bytes, r.echo_mib_per_s
        );
    }
    crate::reconnect::print_human(&r.reconnects);
    if let Some(h) = &r.hole_punch {
        match (&h.remote_addr, &h.reason) {
            (Some(addr), _) if h.direct => println!(
                "hole punch     direct after {:.1} ms (attempt {}) at {addr}",
                h.after_ms, h.attempts
            ),
            (_, reason) => println!(
                "hole punch     still relayed after {:.1} ms: {}",
                h.after_ms,
                reason.as_deref().unwrap_or("unknown")
            ),
        }
    }
}
