//! `weft nat`: AutoNAT v2's verdict on each of our addresses.
//!
//! Listens, connects to the servers given (any peer that connects to us and speaks
//! AutoNAT v2 is asked too), and waits until every address has a settled verdict
//! (confirmed, not public, or no server left to ask) or the time is up; then prints
//! one line per address. With no server given it waits the whole time for peers to
//! connect.

use crate::options::{build_host_with, keypair, Security};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use weft_host::autonat::DIAL_REQUEST_PROTOCOL;
use weft_host::autonat::{AutonatClientConfig, Reason};
use weft_host::dial::classify::{AddrClass, Classifier};
use weft_host::{ConnectionId, DialConfig, DialOpts, Event, Host, Limits, Multiaddr, PeerId};

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
    /// From the start (listening) to the verdict, in milliseconds, for an address
    /// confirmed reachable or unreachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<f64>,
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
    let classifier = Classifier::new().with_public(&o.public);
    let dial = DialConfig::default().with_classifier(classifier.clone());
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
    let started = Instant::now();
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
    let mut confirmed = HashMap::new();
    if o.servers.is_empty() {
        // Only peers that connect to us can be asked: give them the whole time.
        let _ = tokio::time::timeout(o.timeout, record(&mut events, started, &mut confirmed)).await;
    } else if tokio::time::timeout(
        o.timeout,
        wait(
            &host,
            &mut events,
            servers.keys().copied().collect(),
            Watch {
                classifier: &classifier,
                started,
                confirmed: &mut confirmed,
            },
        ),
    )
    .await
    .is_err()
    {
        tracing::info!("time is up: printing the verdicts so far");
    }
    // Verdicts already taken by `wait` whose events are still queued.
    loop {
        match events.try_recv() {
            Ok(Event::AddrReachability { addr, verdict }) => {
                note(&mut confirmed, started, addr, &verdict.reason);
            }
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => break,
        }
    }
    let addrs = host
        .reachability()
        .into_iter()
        .map(|(addr, v)| AddrReport {
            after_ms: confirmed
                .get(&addr)
                .filter(|_| v.reason == Reason::Confirmed)
                .map(|d: &Duration| d.as_secs_f64() * 1e3),
            addr: addr.to_string(),
            reachability: v.reachability.to_string(),
            verdict: v.to_string(),
            successes: v.successes,
            failures: v.failures,
        })
        .collect();
    let peer = host.peer_id().to_string();
    host.shutdown().await;
    let servers: HashSet<PeerId> = servers.into_values().collect();
    Ok(NatReport {
        ok: true,
        peer,
        servers: servers.len(),
        addrs,
    })
}

/// Connects to every server address (a server given at a TCP and a QUIC address is
/// connected to twice, so both transports get observed); fails only if none of
/// those given answered. Returns the connections, with their peers.
async fn connect(
    host: &Host,
    servers: &[Multiaddr],
) -> Result<HashMap<ConnectionId, PeerId>, String> {
    let dials = servers.iter().map(|addr| async move {
        let r = host
            .dial_with(addr, DialOpts::new().with_new_connection(true))
            .await;
        (addr, r)
    });
    let mut connected = HashMap::new();
    let mut errors = Vec::new();
    for (addr, r) in futures::future::join_all(dials).await {
        match r {
            Ok(info) => {
                connected.insert(info.id, info.peer);
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

/// Notes in `confirmed` when (since `started`) each address got its latest
/// confirmed verdict, until the events end.
async fn record(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    started: Instant,
    confirmed: &mut HashMap<Multiaddr, Duration>,
) {
    loop {
        match events.recv().await {
            Ok(Event::AddrReachability { addr, verdict }) => {
                note(confirmed, started, addr, &verdict.reason);
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// Keeps the time of a confirmed verdict (a change to another confirmed one, say
/// reachable to unreachable, moves it).
fn note(
    confirmed: &mut HashMap<Multiaddr, Duration>,
    started: Instant,
    addr: Multiaddr,
    reason: &Reason,
) {
    if *reason == Reason::Confirmed {
        confirmed.insert(addr, started.elapsed());
    }
}

/// How long "no more servers to ask" must hold before it is final, when some
/// servers gave no answer about the address.
const NO_SERVERS_GRACE: Duration = Duration::from_secs(2);

/// What [`wait`] needs besides the host: our classifier (which observed addresses
/// the client will probe), and where to note the time of each confirmed verdict.
struct Watch<'a> {
    classifier: &'a Classifier,
    started: Instant,
    confirmed: &'a mut HashMap<Multiaddr, Duration>,
}

/// Waits until every server connection has been identified (so the client knows
/// which speak AutoNAT v2, and the addresses they observe us at, which it probes),
/// and then until every address, those observed included, has a settled verdict:
/// confirmed or not public, or out of servers as reported after the servers were
/// known (a verdict from before they were is not taken). Returns at once when none
/// of the servers speaks AutoNAT v2. Notes the time of each confirmed verdict (since
/// `started`).
async fn wait(
    host: &Host,
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    mut unidentified: HashSet<ConnectionId>,
    watch: Watch<'_>,
) {
    let Watch {
        classifier,
        started,
        confirmed,
    } = watch;
    let mut speaking: HashSet<PeerId> = HashSet::new();
    let mut observed: HashSet<Multiaddr> = HashSet::new();
    let mut out_of_servers: HashMap<Multiaddr, Instant> = HashMap::new();
    loop {
        if unidentified.is_empty() {
            if speaking.is_empty() {
                return eprintln!("weft: none of the servers speaks AutoNAT v2");
            }
            let verdicts = host.reachability();
            // Out of servers is final once every server answered about it, or when
            // it held for a while (the others failed, and are backed off): the client
            // may learn of the last servers after we did.
            let done = verdicts.iter().all(|(addr, v)| match v.reason {
                Reason::Confirmed | Reason::NotPublic => true,
                Reason::NoServers => out_of_servers.get(addr).is_some_and(|at| {
                    v.successes + v.failures >= speaking.len() || at.elapsed() >= NO_SERVERS_GRACE
                }),
                Reason::Probing => false,
            });
            let tracked = observed
                .iter()
                .all(|o| verdicts.iter().any(|(addr, _)| addr == o));
            if done && tracked && !verdicts.is_empty() {
                return;
            }
        }
        let event = tokio::select! {
            event = events.recv() => event,
            // Looks again when a grace period may have ended.
            _ = tokio::time::sleep(NO_SERVERS_GRACE / 4) => continue,
        };
        match event {
            Ok(Event::PeerIdentified {
                peer,
                connection,
                protocols,
                observed_addr,
                ..
            }) => {
                if unidentified.remove(&connection)
                    && protocols.iter().any(|p| p == DIAL_REQUEST_PROTOCOL)
                {
                    speaking.insert(peer);
                    observed
                        .extend(observed_addr.filter(|a| classifier.addr(a) == AddrClass::Public));
                }
            }
            Ok(Event::AddrReachability { addr, verdict }) if unidentified.is_empty() => {
                note(confirmed, started, addr.clone(), &verdict.reason);
                if verdict.reason == Reason::NoServers {
                    out_of_servers.insert(addr, Instant::now());
                } else {
                    out_of_servers.remove(&addr);
                }
            }
            Ok(Event::AddrReachability { addr, verdict }) => {
                note(confirmed, started, addr, &verdict.reason);
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
        match a.after_ms {
            Some(ms) => println!("{}  {} (after {ms:.0} ms)", a.addr, a.verdict),
            None => println!("{}  {}", a.addr, a.verdict),
        }
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
