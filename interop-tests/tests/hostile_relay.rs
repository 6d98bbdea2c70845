//! A relay under a reservation and circuit flood (issue 18): `weft relay` with its
//! shipped defaults (`RelayConfig::default()`), attacked over real sockets by weft
//! hosts, each its own peer id, from `127.0.0.2..=127.0.0.19` (exactly `127.0.0.1` is
//! exempt from the per-IP caps, so the attackers come from elsewhere):
//!
//! - (a) reservations: 9 peer ids per address, 162 in all, more than the relay's
//!   8 per IP and 128 in total, renewing every round, two thirds of them
//!   reconnecting once (a new connection, the same peer id); meanwhile an honest
//!   peer from 127.0.0.1
//!   reserves. A census (a CONNECT to every peer: `NO_RESERVATION` or not) then
//!   holds the table to its caps, the honest reservation included.
//! - (b) circuits: every attacker opens 18 circuits (more than 16 per peer) to the
//!   attackers holding reservations, which accept them and never read; 48 of them
//!   push bytes without end, the rest stay idle. An honest dialer from 127.0.0.1
//!   then reaches the honest peer through the relay and echoes. The open circuits
//!   stay within 16 per peer and 1024 in total; each pushed circuit ends at its
//!   byte limit, each idle one at its time limit (2 min).
//! - (c) 64 hop streams stall mid-message; each ends within the relay's exchange
//!   timeout.
//!
//! Throughout, the relay's resident memory grows by less than 64 MiB.

#[path = "hostile_support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::io::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::Keypair;
use support::{RssSampler, GROWTH_BUDGET_KIB};
use tokio::task::JoinSet;
use weft_host::{Host, Multiaddr, PeerId, Protocol, Stream};
use weft_interop_tests::procfs::{mib, rss_kib};
use weft_interop_tests::WeftListen;
use weft_relay::{Circuit, ClientError, RelayConfig, Status, HOP_PROTOCOL, STOP_PROTOCOL};

/// Attackers' addresses: 127.0.0.2 ..= 127.0.0.(1 + ADDRESSES).
const ADDRESSES: u8 = 18;
/// Attacker peer ids per address.
const PER_ADDRESS: usize = 9;
/// Circuits each attacker tries to open.
const CIRCUITS_EACH: usize = 18;
/// Circuits that push bytes without end (the first circuit of this many attackers).
const PUSHERS: usize = 48;
/// Hop streams stalled mid-message.
const STALLERS: usize = 64;
/// The timeout of one exchange from the test's side (generous: a loaded machine).
const EXCHANGE: Duration = Duration::from_secs(30);
/// Attackers connecting at once.
const CONNECTING: usize = 32;
/// Rounds of renewals in the reservation flood.
const ROUNDS: usize = 4;
const ECHO: &str = "/echo/1.0.0";

fn attacker_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (i % usize::from(ADDRESSES)) as u8)
}

/// An attacker: a weft host listening (and so dialing, with port reuse) on its own
/// 127.0.0.x address. It accepts every circuit the relay brings it, except the
/// census prober's, and never reads them.
struct Attacker {
    keypair: Keypair,
    ip: Ipv4Addr,
    host: Host,
    held: Arc<Mutex<Vec<Circuit>>>,
}

impl Attacker {
    async fn start(keypair: Keypair, ip: Ipv4Addr, relay: &Multiaddr, prober: PeerId) -> Self {
        let held = Arc::new(Mutex::new(Vec::new()));
        let host = attacker_host(keypair.clone(), ip, relay, prober, held.clone()).await;
        Attacker {
            keypair,
            ip,
            host,
            held,
        }
    }

    /// A new connection to the relay with the same peer id.
    async fn reconnect(&mut self, relay: &Multiaddr, prober: PeerId) {
        self.host.shutdown().await;
        self.host = attacker_host(
            self.keypair.clone(),
            self.ip,
            relay,
            prober,
            self.held.clone(),
        )
        .await;
    }

    fn peer(&self) -> PeerId {
        self.host.peer_id()
    }
}

