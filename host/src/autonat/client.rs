//! The AutoNAT v2 client in the host: the loop that feeds the tracker our addresses
//! and the servers, runs its probes (several at once, within the tracker's limits),
//! and reports verdicts; and the dial-back handler.
//!
//! The addresses probed: our listen and accepted external addresses, the candidates
//! identify's observations confirmed ([`Event::ExternalAddrCandidate`]), and each
//! public address an AutoNAT server observed us at. A server's observation is probed
//! at once, without waiting for other observers to confirm it: the servers are the
//! peers we ask anyway (so those candidates stay few), and the confidence rule, not
//! the number of observers, decides. Behind a symmetric NAT each server sees another
//! port, and each of those is probed and found unreachable.

use super::AutonatClientConfig;
use crate::conn::ConnState;
use crate::dial::classify::AddrClass;
use crate::events::Event;
use crate::handlers::{Handler, HandlerOptions};
use crate::host::Inner;
use crate::stream::Stream;
use crate::transport::is_circuit;
use futures::channel::oneshot;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Notify;
use tracing::{debug, info};
use weft_autonat::{
    dial_back, Change, Evidence, Probe, ProbeConfig, Tracker, Verdict, DIAL_BACK_PROTOCOL,
    DIAL_REQUEST_PROTOCOL,
};
use weft_connmgr::ConnectionId;

/// How often the loop looks at our addresses even without an event (accepted
/// external addresses change without one).
const POLL: Duration = Duration::from_secs(2);
/// Candidate addresses from identify's observations kept for probing.
const MAX_CANDIDATES: usize = 8;
/// The longest a dial-back stream may take to bring its nonce and be acknowledged.
const DIAL_BACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Dial-back streams served at once, and per peer.
const MAX_DIAL_BACK_STREAMS: usize = 8;

/// The client's state, shared by its loop, its dial-back handler and the host's
/// query methods.
pub(crate) struct ClientShared {
    tracker: Mutex<Tracker>,
    /// The probe in flight, by nonce: where to report its dial-back.
    pending: Mutex<HashMap<u64, oneshot::Sender<Multiaddr>>>,
    /// Wakes the loop (a re-probe was asked for).
    wake: Notify,
    probe: ProbeConfig,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ClientShared {
    pub(crate) fn verdicts(&self) -> Vec<(Multiaddr, Verdict)> {
        lock(&self.tracker).verdicts()
    }

    pub(crate) fn reprobe(&self) {
        lock(&self.tracker).reprobe_all(Instant::now());
        self.wake.notify_one();
    }
}

/// Starts the client: the dial-back handler and the loop.
pub(crate) fn install(inner: &Arc<Inner>, config: AutonatClientConfig) {
    let shared = Arc::new(ClientShared {
        tracker: Mutex::new(Tracker::new(config.tracker)),
        pending: Mutex::default(),
        wake: Notify::new(),
        probe: config.probe,
    });
    inner.lock().autonat = Some(shared.clone());
    let weak = Arc::downgrade(inner);
    let serving = shared.clone();
    let handler: Handler = Arc::new(move |stream: Stream| {
        let (weak, shared) = (weak.clone(), serving.clone());
        Box::pin(async move { answer_dial_back(weak, shared, stream).await })
    });
    let options = HandlerOptions::default()
        .with_max_inbound_streams(MAX_DIAL_BACK_STREAMS)
        .with_max_inbound_streams_per_peer(Some(1));
    inner.add_exact_handler(DIAL_BACK_PROTOCOL.to_string(), handler, options);
    let events = inner.events.subscribe();
    let shutdown = inner.shutdown.clone();
    let weak = Arc::downgrade(inner);
    inner.tasks.spawn(async move {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = drive(weak, shared, events) => {}
        }
    });
}

