//! Dialing.
//!
//! A pure core decides what to dial and when; a thin async layer here runs it:
//!
//! - [`classify`]: which network an address is on (loopback, private, ..., public);
//! - [`rank`]: which addresses are out at once and in which order the rest go
//!   (locality, QUIC before TCP, IPv6 and IPv4 interleaved);
//! - [`schedule`]: when each attempt starts (RFC 8305's connection attempt delay,
//!   [`HostConfig::dial_stagger`](crate::HostConfig::dial_stagger), 250 ms by
//!   default; at once after a failure);
//! - [`backoff`]: peers and addresses that keep failing wait, exponentially;
//! - [`dns`]: `/dns*` and `/dnsaddr` resolved into the ranking.
//!
//! The async layer keeps one shared dial per peer (cancelled when every caller gave
//! up), ends a dial with an inbound connection from the peer that lands first, and
//! runs each address attempt: policy permit, resource scope, transport, upgrade
//! within the connection's budget.

pub mod backoff;
pub mod classify;
pub mod dns;
#[cfg(feature = "dns")]
mod hickory;
pub mod rank;
pub mod schedule;

#[cfg(feature = "dns")]
pub use hickory::HickoryResolver;

use crate::admission::{self, SharedScope};
use crate::book;
use crate::conn::ConnState;
use crate::error::DialError;
use crate::events::Event;
use crate::host::Inner;
use crate::transport::{split_peer_id, Transport, TransportDialOpts, TransportOutput, Transported};
use backoff::{BackoffConfig, DialBackoff};
use classify::{AddrClass, Classifier};
use dns::{DnsLimits, Resolver};
use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};
use futures::stream::{FuturesUnordered, StreamExt};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use rank::Ranker;
use schedule::{Schedule, Skip, Step};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, Instrument};
use weft_connmgr::Direction;
use weft_upgrader::Role;

/// How the host dials, beyond its timeouts ([`HostConfig`](crate::HostConfig)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DialConfig {
    /// How peers and addresses that keep failing are backed off (default: 1 s,
    /// doubling, cap 5 min, ±25 % jitter).
    pub backoff: BackoffConfig,
    /// How addresses are classified (override for tests in network namespaces).
    pub classifier: Classifier,
    /// Whether IPv6 is tried before IPv4 (default, as RFC 8305 advises).
    pub prefer_ipv6: bool,
    /// Bounds on resolving `/dns*` and `/dnsaddr`.
    pub dns: DnsLimits,
}

impl Default for DialConfig {
    fn default() -> Self {
        DialConfig {
            backoff: BackoffConfig::default(),
            classifier: Classifier::new(),
            prefer_ipv6: true,
            dns: DnsLimits::default(),
        }
    }
}

impl DialConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The backoff of failing peers and addresses.
    pub fn with_backoff(mut self, backoff: BackoffConfig) -> Self {
        self.backoff = backoff;
        self
    }

    /// The address classifier.
    pub fn with_classifier(mut self, classifier: Classifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// Whether IPv6 goes first.
    pub fn with_prefer_ipv6(mut self, prefer_ipv6: bool) -> Self {
        self.prefer_ipv6 = prefer_ipv6;
        self
    }

    /// The bounds on DNS resolution.
    pub fn with_dns_limits(mut self, dns: DnsLimits) -> Self {
        self.dns = dns;
        self
    }
}

/// Options of one dial ([`Host::dial_with`](crate::Host::dial_with),
/// [`Host::dial_peer_with`](crate::Host::dial_peer_with)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DialOpts {
    /// Dial even a peer or an address in its backoff.
    pub ignore_backoff: bool,
    /// The security role to take on the new connection (hole punching assigns
    /// roles); `None`: the dialer initiates.
    pub role: Option<Role>,
    /// With [`role`](Self::role) `Responder` on a transport that yields a raw
    /// stream (TCP): initiate after all when the remote says nothing for this long.
    /// A hole punch sets it: its SYN can reach the remote's listener, which then
    /// waits as a listener does (see
    /// [`Upgrader::upgrade_responding_unless_silent`](weft_upgrader::Upgrader::upgrade_responding_unless_silent)).
    pub lead_after_silence: Option<Duration>,
    /// Ask the transport for early (0-RTT) data where it supports it.
    pub early_data: bool,
    /// Make a connection to the address even when one to the peer is open or being
    /// dialed ([`Host::dial_with`](crate::Host::dial_with) of an address with a
    /// `/p2p/` suffix otherwise returns that one): a second connection over another
    /// transport, say, to be observed on it. The handshake still proves the peer.
    pub new_connection: bool,
}