async fn attacker_host(
    keypair: Keypair,
    ip: Ipv4Addr,
    relay: &Multiaddr,
    prober: PeerId,
    held: Arc<Mutex<Vec<Circuit>>>,
) -> Host {
    let host = Host::builder()
        .keypair(keypair)
        .relay_client(false)
        .hole_punching_enabled(false)
        .build()
        .expect("attacker host");
    host.listen(&format!("/ip4/{ip}/tcp/0").parse().expect("address"))
        .await
        .expect("attacker listens");
    host.set_handler(STOP_PROTOCOL, move |stream: Stream| {
        let held = held.clone();
        async move {
            let relay = stream.peer();
            let Ok(request) = weft_relay::read_stop(Box::new(stream), relay, EXCHANGE).await else {
                return;
            };
            if request.source() == prober {
                let _ = request.deny(Status::ConnectionFailed).await;
            } else if let Ok(circuit) = request.accept().await {
                held.lock().unwrap().push(circuit);
            }
        }
    });
    tokio::time::timeout(EXCHANGE, host.dial(relay))
        .await
        .expect("attacker dial in time")
        .expect("attacker connects to the relay");
    host
}

/// A plain host on 127.0.0.1 without hole punching (the circuit must carry it all).
async fn honest_host() -> Host {
    let host = Host::builder()
        .hole_punching_enabled(false)
        .build()
        .expect("honest host");
    host.listen(&"/ip4/127.0.0.1/tcp/0".parse().expect("address"))
        .await
        .expect("honest host listens");
    host
}

/// How a RESERVE went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reserve {
    Granted,
    Refused,
}

async fn reserve(host: &Host, relay: PeerId) -> Result<Reserve, String> {
    let mut stream = host
        .new_stream(relay, &[HOP_PROTOCOL])
        .await
        .map_err(|e| format!("hop stream: {e}"))?;
    match weft_relay::reserve(&mut stream, relay, host.peer_id(), EXCHANGE).await {
        Ok(_) => Ok(Reserve::Granted),
        Err(ClientError::Refused {
            status: Status::ReservationRefused,
            ..
        }) => Ok(Reserve::Refused),
        Err(e) => Err(e.to_string()),
    }
}

/// Why a CONNECT failed.
#[derive(Debug)]
enum ConnectError {
    /// The relay refused with this status.
    Refused(Status),
    /// Anything else.
    Failed(String),
}

/// Opens a circuit from `host` to `target` through `relay`.
async fn connect(host: &Host, relay: PeerId, target: PeerId) -> Result<Circuit, ConnectError> {
    let stream = host
        .new_stream(relay, &[HOP_PROTOCOL])
        .await
        .map_err(|e| ConnectError::Failed(format!("hop stream: {e}")))?;
    weft_relay::connect(Box::new(stream), relay, target, EXCHANGE)
        .await
        .map_err(|e| match e {
            ClientError::Refused { status, .. } => ConnectError::Refused(status),
            other => ConnectError::Failed(other.to_string()),
        })
}

/// Whether `target` holds a reservation, asked with a CONNECT from the prober: the
/// relay answers `NO_RESERVATION`, or it opens a stop stream to the target (which
/// refuses the prober's circuits, or, the honest host, accepts).
async fn holds_reservation(prober: &Host, relay: PeerId, target: PeerId) -> bool {
    match connect(prober, relay, target).await {
        Ok(_) | Err(ConnectError::Refused(Status::ConnectionFailed)) => true,
        Err(ConnectError::Refused(Status::NoReservation)) => false,
        Err(e) => panic!("the census CONNECT to {target} failed: {e:?}"),
    }
}

/// One circuit the flood opened, as its initiator sees it.
struct Opened {
    src: PeerId,
    dst: PeerId,
    pusher: bool,
    opened: Instant,
    /// When it ended (reset or closed by the relay), and the bytes pushed into it.
    ended: Arc<Mutex<Option<(Instant, u64)>>>,
}

impl Opened {
    fn ended(&self) -> Option<(Instant, u64)> {
        *self.ended.lock().unwrap()
    }
}

/// Watches a circuit: a pusher writes 16 KiB chunks until a write fails; an idle
/// one waits for its end (the targets never write).
fn watch(mut circuit: Circuit, src: PeerId, dst: PeerId, pusher: bool) -> Opened {
    let ended = Arc::new(Mutex::new(None));
    let opened = Instant::now();
    tokio::spawn({
        let ended = ended.clone();
        async move {
            let mut pushed = 0u64;
            if pusher {
                let chunk = vec![0x5a_u8; 16 * 1024];
                while circuit.write_all(&chunk).await.is_ok() {
                    pushed += chunk.len() as u64;
                }
            } else {
                let mut byte = [0u8; 1];
                let _ = circuit.read(&mut byte).await;
            }
            *ended.lock().unwrap() = Some((Instant::now(), pushed));
        }
    });
    Opened {
        src,
        dst,
        pusher,
        opened,
        ended,
    }
}