/// The dial-back handler: reads the nonce, reports it to the probe that waits for
/// it (with our address on this connection), and acknowledges; a nonce no probe
/// waits for gets the stream reset.
async fn answer_dial_back(weak: Weak<Inner>, shared: Arc<ClientShared>, mut stream: Stream) {
    let nonce = match dial_back::read_nonce(&mut stream, DIAL_BACK_TIMEOUT).await {
        Ok(n) => n,
        Err(e) => return debug!(peer = %stream.peer(), error = %e, "dial-back unreadable"),
    };
    let waiter = lock(&shared.pending).remove(&nonce);
    let local = weak
        .upgrade()
        .and_then(|inner| inner.connection(&stream.connection()))
        .map(|c| c.local_addr.clone());
    match (waiter, local) {
        (Some(tx), Some(local)) => {
            debug!(peer = %stream.peer(), %local, "dial-back with our nonce");
            let _ = tx.send(local);
            if let Err(e) = dial_back::acknowledge(&mut stream, DIAL_BACK_TIMEOUT).await {
                debug!(error = %e, "dial-back acknowledgement failed");
            }
        }
        _ => {
            debug!(peer = %stream.peer(), "dial-back with a nonce no probe waits for");
            stream.reset();
        }
    }
}

/// The connections each server was identified on as speaking AutoNAT v2. Kept per
/// connection, not per peer: identify answers per connection, and a rust-libp2p
/// server's own dial-back connection (same peer id, client handlers only) does not
/// list the protocol.
type Servers = HashMap<PeerId, Vec<ConnectionId>>;

/// An open connection to `peer`, identified as an AutoNAT v2 server's and not
/// relayed (servers refuse requests over relayed connections).
fn server_connection(inner: &Inner, servers: &Servers, peer: &PeerId) -> Option<Arc<ConnState>> {
    servers
        .get(peer)?
        .iter()
        .rev()
        .filter_map(|id| inner.connection(id))
        .find(|c| c.is_usable() && !is_circuit(&c.remote_addr))
}

/// Our addresses to test, each with whether it is public: listen addresses with
/// an IP (not relayed), accepted external addresses, and identify's candidates.
fn our_addrs(inner: &Inner, candidates: &VecDeque<Multiaddr>) -> Vec<(Multiaddr, bool)> {
    let classifier = &inner.dialer.config.classifier;
    let mut addrs = inner.listen_addrs();
    addrs.extend(inner.external_addrs());
    addrs.extend(candidates.iter().cloned());
    addrs
        .into_iter()
        .filter(|a| !is_circuit(a) && crate::dial::classify::leading_ip(a).is_some())
        .map(|a| {
            let public = classifier.addr(&a) == AddrClass::Public;
            (a, public)
        })
        .collect()
}

/// Runs one probe: a dial-request stream on a direct connection to the server, the
/// nonce registered for the dial-back handler. `None` when it taught nothing.
async fn run_probe(
    weak: Weak<Inner>,
    shared: Arc<ClientShared>,
    probe: Probe,
    conn: Option<Arc<ConnState>>,
) -> Option<Evidence> {
    let inner = weak.upgrade()?;
    let conn = conn?;
    let stream = match inner.open_stream_on(&conn, &[DIAL_REQUEST_PROTOCOL]).await {
        Ok(s) => s,
        Err(e) => {
            debug!(server = %probe.server, error = %e, "no dial-request stream");
            return None;
        }
    };
    drop((inner, conn));
    let nonce: u64 = rand::random();
    let (tx, rx) = oneshot::channel();
    lock(&shared.pending).insert(nonce, tx);
    let result = weft_autonat::probe(Box::new(stream), &probe.addr, nonce, rx, &shared.probe).await;
    lock(&shared.pending).remove(&nonce);
    match result {
        Ok(evidence) => {
            debug!(addr = %probe.addr, server = %probe.server, ?evidence, "probe done");
            Some(evidence)
        }
        Err(e) => {
            debug!(addr = %probe.addr, server = %probe.server, error = %e, "probe taught nothing");
            None
        }
    }
}

/// Keeps `addr` as a candidate to probe (the oldest goes when there are too many).
fn add_candidate(candidates: &mut VecDeque<Multiaddr>, addr: Multiaddr) {
    if candidates.contains(&addr) {
        return;
    }
    if candidates.len() >= MAX_CANDIDATES {
        candidates.pop_front();
    }
    candidates.push_back(addr);
}