impl DialOpts {
    /// The defaults: backoff respected, the dialer initiates, no early data.
    pub fn new() -> Self {
        Self::default()
    }

    /// Dials even when the peer or its addresses are in their backoff.
    pub fn with_ignore_backoff(mut self, ignore: bool) -> Self {
        self.ignore_backoff = ignore;
        self
    }

    /// Forces the security role of the new connection.
    pub fn with_role(mut self, role: Option<Role>) -> Self {
        self.role = role;
        self
    }

    /// Initiates after all when, as the responder, the remote is silent this long
    /// (see [`lead_after_silence`](Self::lead_after_silence)).
    pub fn with_lead_after_silence(mut self, silence: Option<Duration>) -> Self {
        self.lead_after_silence = silence;
        self
    }

    /// Asks for early (0-RTT) data.
    pub fn with_early_data(mut self, early_data: bool) -> Self {
        self.early_data = early_data;
        self
    }

    /// Dials a new connection even when the peer has one (see
    /// [`new_connection`](Self::new_connection)).
    pub fn with_new_connection(mut self, new: bool) -> Self {
        self.new_connection = new;
        self
    }
}

/// The resolver a host gets unless its builder says otherwise: with the `dns`
/// feature the system's configuration on hickory, without it none.
pub(crate) fn default_resolver() -> Option<Arc<dyn Resolver>> {
    #[cfg(feature = "dns")]
    {
        match HickoryResolver::from_system_conf() {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => {
                tracing::warn!(error = %e, "no system DNS configuration; /dns* goes to the transports, /dnsaddr is not dialable");
                None
            }
        }
    }
    #[cfg(not(feature = "dns"))]
    {
        None
    }
}

/// The dialer's own state in the host: its configuration, the backoff tables, and
/// the resolver.
pub(crate) struct Dialer {
    pub(crate) config: DialConfig,
    backoff: Mutex<DialBackoff>,
    pub(crate) resolver: Option<Arc<dyn Resolver>>,
}

impl Dialer {
    pub(crate) fn new(config: DialConfig, resolver: Option<Arc<dyn Resolver>>) -> Self {
        Dialer {
            backoff: Mutex::new(DialBackoff::new(config.backoff.clone())),
            config,
            resolver,
        }
    }