/// Waits until `done` holds, or `limit` passes; whether it held.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    done()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_relay_keeps_its_caps_and_budget_and_serves_honest_peers() {
    let config = RelayConfig::default();
    let attackers_n = usize::from(ADDRESSES) * PER_ADDRESS;
    assert!(attackers_n > config.max_reservations);
    assert!(PER_ADDRESS > config.max_reservations_per_ip);
    assert!(CIRCUITS_EACH > config.max_circuits_per_peer);
    assert!(attackers_n * CIRCUITS_EACH > config.max_circuits);

    let mut relay_process = WeftListen::relay().spawn().await.unwrap();
    let pid = relay_process.pid().unwrap();
    let relay_addr = relay_process.addr().clone();
    let relay = relay_process.peer_id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid).unwrap();
    let sampler = RssSampler::start(pid);

    let prober = Host::builder()
        .relay_client(false)
        .hole_punching_enabled(false)
        .build()
        .unwrap();
    prober.dial(&relay_addr).await.unwrap();
    let prober_id = prober.peer_id();

    // (a) The reservation flood.
    // Connections come in 32 at a time, round robin over the addresses: the relay
    // admits 8 handshakes per address at once, and this flood is not about those.
    let mut starting = JoinSet::new();
    let mut attackers: Vec<Attacker> = Vec::new();
    for i in 0..attackers_n {
        let relay_addr = relay_addr.clone();
        starting.spawn(async move {
            Attacker::start(
                Keypair::generate_ed25519(),
                attacker_ip(i),
                &relay_addr,
                prober_id,
            )
            .await
        });
        if starting.len() >= CONNECTING {
            attackers.extend(starting.join_next().await.map(Result::unwrap));
        }
    }
    attackers.extend(starting.join_all().await);
    let honest_target = honest_host().await;
    honest_target.set_handler(ECHO, |mut stream: Stream| async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = stream.close().await;
    });
    let mut honest_addrs = Vec::new();
    for round in 0..ROUNDS {
        if round == 1 || round == 2 {
            let mut moving = JoinSet::new();
            for (i, mut a) in std::mem::take(&mut attackers).into_iter().enumerate() {
                let relay_addr = relay_addr.clone();
                moving.spawn(async move {
                    if i % 3 == round {
                        a.reconnect(&relay_addr, prober_id).await;
                    }
                    a
                });
                if moving.len() >= CONNECTING {
                    attackers.extend(moving.join_next().await.map(Result::unwrap));
                }
            }
            attackers.extend(moving.join_all().await);
        }
        let mut renewing = JoinSet::new();
        for (i, a) in attackers.iter().enumerate() {
            let host = a.host.clone();
            renewing.spawn(async move { (i, reserve(&host, relay).await) });
        }
        if round == 2 {
            // The honest reservation, while the table is full and the flood renews.
            let circuit = relay_addr.clone().with(Protocol::P2pCircuit);
            honest_addrs = tokio::time::timeout(EXCHANGE * 2, honest_target.listen(&circuit))
                .await
                .expect("the honest reservation answered in time")
                .expect("the honest peer reserves during the flood");
        }
        let mut granted = 0;
        while let Some(done) = renewing.join_next().await {
            let (i, outcome) = done.unwrap();
            match outcome {
                Ok(Reserve::Granted) => granted += 1,
                Ok(Reserve::Refused) => {}
                Err(e) => panic!("attacker {i}'s RESERVE failed: {e}"),
            }
        }
        eprintln!("reservation flood, round {round}: {granted} of {attackers_n} granted");
    }
    assert!(!honest_addrs.is_empty());

    // The census of reservations, the flood paused.
    let mut held_per_ip: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
    let mut targets = Vec::new();
    for a in &attackers {
        if holds_reservation(&prober, relay, a.peer()).await {
            *held_per_ip.entry(a.ip).or_default() += 1;
            targets.push(a.peer());
        }
    }
    let honest_holds = holds_reservation(&prober, relay, honest_target.peer_id()).await;
    let held = targets.len() + usize::from(honest_holds);
    eprintln!(
        "reservations held: {held} (honest: {honest_holds}), per attacker address: {held_per_ip:?}"
    );
    assert!(honest_holds, "the honest reservation was lost to the flood");
    assert!(
        held <= config.max_reservations,
        "{held} reservations held, over the relay's {}",
        config.max_reservations
    );
    assert!(
        held_per_ip
            .values()
            .all(|n| *n <= config.max_reservations_per_ip),
        "an address holds more than {} reservations: {held_per_ip:?}",
        config.max_reservations_per_ip
    );
    assert!(
        held > config.max_reservations * 3 / 4,
        "the flood did not fill the table ({held} held): the test attacks nothing"
    );

    // (c) Hop streams stalled mid-message: a length of 100 bytes, then 10 of them.
    let mut stallers = JoinSet::new();
    for a in attackers.iter().cycle().take(STALLERS) {
        let host = a.host.clone();
        stallers.spawn(async move {
            let mut stream = host.new_stream(relay, &[HOP_PROTOCOL]).await.ok()?;
            let mut partial = vec![100u8];
            partial.extend_from_slice(&[0u8; 10]);
            stream.write_all(&partial).await.ok()?;
            stream.flush().await.ok()?;
            let started = Instant::now();
            // Whatever the relay does (a reset, a close), the stream ends.
            let mut rest = Vec::new();
            let _ = (&mut stream).take(4096).read_to_end(&mut rest).await;
            Some(started.elapsed())
        });
    }

    // (b) The circuit flood.
    assert!(!targets.is_empty());
    let mut opening = JoinSet::new();
    for (i, a) in attackers.iter().enumerate() {
        let host = a.host.clone();
        let src = a.peer();
        let dsts: Vec<PeerId> = (0..CIRCUITS_EACH)
            .map(|k| targets[(i * 7 + k) % targets.len()])
            .filter(|d| *d != src)
            .collect();
        opening.spawn(async move {
            let mut opened = Vec::new();
            let mut refusals: HashMap<String, usize> = HashMap::new();
            for (k, dst) in dsts.into_iter().enumerate() {
                match connect(&host, relay, dst).await {
                    Ok(circuit) => {
                        let pusher = k == 0 && i < PUSHERS;
                        opened.push(watch(circuit, src, dst, pusher));
                    }
                    Err(ConnectError::Refused(status)) => {
                        *refusals.entry(status.to_string()).or_default() += 1;
                    }
                    Err(ConnectError::Failed(e)) => *refusals.entry(e).or_default() += 1,
                }
            }
            (opened, refusals)
        });
    }
    let mut circuits: Vec<Opened> = Vec::new();
    let mut refusals: HashMap<String, usize> = HashMap::new();
    for (opened, refused) in opening.join_all().await {
        circuits.extend(opened);
        for (why, n) in refused {
            *refusals.entry(why).or_default() += n;
        }
    }
    eprintln!(
        "circuit flood: {} opened, refused: {refusals:?}",
        circuits.len()
    );

    // The honest dialer, the circuit table full.
    let dialer = Host::builder()
        .hole_punching_enabled(false)
        .build()
        .unwrap();
    let target_addr = honest_addrs[0]
        .clone()
        .with(Protocol::P2p(honest_target.peer_id()));
    let info = tokio::time::timeout(EXCHANGE * 2, dialer.dial(&target_addr))
        .await
        .expect("the honest dial answered in time")
        .expect("the honest dialer reaches the honest peer through the flooded relay");
    assert!(info.is_relayed(), "{info:?}");
    let payload: Vec<u8> = (0..16 * 1024u32).map(|i| (i % 251) as u8).collect();
    let echoed = tokio::time::timeout(EXCHANGE * 2, async {
        let mut stream = dialer
            .new_stream(honest_target.peer_id(), &[ECHO])
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(&payload)
            .await
            .map_err(|e| e.to_string())?;
        stream.close().await.map_err(|e| e.to_string())?;
        let mut back = Vec::new();
        stream
            .read_to_end(&mut back)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(back)
    })
    .await
    .expect("the honest echo answered in time")
    .expect("the honest echo through the circuit");
    assert!(echoed == payload, "the echo came back altered");
    assert!(dialer
        .connections_to(&honest_target.peer_id())
        .iter()
        .all(|c| c.is_relayed()));

    // The circuits open now, within their caps. No CONNECT comes after this, so no
    // circuit is evicted: each one left ends at its limits.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let open: Vec<&Opened> = circuits.iter().filter(|c| c.ended().is_none()).collect();
    let mut per_peer: HashMap<PeerId, usize> = HashMap::new();
    for c in &open {
        *per_peer.entry(c.src).or_default() += 1;
        *per_peer.entry(c.dst).or_default() += 1;
    }
    let busiest = per_peer.values().copied().max().unwrap_or(0);
    eprintln!(
        "circuits open after the flood: {} (the busiest peer is an end of {busiest})",
        open.len()
    );
    assert!(
        open.len() <= config.max_circuits,
        "{} circuits open, over the relay's {}",
        open.len(),
        config.max_circuits
    );
    assert!(
        busiest <= config.max_circuits_per_peer,
        "a peer is an end of {busiest} circuits, over the relay's {} per peer",
        config.max_circuits_per_peer
    );
    assert!(
        refusals.values().sum::<usize>() > 0 && open.len() > config.max_circuits / 2,
        "the flood hit no cap: the test attacks nothing"
    );

    // Each pushed circuit ends at its byte limit.
    let data_limit = config.max_circuit_bytes.unwrap();
    let pushers: Vec<&Opened> = circuits.iter().filter(|c| c.pusher).collect();
    assert!(!pushers.is_empty());
    assert!(
        wait_until(EXCHANGE * 2, || pushers.iter().all(|c| c.ended().is_some())).await,
        "pushed circuits still open past their byte limit"
    );
    let most_pushed = pushers
        .iter()
        .filter_map(|c| c.ended().map(|(_, pushed)| pushed))
        .max()
        .unwrap_or(0);
    // What the relay took before it reset: the limit, its copy buffer and the
    // stream's receive window (256 KiB), what our own stream accepted besides.
    assert!(
        most_pushed <= data_limit + (1 << 20),
        "a circuit took {most_pushed} bytes, past its limit of {data_limit}"
    );

    // Each stalled hop stream ends within the relay's exchange timeout.
    let stalled: Vec<Option<Duration>> =
        tokio::time::timeout(config.handshake_timeout + EXCHANGE, stallers.join_all())
            .await
            .expect("stalled hop streams still open past the relay's exchange timeout");
    let longest = stalled.iter().flatten().max().copied().unwrap_or_default();
    eprintln!(
        "stalled hop streams: {} of {STALLERS} opened, the longest lived {:.1} s",
        stalled.iter().flatten().count(),
        longest.as_secs_f64()
    );
    assert!(stalled.iter().flatten().count() > STALLERS / 2);
    assert!(
        longest <= config.handshake_timeout + EXCHANGE,
        "a stalled hop stream lived {longest:?}, past the relay's exchange timeout of {:?}",
        config.handshake_timeout
    );

    // Each idle circuit left ends at its time limit.
    let duration_limit = config.max_circuit_duration.unwrap();
    let idle: Vec<&Opened> = open.iter().copied().filter(|c| !c.pusher).collect();
    let last_open = idle.iter().map(|c| c.opened).max().unwrap();
    let deadline = last_open + duration_limit + EXCHANGE;
    assert!(
        wait_until(deadline.saturating_duration_since(Instant::now()), || idle
            .iter()
            .all(|c| c.ended().is_some()))
        .await,
        "idle circuits still open {:?} past their time limit of {duration_limit:?}",
        EXCHANGE
    );
    let early = idle
        .iter()
        .filter(|c| {
            c.ended()
                .is_some_and(|(at, _)| at - c.opened < duration_limit - Duration::from_secs(10))
        })
        .count();
    assert_eq!(early, 0, "idle circuits ended well before their time limit");

    let peak = sampler.stop().await;
    let growth = peak.saturating_sub(before);
    eprintln!(
        "weft relay: {:.1} MiB before, peak {:.1} MiB (+{:.1} MiB)",
        mib(before),
        mib(peak),
        mib(growth)
    );
    assert!(
        relay_process.is_running(),
        "weft relay died under the flood:\n{}",
        relay_process.stderr()
    );
    assert!(
        growth < GROWTH_BUDGET_KIB,
        "weft relay's resident memory grew by {:.1} MiB under the flood; the budget is \
         less than 64 MiB",
        mib(growth)
    );
}