/// What the loop learnt from one event. A later identify without the protocol drops
/// only its own connection; a push that removes it is not acted on (the next probe
/// to that peer fails and backs it off for the address). The address a server
/// observed us at becomes a candidate when `classifier` calls it public.
fn on_event(
    event: Event,
    classifier: &crate::dial::classify::Classifier,
    servers: &mut Servers,
    candidates: &mut VecDeque<Multiaddr>,
) {
    match event {
        Event::PeerIdentified {
            peer,
            connection,
            protocols,
            observed_addr,
            ..
        } => {
            let conns = servers.entry(peer).or_default();
            conns.retain(|c| *c != connection);
            if protocols.iter().any(|p| p == DIAL_REQUEST_PROTOCOL) {
                conns.push(connection);
                if let Some(addr) = observed_addr.filter(|a| {
                    !is_circuit(a)
                        && crate::dial::classify::leading_ip(a).is_some()
                        && classifier.addr(a) == AddrClass::Public
                }) {
                    add_candidate(candidates, addr);
                }
            }
            if conns.is_empty() {
                servers.remove(&peer);
            }
        }
        Event::Disconnected {
            peer, connection, ..
        } => {
            if let Some(conns) = servers.get_mut(&peer) {
                conns.retain(|c| *c != connection);
                if conns.is_empty() {
                    servers.remove(&peer);
                }
            }
        }
        Event::ExternalAddrCandidate { addr, .. } => add_candidate(candidates, addr),
        _ => {}
    }
}

fn report(inner: &Inner, changes: Vec<Change>) {
    for Change { addr, verdict } in changes {
        info!(%addr, %verdict, "AutoNAT verdict");
        inner.emit(Event::AddrReachability { addr, verdict });
    }
}

/// Why the loop woke up.
enum Woke {
    Probed(Probe, Option<Evidence>),
    Event(Box<Result<Event, RecvError>>),
    Tick,
}

async fn drive(
    weak: Weak<Inner>,
    shared: Arc<ClientShared>,
    mut events: tokio::sync::broadcast::Receiver<Event>,
) {
    let mut servers: Servers = HashMap::new();
    let mut candidates: VecDeque<Multiaddr> = VecDeque::new();
    let mut running: FuturesUnordered<BoxFuture<'static, (Probe, Option<Evidence>)>> =
        FuturesUnordered::new();
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let now = Instant::now();
        let addrs = our_addrs(&inner, &candidates);
        let live: Vec<PeerId> = servers
            .keys()
            .filter(|p| server_connection(&inner, &servers, p).is_some())
            .copied()
            .collect();
        let (changes, next, wakeup) = {
            let mut tracker = lock(&shared.tracker);
            let mut changes = tracker.set_addrs(addrs, now);
            let mut next = Vec::new();
            // As many as the tracker's limits allow.
            loop {
                let (probe, starved) = tracker.next_probe(now, &live);
                changes.extend(starved);
                match probe {
                    Some(probe) => next.push(probe),
                    None => break,
                }
            }
            (changes, next, tracker.next_wakeup())
        };
        report(&inner, changes);
        for probe in next {
            let conn = server_connection(&inner, &servers, &probe.server);
            debug!(addr = %probe.addr, server = %probe.server, "probing");
            let work = run_probe(weak.clone(), shared.clone(), probe.clone(), conn);
            running.push(async move { (probe, work.await) }.boxed());
        }
        drop(inner);
        let sleep = wakeup
            .map_or(POLL, |w| w.saturating_duration_since(now))
            .min(POLL);
        let in_flight = async {
            match running.next().await {
                Some(done) => done,
                None => futures::future::pending().await,
            }
        };
        let woke = tokio::select! {
            (probe, evidence) = in_flight => Woke::Probed(probe, evidence),
            event = events.recv() => Woke::Event(Box::new(event)),
            _ = shared.wake.notified() => Woke::Tick,
            _ = tokio::time::sleep(sleep) => Woke::Tick,
        };
        match woke {
            Woke::Event(event) => match *event {
                Ok(event) => {
                    let Some(inner) = weak.upgrade() else { return };
                    on_event(
                        event,
                        &inner.dialer.config.classifier,
                        &mut servers,
                        &mut candidates,
                    );
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            Woke::Probed(probe, evidence) => {
                let change = lock(&shared.tracker).on_result(&probe, evidence, Instant::now());
                if let Some(inner) = weak.upgrade() {
                    report(&inner, change.into_iter().collect());
                }
            }
            Woke::Tick => {}
        }
    }
}