    fn backoff(&self) -> MutexGuard<'_, DialBackoff> {
        // The tables hold no invariant a panicking thread could break half-way.
        self.backoff
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether an attempt's failure says something about the address (and so grows its
/// backoff): the transport, the upgrade or the time ran out. A local refusal (a
/// limit, the resource manager) or a shutdown does not.
fn counts_against_address(error: &DialError) -> bool {
    match error {
        DialError::Transport { source, .. } => {
            !matches!(**source, crate::transport::TransportError::Unsupported(_))
        }
        DialError::Upgrade { .. } | DialError::Timeout { .. } | DialError::Resolve { .. } => true,
        _ => false,
    }
}

/// The error of a dial whose attempts all failed: a single address's own error, a
/// backoff when every address was in its backoff, or all of them.
fn combine(peer: Option<PeerId>, mut errors: Vec<(Multiaddr, DialError)>) -> DialError {
    if errors.is_empty() {
        return match peer {
            Some(p) => DialError::NoAddresses(p),
            None => DialError::AllFailed(errors),
        };
    }
    let backed_off: Option<Vec<Duration>> = errors
        .iter()
        .map(|(_, e)| match e {
            DialError::Backoff { remaining, .. } => Some(*remaining),
            _ => None,
        })
        .collect();
    if let Some(remaining) = backed_off.and_then(|r| r.into_iter().min()) {
        return DialError::Backoff { peer, remaining };
    }
    if errors.len() == 1 {
        if let Some((_, e)) = errors.pop() {
            return e;
        }
    }
    DialError::AllFailed(errors)
}

fn skip_error(peer: Option<PeerId>, addr: &Multiaddr, skip: Skip) -> DialError {
    match skip {
        Skip::Rejected(reason) => DialError::Rejected {
            addr: addr.clone(),
            reason,
        },
        Skip::BackedOff(remaining) => DialError::Backoff { peer, remaining },
    }
}

type DialFuture = BoxFuture<'static, Result<Arc<ConnState>, DialError>>;
type SharedDial = Shared<DialFuture>;

/// Numbers the shared dials, so an ended one removes its own entry only.
static NEXT_DIAL: AtomicU64 = AtomicU64::new(0);

/// A shared dial in progress. Only its waiters hold it strongly: when the last one
/// drops, the attempt is dropped too (its sockets closed, its permits returned) and
/// its [`DialEntry`] removes it from the map.
pub(crate) struct DialSlot {
    id: u64,
    dial: WeakShared<DialFuture>,
}

/// Moved into a shared dial's future: removes the dial from `State::dials` when the
/// future ends, completed or abandoned by every waiter.
struct DialEntry {
    inner: Weak<Inner>,
    peer: PeerId,
    id: u64,
}

impl Drop for DialEntry {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            let mut state = inner.lock();
            if state.dials.get(&self.peer).is_some_and(|d| d.id == self.id) {
                state.dials.remove(&self.peer);
            }
        }
    }
}

/// A resolution running beside the attempts: the name, and what it resolved to.
type Resolution = BoxFuture<'static, (Multiaddr, Result<Vec<Multiaddr>, dns::DnsError>)>;

impl Inner {
    pub(crate) fn connection_to(&self, peer: &PeerId) -> Option<Arc<ConnState>> {
        // The newest usable one.
        let state = self.lock();
        let newest = state
            .connections_of(peer)
            .rev()
            .find(|c| c.is_usable())
            .cloned();
        newest
    }

    /// An open connection to `peer`, or one dial shared by every concurrent caller.
    pub(crate) async fn dial_shared<F>(
        self: &Arc<Self>,
        peer: PeerId,
        start: F,
    ) -> Result<Arc<ConnState>, DialError>
    where
        F: FnOnce() -> BoxFuture<'static, Result<Arc<ConnState>, DialError>>,
    {
        if peer == self.peer_id {
            return Err(DialError::SelfDial);
        }
        if let Some(conn) = self.connection_to(&peer) {
            return Ok(conn);
        }
        // No strong handle of a dial may drop while the lock is held: the last one
        // drops the attempt, whose entry takes the lock.
        let shared: SharedDial = {
            let mut state = self.lock();
            match state.dials.get(&peer).and_then(|d| d.dial.upgrade()) {
                Some(existing) => existing,
                None => {
                    let id = NEXT_DIAL.fetch_add(1, Ordering::Relaxed);
                    let entry = DialEntry {
                        inner: Arc::downgrade(self),
                        peer,
                        id,
                    };
                    let attempt = start();
                    let fut = async move {
                        let _entry = entry;
                        attempt.await
                    }
                    .boxed()
                    .shared();
                    if let Some(dial) = fut.downgrade() {
                        state.dials.insert(peer, DialSlot { id, dial });
                    }
                    fut
                }
            }
        };
        shared.await
    }

    /// Dials an address: with a `/p2p/` suffix as a shared dial of that peer (the
    /// address remembered for it), without one as a dial of whoever answers.
    pub(crate) async fn dial_addr(
        self: &Arc<Self>,
        addr: &Multiaddr,
        opts: DialOpts,
    ) -> Result<Arc<ConnState>, DialError> {
        let (bare, peer) = split_peer_id(addr);
        match peer {
            Some(peer) if opts.new_connection => {
                book::add_dialable_addr(&self.writer, &peer, &bare);
                self.dial_addresses(Some(peer), vec![bare], opts).await
            }
            Some(peer) => {
                book::add_dialable_addr(&self.writer, &peer, &bare);
                let inner = self.clone();
                self.dial_shared(peer, move || {
                    async move { inner.dial_addresses(Some(peer), vec![bare], opts).await }.boxed()
                })
                .await
            }
            None => self.dial_addresses(None, vec![bare], opts).await,
        }
    }

