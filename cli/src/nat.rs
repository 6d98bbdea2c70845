//! `weft nat`: AutoNAT v2's verdict on each of our addresses.
//!
//! Listens, connects to the servers given (any peer that connects to us and speaks
//! AutoNAT v2 is asked too), and waits until every address has a settled verdict
//! (confirmed, not public, or no server left to ask) or the time is up; then prints
//! one line per address. With no server given it waits the whole time for peers to
//! connect.

use crate::options::{build_host_with, keypair, Security};
use serde::Serialize;
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use weft_host::autonat::DIAL_REQUEST_PROTOCOL;
use weft_host::autonat::{AutonatClientConfig, Reason};
use weft_host::dial::classify::{AddrClass, Classifier};
use weft_host::{DialConfig, Event, Host, Limits, Multiaddr, PeerId};

/// What `weft nat` does.
pub struct NatOptions {
    /// AutoNAT v2 servers to connect to.
    pub servers: Vec<Multiaddr>,
    /// Addresses to listen on (default `/ip4/0.0.0.0/tcp/0`).
    pub listen: Vec<Multiaddr>,
    /// More addresses of ours to test (say, a port mapping we know of).
    pub external: Vec<Multiaddr>,
    /// Address classes to take as public (tests in network namespaces).
    pub public: Vec<AddrClass>,
    /// Security protocols in order of preference.
    pub security: Vec<Security>,
    /// A fixed identity.
    pub seed: Option<String>,
    /// How long to wait for the verdicts.
    pub timeout: Duration,
}

/// One address and its verdict.
#[derive(Debug, Serialize)]
pub struct AddrReport {
    /// The address.
    pub addr: String,
    /// `reachable`, `unreachable` or `unknown`.
    pub reachability: String,
    /// Why, in words.
    pub verdict: String,
    /// Servers that dialed it back.
    pub successes: usize,
    /// Servers that could not.
    pub failures: usize,
}

/// What `weft nat` found.
#[derive(Debug, Serialize)]
pub struct NatReport {
    /// Always true (a failure is an error instead).
    pub ok: bool,
    /// Our peer id.
    pub peer: String,
    /// The servers we connected to.
    pub servers: usize,
    /// Each address with its verdict.
    pub addrs: Vec<AddrReport>,
}

/// Parses a class name of `--public`.
pub fn parse_class(s: &str) -> Result<AddrClass, String> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "loopback" => AddrClass::Loopback,
        "private" => AddrClass::Private,
        "link-local" => AddrClass::LinkLocal,
        "shared" => AddrClass::Shared,
        "documentation" => AddrClass::Documentation,
        "benchmarking" => AddrClass::Benchmarking,
        other => {
            return Err(format!(
                "unknown address class `{other}`: loopback, private, link-local, shared, \
                 documentation or benchmarking"
            ))
        }
    })
}

/// Runs `weft nat`.
pub async fn run(o: NatOptions) -> Result<NatReport, String> {
    let dial = DialConfig::default().with_classifier(Classifier::new().with_public(&o.public));
    let host = build_host_with(
        keypair(o.seed.as_deref())?,
        &o.security,
        true,
        Limits::auto(),
        |b| {
            b.dial_config(dial)
                .autonat_client(AutonatClientConfig::default())
        },
    )?;
    let mut events = host.subscribe();
    let listen = if o.listen.is_empty() {
        vec!["/ip4/0.0.0.0/tcp/0".parse().map_err(|e| format!("{e}"))?]
    } else {
        o.listen
    };
    for addr in &listen {
        host.listen(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    }
    for addr in o.external {
        host.add_external_addr(addr);
    }
    let servers = connect(&host, &o.servers).await?;
    if o.servers.is_empty() {
        // Only peers that connect to us can be asked: give them the whole time.
        tokio::time::sleep(o.timeout).await;
    } else if tokio::time::timeout(o.timeout, wait(&host, &mut events, servers.clone()))
        .await
        .is_err()
    {
        tracing::info!("time is up: printing the verdicts so far");
    }
    let addrs = host
        .reachability()
        .into_iter()
        .map(|(addr, v)| AddrReport {
            addr: addr.to_string(),
            reachability: v.reachability.to_string(),
            verdict: v.to_string(),
            successes: v.successes,
            failures: v.failures,
        })
        .collect();
    let peer = host.peer_id().to_string();
    host.shutdown().await;
    Ok(NatReport {
        ok: true,
        peer,
        servers: servers.len(),
        addrs,
    })
}

/// Connects to every server; fails only if none of those given answered.
async fn connect(host: &Host, servers: &[Multiaddr]) -> Result<HashSet<PeerId>, String> {
    let dials = servers.iter().map(|addr| async move {
        let r = host.dial(addr).await;
        (addr, r)
    });
    let mut connected = HashSet::new();
    let mut errors = Vec::new();
    for (addr, r) in futures::future::join_all(dials).await {
        match r {
            Ok(info) => {
                connected.insert(info.peer);
            }
            Err(e) => {
                eprintln!("weft: cannot connect to {addr}: {e}");
                errors.push(addr.to_string());
            }
        }
    }
    if connected.is_empty() && !servers.is_empty() {
        return Err(format!("no server answered ({})", errors.join(", ")));
    }
    Ok(connected)
}

/// Waits until every server dialed has been identified (so the client knows which
/// speak AutoNAT v2), and then until every address has a settled verdict: confirmed
/// or not public, or out of servers as reported after the servers were known (a
/// verdict from before they were is not taken). Returns at once when none of the
/// servers speaks AutoNAT v2.
async fn wait(
    host: &Host,
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    mut unidentified: HashSet<PeerId>,
) {
    let mut speaking = 0;
    let mut out_of_servers: HashSet<Multiaddr> = HashSet::new();
    loop {
        if unidentified.is_empty() {
            if speaking == 0 {
                return eprintln!("weft: none of the servers speaks AutoNAT v2");
            }
            let verdicts = host.reachability();
            let done = verdicts.iter().all(|(addr, v)| match v.reason {
                Reason::Confirmed | Reason::NotPublic => true,
                Reason::NoServers => out_of_servers.contains(addr),
                Reason::Probing => false,
            });
            if done && !verdicts.is_empty() {
                return;
            }
        }
        match events.recv().await {
            Ok(Event::PeerIdentified {
                peer, protocols, ..
            }) => {
                if unidentified.remove(&peer)
                    && protocols.iter().any(|p| p == DIAL_REQUEST_PROTOCOL)
                {
                    speaking += 1;
                }
            }
            Ok(Event::AddrReachability { addr, verdict }) if unidentified.is_empty() => {
                if verdict.reason == Reason::NoServers {
                    out_of_servers.insert(addr);
                } else {
                    out_of_servers.remove(&addr);
                }
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// Prints one line per address: the address, then the verdict.
pub fn print_human(report: &NatReport) {
    println!("peer {} ({} servers)", report.peer, report.servers);
    for a in &report.addrs {
        println!("{}  {}", a.addr, a.verdict);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes_parse() {
        assert_eq!(parse_class("Loopback").unwrap(), AddrClass::Loopback);
        assert_eq!(
            parse_class(" documentation").unwrap(),
            AddrClass::Documentation
        );
        assert!(parse_class("internet").is_err());
    }
}