    /// Connects to a peer: an open connection, or a shared dial of the addresses the
    /// peerstore knows.
    pub(crate) async fn connect(
        self: &Arc<Self>,
        peer: PeerId,
        opts: DialOpts,
    ) -> Result<Arc<ConnState>, DialError> {
        let inner = self.clone();
        self.dial_shared(peer, move || {
            async move {
                let addrs = book::dialable_addrs(&inner.writer, &peer).await;
                if addrs.is_empty() {
                    let error = DialError::NoAddresses(peer);
                    inner.hooks.dial_failed(&error);
                    return Err(error);
                }
                inner.dial_addresses(Some(peer), addrs, opts).await
            }
            .boxed()
        })
        .await
    }

    /// Dials several addresses as the schedule says; the first success (or an
    /// inbound connection from the peer) wins and the other attempts are dropped. A
    /// failed dial is reported with [`Event::DialFailed`] and grows the peer's
    /// backoff.
    pub(crate) async fn dial_addresses(
        self: &Arc<Self>,
        peer: Option<PeerId>,
        addrs: Vec<Multiaddr>,
        opts: DialOpts,
    ) -> Result<Arc<ConnState>, DialError> {
        if self.shutdown.is_cancelled() {
            return Err(DialError::Shutdown);
        }
        if let Some(peer) = peer.filter(|_| !opts.ignore_backoff) {
            if let Some(remaining) = self.dialer.backoff().peers.remaining(&peer, Instant::now()) {
                debug!(%peer, ?remaining, "peer in its dial backoff");
                let error = DialError::Backoff {
                    peer: Some(peer),
                    remaining,
                };
                self.hooks.dial_failed(&error);
                return Err(error);
            }
        }
        let total = self.config.dial_timeout;
        let target = peer
            .map(|p| p.to_string())
            .unwrap_or_else(|| format!("{addrs:?}"));
        let mut errors = Vec::new();
        let outcome = tokio::select! {
            _ = self.shutdown.cancelled() => return Err(DialError::Shutdown),
            r = tokio::time::timeout(total, self.run_schedule(peer, addrs, &opts, &mut errors)) => r,
        };
        let result = match outcome {
            Ok(Ok(conn)) => {
                self.dialer.backoff().peers.succeeded(&conn.peer);
                return Ok(conn);
            }
            Ok(Err(e)) => e,
            Err(_) => {
                // The attempts still in flight were dropped, not failed: the dial's own
                // timeout is the one failure to report.
                let error = DialError::Timeout {
                    addr: target,
                    after: total,
                };
                self.hooks.dial_failed(&error);
                error
            }
        };
        if matches!(result, DialError::Shutdown) {
            return Err(result);
        }
        if let Some(peer) = peer {
            let counted = matches!(result, DialError::Timeout { .. })
                || errors.iter().any(|(_, e)| counts_against_address(e));
            if counted {
                let left =
                    self.dialer
                        .backoff()
                        .peers
                        .failed(&peer, Instant::now(), rand::random());
                debug!(%peer, backoff = ?left, "dial failed; peer backed off");
            }
        }
        self.emit(Event::DialFailed {
            peer,
            errors: errors
                .iter()
                .map(|(a, e)| (a.clone(), e.to_string()))
                .collect(),
            error: result.to_string(),
        });
        Err(result)
    }

    /// The ranker of one dial: what our transports dial, which networks we listen on.
    fn ranker(&self, peer: Option<PeerId>) -> Ranker {
        let transports: Vec<Arc<dyn Transport>> = self.transports.clone();
        let config = &self.dialer.config;
        let mut local: Vec<AddrClass> = self
            .listen_addrs()
            .iter()
            .map(|a| config.classifier.addr(a))
            .filter(|c| c.is_local())
            .collect();
        local.dedup();
        Ranker::new(Arc::new(move |a: &Multiaddr| {
            transports.iter().any(|t| t.can_dial(a))
        }))
        .with_peer(peer)
        .with_classifier(config.classifier.clone())
        .with_prefer_ipv6(config.prefer_ipv6)
        .with_local_classes(local)
    }

    fn resolution(
        &self,
        resolver: &Arc<dyn Resolver>,
        name: Multiaddr,
        peer: Option<PeerId>,
    ) -> Resolution {
        let resolver = resolver.clone();
        let limits = self.dialer.config.dns.clone();
        async move {
            let r = dns::resolve(resolver.as_ref(), &name, peer, &limits).await;
            (name, r)
        }
        .boxed()
    }

    /// Runs the schedule of one dial until an attempt connects, an inbound
    /// connection from the peer lands (not with [`DialOpts::new_connection`], which
    /// wants a connection of its own), or nothing is left. `errors` collects why
    /// each address failed or was skipped.
    async fn run_schedule(
        self: &Arc<Self>,
        peer: Option<PeerId>,
        addrs: Vec<Multiaddr>,
        opts: &DialOpts,
        errors: &mut Vec<(Multiaddr, DialError)>,
    ) -> Result<Arc<ConnState>, DialError> {
        // Subscribed before looking: an inbound connection that lands from here on
        // is seen either way.
        let mut events = self.events.subscribe();
        let reuse = !opts.new_connection;
        if let Some(conn) = peer.filter(|_| reuse).and_then(|p| self.connection_to(&p)) {
            return Ok(conn);
        }
        let now = Instant::now();
        let mut schedule = Schedule::new(self.ranker(peer), self.config.dial_stagger, now)
            .with_ignore_backoff(opts.ignore_backoff);
        let mut resolutions: FuturesUnordered<Resolution> = FuturesUnordered::new();
        let mut direct = Vec::new();
        for addr in addrs {
            match &self.dialer.resolver {
                Some(resolver) if dns::is_name(&addr) => {
                    schedule.resolving(addr.clone());
                    resolutions.push(self.resolution(resolver, addr, peer));
                }
                _ => direct.push(addr),
            }
        }
        let skipped = schedule.add(&direct, &self.dialer.backoff(), now);
        for (addr, skip) in skipped {
            debug!(%addr, reason = %skip, "address skipped");
            errors.push((addr.clone(), skip_error(peer, &addr, skip)));
        }
        let mut attempts = FuturesUnordered::new();
        let mut watch_inbound = peer.is_some() && reuse;
        loop {
            let now = Instant::now();
            let wake = loop {
                match schedule.poll(now) {
                    Step::Start(addr) => {
                        let (bare, named) = split_peer_id(&addr);
                        let expected = named.or(peer);
                        let inner = self.clone();
                        let opts = opts.clone();
                        attempts.push(async move {
                            let r = inner.dial_one(expected, bare, &opts).await;
                            (addr, r)
                        });
                    }
                    Step::WakeAt(t) => break Some(t),
                    Step::Wait => break None,
                    Step::Exhausted => return Err(combine(peer, errors.clone())),
                }
            };
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                Some((addr, result)) = attempts.next() => match result {
                    Ok(conn) => {
                        schedule.succeeded(&addr, &mut self.dialer.backoff());
                        return Ok(conn);
                    }
                    Err(e) => {
                        debug!(%addr, error = %e, "dial attempt failed");
                        let now = Instant::now();
                        if counts_against_address(&e) {
                            schedule.failed(&addr, &mut self.dialer.backoff(), now, rand::random());
                        } else {
                            schedule.abandoned(&addr, now);
                        }
                        errors.push((addr, e));
                    }
                },
                Some((name, result)) = resolutions.next() => {
                    let resolved = match result {
                        Ok(list) => list,
                        Err(e) => {
                            debug!(%name, error = %e, "name did not resolve");
                            errors.push((name.clone(), DialError::Resolve { addr: name.clone(), source: e }));
                            Vec::new()
                        }
                    };
                    debug!(%name, ?resolved, "name resolved");
                    let skipped = schedule.resolved(&name, &resolved, &self.dialer.backoff(), Instant::now());
                    for (addr, skip) in skipped {
                        debug!(%addr, reason = %skip, "address skipped");
                        errors.push((addr.clone(), skip_error(peer, &addr, skip)));
                    }
                },
                event = events.recv(), if watch_inbound => {
                    let relevant = match event {
                        Ok(Event::Connected { peer: p, .. }) => Some(p) == peer,
                        Ok(_) => false,
                        Err(RecvError::Lagged(_)) => true,
                        Err(RecvError::Closed) => {
                            watch_inbound = false;
                            false
                        }
                    };
                    if let Some(conn) = peer.filter(|_| relevant).and_then(|p| self.connection_to(&p)) {
                        debug!(peer = %conn.peer, conn = %conn.id, "the dial ends with a connection that landed meanwhile");
                        return Ok(conn);
                    }
                },
                _ = sleep => {},
            }
        }
    }

    pub(crate) async fn dial_one(
        self: &Arc<Self>,
        peer: Option<PeerId>,
        addr: Multiaddr,
        opts: &DialOpts,
    ) -> Result<Arc<ConnState>, DialError> {
        if peer == Some(self.peer_id) {
            return Err(DialError::SelfDial);
        }
        let per_address = self.config.dial_timeout_per_address;
        let span = tracing::debug_span!("dial", %addr, ?peer);
        let started = std::time::Instant::now();
        let transport_opts = TransportDialOpts::new()
            .with_peer(peer)
            .with_role(opts.role)
            .with_early_data(opts.early_data);
        let attempt = async {
            let permit = self.policy.allow_dial(peer, &addr)?;
            let scope: SharedScope = Arc::new(Mutex::new(self.resources.open_connection(
                weft_resource_manager::Direction::Outbound,
                &addr,
                admission::uses_fd(&addr),
            )?));
            let transport = self
                .transports
                .iter()
                .find(|t| t.can_dial(&addr))
                .ok_or_else(|| DialError::Transport {
                    addr: addr.clone(),
                    source: Arc::new(crate::transport::TransportError::Unsupported(addr.clone())),
                })?;
            let transported =
                transport
                    .dial(&addr, &transport_opts)
                    .await
                    .map_err(|e| DialError::Transport {
                        addr: addr.clone(),
                        source: Arc::new(e),
                    })?;
            let Transported {
                output,
                local_addr,
                remote_addr,
            } = transported;
            let connection = match output {
                // Its budget is adopted once the connection joins its peer's scope.
                TransportOutput::Connection(c) => *c,
                TransportOutput::Raw(io) => {
                    let budget = admission::budget(&scope);
                    let upgraded = match (opts.role, opts.lead_after_silence) {
                        (Some(Role::Responder), Some(silence)) => {
                            self.upgrader
                                .upgrade_responding_unless_silent(io, silence, peer, budget)
                                .await
                        }
                        (role, _) => {
                            self.upgrader
                                .upgrade_with_budget(
                                    io,
                                    role.unwrap_or(Role::Initiator),
                                    peer,
                                    budget,
                                )
                                .await
                        }
                    };
                    upgraded.map_err(|e| DialError::Upgrade {
                        addr: addr.clone(),
                        source: Arc::new(e),
                    })?
                }
            };
            if let Some(expected) = peer {
                if connection.remote_peer != expected {
                    // A transport that yields connections directly must prove the peer too.
                    return Err(DialError::Upgrade {
                        addr: addr.clone(),
                        source: Arc::new(weft_upgrader::UpgradeError::Handshake {
                            protocol: connection.security_protocol.clone(),
                            source: weft_upgrader::SecurityError::PeerIdMismatch {
                                expected,
                                actual: connection.remote_peer,
                            },
                        }),
                    });
                }
            }
            self.add_connection(
                connection,
                Direction::Outbound,
                (local_addr, remote_addr),
                permit,
                scope,
                started,
            )
        };
        let result = tokio::time::timeout(per_address, attempt.instrument(span))
            .await
            .map_err(|_| DialError::Timeout {
                addr: addr.to_string(),
                after: per_address,
            })
            .and_then(|r| r);
        if let Err(e) = &result {
            self.hooks.dial_failed(e);
        }
        result
    }
}
