//! The host: listening, dialing, connections, streams and the built-in protocols.

use crate::admission::{lock_scope, PendingInbound, SharedScope};
use crate::book;
use crate::conn::{Activity, ConnState, ConnectionInfo};
use crate::dial::{DialOpts, DialSlot};
use crate::error::{DialError, ListenError, StreamError};
use crate::events::Event;
use crate::handlers::{Handler, HandlerOptions, Handlers, InboundMatcher, MatchFn};
use crate::observer::Hooks;
use crate::store_writer::StoreWriter;
use crate::stream::{Stream, StreamTracker};
use crate::transport::{split_peer_id, Listener, Transport};
use crate::{identify, ping};
use libp2p_identity::{Keypair, PeerId};
use multiaddr::Multiaddr;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use weft_connmgr::{ConnectionId, ConnectionPolicy, Direction, PendingPermit};
use weft_mss::Version;
use weft_peerstore::PeerStore;
use weft_resource_manager::ResourceManager;
use weft_upgrader::{Connection, Upgrader};

/// Timeouts and identity strings of a host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The whole dial of one peer, all addresses included.
    pub dial_timeout: Duration,
    /// One address attempt: transport connect plus upgrade.
    pub dial_timeout_per_address: Duration,
    /// The connection attempt delay (RFC 8305): between starting attempts on
    /// successive addresses of one dial, unless an attempt fails first (then the
    /// next starts at once). Default 250 ms.
    pub dial_stagger: Duration,
    /// Protocol negotiation on a new stream.
    pub negotiation_timeout: Duration,
    /// Identify and ping exchanges.
    pub protocol_timeout: Duration,
    /// How long shutdown waits for connections to close gracefully.
    pub shutdown_grace: Duration,
    /// The agent version identify advertises.
    pub agent_version: String,
    /// The protocol version identify advertises.
    pub protocol_version: String,
    /// Capacity of the event channel; slower subscribers are told they lagged.
    pub event_capacity: usize,
    /// A connection with no open stream and no stream traffic for this long is closed
    /// (default 120 s; `None` keeps idle connections forever). The muxer's keep-alive
    /// pings are not traffic: they only tell whether the link is alive.
    pub idle_timeout: Option<Duration>,
    /// How often the host closes idle connections and asks the connection policy to
    /// trim (default 5 s), so the count comes back under the high watermark once the
    /// grace period is over even when no new connection arrives.
    pub maintenance_interval: Duration,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            dial_timeout: Duration::from_secs(30),
            dial_timeout_per_address: Duration::from_secs(15),
            dial_stagger: Duration::from_millis(250),
            negotiation_timeout: Duration::from_secs(10),
            protocol_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            agent_version: concat!("weft/", env!("CARGO_PKG_VERSION")).to_string(),
            protocol_version: "ipfs/0.1.0".to_string(),
            event_capacity: 1024,
            idle_timeout: Some(Duration::from_secs(120)),
            maintenance_interval: Duration::from_secs(5),
        }
    }
}

/// Inbound identify requests one peer may have open at once.
const IDENTIFY_STREAMS_PER_PEER: usize = 4;
/// Inbound identify pushes one peer may have open at once.
const IDENTIFY_PUSH_STREAMS_PER_PEER: usize = 2;
/// Inbound perf streams one peer may have open at once.
const PERF_STREAMS_PER_PEER: usize = 2;

/// The first pause after a failed accept (doubling up to [`ACCEPT_BACKOFF_MAX`]).
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest pause after failed accepts.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long a closed connection's driver may take to finish its last frames.
const DRIVER_WIND_DOWN: Duration = Duration::from_secs(2);

struct ListenerEntry {
    addrs: Vec<Multiaddr>,
    stop: CancellationToken,
}

#[derive(Default)]
pub(crate) struct State {
    connections: HashMap<ConnectionId, Arc<ConnState>>,
    by_peer: HashMap<PeerId, Vec<ConnectionId>>,
    pub(crate) dials: HashMap<PeerId, DialSlot>,
    listeners: Vec<ListenerEntry>,
    ping_locks: HashMap<PeerId, Arc<tokio::sync::Mutex<()>>>,
}

impl State {
    /// The open connections to `peer`, oldest first.
    pub(crate) fn connections_of<'a>(
        &'a self,
        peer: &PeerId,
    ) -> impl DoubleEndedIterator<Item = &'a Arc<ConnState>> {
        self.by_peer
            .get(peer)
            .into_iter()
            .flatten()
            .filter_map(|id| self.connections.get(id))
    }
}

pub(crate) struct Inner {
    pub(crate) keypair: Keypair,
    pub(crate) peer_id: PeerId,
    pub(crate) config: HostConfig,
    pub(crate) transports: Vec<Arc<dyn Transport>>,
    pub(crate) upgrader: Upgrader,
    pub(crate) handlers: Handlers,
    pub(crate) peerstore: Arc<dyn PeerStore>,
    /// Every peerstore write of the host goes through it (off the runtime, batched).
    pub(crate) writer: StoreWriter,
    pub(crate) policy: Arc<dyn ConnectionPolicy>,
    pub(crate) resources: ResourceManager,
    pub(crate) pending: Arc<PendingInbound>,
    /// The observer hook points (nothing without `metrics-hook`).
    pub(crate) hooks: Hooks,
    pub(crate) events: broadcast::Sender<Event>,
    /// Dial configuration, backoff tables and resolver.
    pub(crate) dialer: crate::dial::Dialer,
    state: Mutex<State>,
    pub(crate) tasks: TaskTracker,
    pub(crate) shutdown: CancellationToken,
}

/// A libp2p host: listens, dials, keeps connections, and routes streams to handlers.
///
/// Cheap to clone; all clones are the same host. Call [`Host::shutdown`] to close it:
/// its tasks hold it alive until then.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("peer_id", &self.inner.peer_id)
            .finish_non_exhaustive()
    }
}

/// What a [`HostBuilder`](crate::HostBuilder) checked and hands to the host.
pub(crate) struct HostParts {
    pub(crate) keypair: Keypair,
    pub(crate) config: HostConfig,
    pub(crate) transports: Vec<Arc<dyn Transport>>,
    pub(crate) upgrader: Upgrader,
    pub(crate) peerstore: Arc<dyn PeerStore>,
    pub(crate) writer: StoreWriter,
    pub(crate) policy: Arc<dyn ConnectionPolicy>,
    pub(crate) resources: ResourceManager,
    pub(crate) hooks: Hooks,
    pub(crate) dialer: crate::dial::Dialer,
}

impl Host {
    /// Starts building a host. See [`HostBuilder`](crate::HostBuilder).
    pub fn builder() -> crate::HostBuilder {
        crate::HostBuilder::new()
    }

    pub(crate) fn from_parts(parts: HostParts) -> Host {
        let HostParts {
            keypair,
            config,
            transports,
            upgrader,
            peerstore,
            writer,
            policy,
            resources,
            hooks,
            dialer,
        } = parts;
        let (events, _) = broadcast::channel(config.event_capacity.max(16));
        let inner = Arc::new(Inner {
            peer_id: keypair.public().to_peer_id(),
            keypair,
            config,
            transports,
            upgrader,
            handlers: Handlers::default(),
            peerstore,
            writer,
            policy,
            resources,
            pending: Arc::default(),
            hooks,
            events,
            dialer,
            state: Mutex::new(State::default()),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        });
        let host = Host { inner };
        host.register_builtin_protocols();
        let inner = &host.inner;
        inner.tasks.spawn(maintenance(
            Arc::downgrade(inner),
            inner.shutdown.clone(),
            inner.config.maintenance_interval,
        ));
        host
    }

    /// This host's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// This host's identity keypair.
    pub fn keypair(&self) -> &Keypair {
        &self.inner.keypair
    }

    /// The peerstore the host keeps up to date.
    pub fn peerstore(&self) -> &Arc<dyn PeerStore> {
        &self.inner.peerstore
    }

    /// The connection policy the host consults.
    pub fn connection_policy(&self) -> &Arc<dyn ConnectionPolicy> {
        &self.inner.policy
    }

    /// The resource manager every connection and stream is charged to.
    pub fn resource_manager(&self) -> &ResourceManager {
        &self.inner.resources
    }

    /// Inbound connections whose handshake is in progress.
    pub fn pending_inbound(&self) -> usize {
        self.inner.pending.len()
    }

    /// Subscribes to lifecycle events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The addresses the host listens on.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.inner.listen_addrs()
    }

    /// Open connections, all peers.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.inner
            .lock()
            .connections
            .values()
            .map(|c| c.info())
            .collect()
    }

    /// Open connections to one peer.
    pub fn connections_to(&self, peer: &PeerId) -> Vec<ConnectionInfo> {
        let state = self.inner.lock();
        state.connections_of(peer).map(|c| c.info()).collect()
    }

    /// Dials to a known peer in progress (each shared by all its callers). A dial
    /// that every caller abandoned is cancelled at once and no longer counted.
    pub fn dials_in_progress(&self) -> usize {
        self.inner.lock().dials.len()
    }

    /// Whether at least one usable connection to the peer is open.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.inner.connection_to(peer).is_some()
    }

    // ----- handlers -----

    /// Registers a handler for an exact protocol id (replacing any previous one), and
    /// tells connected peers (identify push).
    pub fn set_handler<F, Fut>(&self, protocol: impl Into<String>, handler: F)
    where
        F: Fn(Stream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.set_handler_with(protocol, HandlerOptions::default(), handler)
    }

    /// [`set_handler`](Self::set_handler) with options (inbound stream limit).
    pub fn set_handler_with<F, Fut>(
        &self,
        protocol: impl Into<String>,
        options: HandlerOptions,
        handler: F,
    ) where
        F: Fn(Stream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |s| Box::pin(handler(s)));
        self.inner
            .handlers
            .insert_exact(protocol.into(), handler, options);
        self.inner.push_identify_to_all();
    }

    /// Registers a handler chosen by a match function over the proposed id. `id` is
    /// what identify advertises and what [`remove_handler`](Self::remove_handler) takes.
    /// Exact registrations are tried first.
    pub fn set_match_handler<M, F, Fut>(&self, id: impl Into<String>, matches: M, handler: F)
    where
        M: Fn(&str) -> bool + Send + Sync + 'static,
        F: Fn(Stream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |s| Box::pin(handler(s)));
        let matches: MatchFn = Arc::new(matches);
        self.inner
            .handlers
            .insert_match(id.into(), matches, handler, HandlerOptions::default());
        self.inner.push_identify_to_all();
    }

    /// Removes a handler; true if one was registered under `protocol`.
    pub fn remove_handler(&self, protocol: &str) -> bool {
        let removed = self.inner.handlers.remove(protocol);
        if removed {
            self.inner.push_identify_to_all();
        }
        removed
    }

    /// Serves `/perf/1.0.0` (off by default, as the spec recommends).
    pub fn enable_perf(&self) {
        let options = HandlerOptions::default()
            .with_max_inbound_streams_per_peer(Some(PERF_STREAMS_PER_PEER));
        self.set_handler_with(crate::perf::PROTOCOL, options, |mut stream| async move {
            if let Err(e) = crate::perf::serve(&mut stream).await {
                debug!(error = %e, "serving perf failed");
            }
        });
    }

    /// The protocol ids we accept inbound streams for (what identify advertises).
    pub fn protocols(&self) -> Vec<String> {
        self.inner.handlers.ids()
    }

    // ----- listening -----

    /// Listens on an address; returns the actual addresses (port 0 resolved).
    pub async fn listen(&self, addr: &Multiaddr) -> Result<Vec<Multiaddr>, ListenError> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(ListenError::Shutdown);
        }
        let (bare, peer) = split_peer_id(addr);
        if let Some(peer) = peer.filter(|p| *p != inner.peer_id) {
            return Err(ListenError::WrongPeerId(peer));
        }
        let transport = inner
            .transports
            .iter()
            .find(|t| t.can_listen(&bare))
            .ok_or_else(|| ListenError::Unsupported(bare.clone()))?;
        let listener = transport.listen(&bare).await?;
        let addrs = listener.local_addrs();
        let stop = inner.shutdown.child_token();
        inner.lock().listeners.push(ListenerEntry {
            addrs: addrs.clone(),
            stop: stop.clone(),
        });
        info!(?addrs, "listening");
        inner.emit(Event::Listen {
            addrs: addrs.clone(),
        });
        let weak = Arc::downgrade(inner);
        inner
            .tasks
            .spawn(accept_loop(weak, listener, stop, addrs.clone()));
        inner.push_identify_to_all();
        Ok(addrs)
    }

    /// Stops listening on the listener that has `addr` among its addresses.
    pub fn close_listener(&self, addr: &Multiaddr) -> bool {
        let state = self.inner.lock();
        match state.listeners.iter().find(|l| l.addrs.contains(addr)) {
            Some(l) => {
                l.stop.cancel();
                true
            }
            None => false,
        }
    }

    // ----- dialing -----

    /// Dials an address. With a `/p2p/<peer id>` suffix, an open connection to that
    /// peer is reused, concurrent dials to it share one attempt, and the handshake must
    /// prove that peer; without one, whoever answers is the peer (the returned
    /// [`ConnectionInfo::peer`] is what the handshake proved). `/dns*` and `/dnsaddr`
    /// addresses are resolved and every result ranked.
    pub async fn dial(&self, addr: &Multiaddr) -> Result<ConnectionInfo, DialError> {
        self.dial_with(addr, DialOpts::default()).await
    }

    /// [`dial`](Self::dial) with options (ignore the backoff, force the security
    /// role, ask for early data).
    pub async fn dial_with(
        &self,
        addr: &Multiaddr,
        opts: DialOpts,
    ) -> Result<ConnectionInfo, DialError> {
        Ok(self.inner.dial_addr(addr, opts).await?.info())
    }

    /// Connects to a peer: reuses an open connection, or dials the addresses the
    /// peerstore knows, ranked and scheduled (see [`crate::dial`]); the first to
    /// succeed wins. A peer whose dials keep failing is backed off
    /// ([`DialError::Backoff`]).
    pub async fn dial_peer(&self, peer: PeerId) -> Result<ConnectionInfo, DialError> {
        self.dial_peer_with(peer, DialOpts::default()).await
    }

    /// [`dial_peer`](Self::dial_peer) with options.
    pub async fn dial_peer_with(
        &self,
        peer: PeerId,
        opts: DialOpts,
    ) -> Result<ConnectionInfo, DialError> {
        Ok(self.inner.connect(peer, opts).await?.info())
    }

    /// Closes every connection to a peer gracefully.
    pub async fn disconnect(&self, peer: &PeerId) {
        let conns: Vec<Arc<ConnState>> = self.inner.lock().connections_of(peer).cloned().collect();
        for conn in conns {
            close_connection(&conn, self.inner.config.shutdown_grace).await;
        }
    }

    // ----- streams -----

    /// Opens a stream to a peer (connecting first if needed) and negotiates the first
    /// protocol of `protocols` the peer accepts. The stream's
    /// [`protocol`](Stream::protocol) is the negotiated id.
    ///
    /// When only one id is offered, or the peerstore already knows that the peer
    /// supports one of them, the proposal is lazy (0-RTT): it leaves with the first
    /// data, and a refusal surfaces as an error on the first read.
    pub async fn new_stream(
        &self,
        peer: PeerId,
        protocols: &[&str],
    ) -> Result<Stream, StreamError> {
        if protocols.is_empty() {
            return Err(StreamError::NoProtocols);
        }
        let conn = self.inner.connect(peer, DialOpts::default()).await?;
        self.inner.open_stream_on(&conn, protocols).await
    }

    /// Pings a peer once over `/ipfs/ping/1.0.0` and returns the round-trip time. At
    /// most one ping stream per peer is open at a time; concurrent calls wait.
    pub async fn ping(&self, peer: PeerId) -> Result<Duration, crate::PingFailure> {
        let lock = {
            let mut state = self.inner.lock();
            state.ping_locks.entry(peer).or_default().clone()
        };
        let guard = lock.lock().await;
        let timeout = self.inner.config.protocol_timeout;
        let run = async {
            let mut stream = self.new_stream(peer, &[ping::PROTOCOL]).await?;
            let rtt = ping::ping_once(&mut stream).await?;
            let _ = futures::AsyncWriteExt::close(&mut stream).await;
            Ok::<_, crate::PingFailure>(rtt)
        };
        let result = tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| crate::PingFailure::Timeout(timeout))
            .and_then(|r| r);
        drop(guard);
        self.inner.hooks.ping(result.as_ref().ok().copied());
        if !self.is_connected(&peer) {
            // The lock map only keeps entries of connected peers (removed on the last
            // disconnect); a ping that found no connection must not leave one behind.
            self.inner.lock().ping_locks.remove(&peer);
        }
        let rtt = result?;
        book::record_latency(&self.inner.writer, &peer, rtt).await;
        Ok(rtt)
    }

    /// Shuts down: stops the listeners (`ListenClose`), closes every connection with
    /// a go-away, waits for the host's tasks (bounded by the configured grace).
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return;
        }
        info!("shutting down");
        let conns: Vec<Arc<ConnState>> = inner.lock().connections.values().cloned().collect();
        let grace = inner.config.shutdown_grace;
        futures::future::join_all(conns.iter().map(|c| close_connection(c, grace))).await;
        inner.shutdown.cancel();
        inner.tasks.close();
        if tokio::time::timeout(grace, inner.tasks.wait())
            .await
            .is_err()
        {
            warn!("some host tasks did not finish within {grace:?}");
        }
        // What the host learned is on disk before shutdown returns.
        if tokio::time::timeout(grace, inner.writer.flush())
            .await
            .is_err()
        {
            warn!("peerstore writes did not finish within {grace:?}");
        }
    }
}

/// Closes one connection gracefully (go-away), bounded in time.
async fn close_connection(conn: &ConnState, grace: Duration) {
    if tokio::time::timeout(grace, conn.muxed.close())
        .await
        .is_err()
    {
        debug!(conn = %conn.id, "graceful close timed out");
    }
    conn.closed.cancel();
}

/// The host's timer: closes idle connections and trims above the high watermark,
/// every `every`, until shutdown.
async fn maintenance(weak: Weak<Inner>, shutdown: CancellationToken, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(inner) = weak.upgrade() else { break };
        inner.close_idle();
        inner.trim();
    }
}

async fn accept_loop(
    weak: Weak<Inner>,
    mut listener: Box<dyn Listener>,
    stop: CancellationToken,
    addrs: Vec<Multiaddr>,
) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let Some(inner) = weak.upgrade() else { break };
        match accepted {
            Ok(transported) => {
                backoff = ACCEPT_BACKOFF_MIN;
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = inner.admit_inbound_connection(transported) => {}
                }
            }
            Err(crate::transport::TransportError::Closed) => break,
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS...: wait for resources to come back, keep
                // listening.
                warn!(error = %e, ?backoff, "accepting a connection failed; retrying");
                drop(inner);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
    drop(listener);
    if let Some(inner) = weak.upgrade() {
        inner.lock().listeners.retain(|l| l.addrs != addrs);
        inner.emit(Event::ListenClose { addrs });
        inner.push_identify_to_all();
    }
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // The state holds no invariant a panicking thread could break half-way.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    pub(crate) fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.lock()
            .listeners
            .iter()
            .flat_map(|l| l.addrs.clone())
            .collect()
    }

    /// Registers an upgraded connection: policy, bookkeeping, events, and its tasks.
    pub(crate) fn add_connection(
        self: &Arc<Self>,
        connection: Connection,
        direction: Direction,
        (local_addr, remote_addr): (Multiaddr, Multiaddr),
        permit: PendingPermit,
        scope: SharedScope,
        started: Instant,
    ) -> Result<Arc<ConnState>, DialError> {
        let id = ConnectionId::next();
        let Connection {
            remote_peer,
            remote_public_key,
            security_protocol,
            muxer_protocol,
            muxed,
            driver,
            ..
        } = connection;
        if let Err(e) = lock_scope(&scope).set_peer(remote_peer) {
            self.discard(muxed, driver);
            return Err(e.into());
        }
        let conn = Arc::new(ConnState {
            id,
            peer: remote_peer,
            direction,
            local_addr: local_addr.clone(),
            remote_addr: remote_addr.clone(),
            security: security_protocol.clone(),
            muxer: muxer_protocol.clone(),
            muxed,
            open_streams: Arc::new(AtomicUsize::new(0)),
            activity: Arc::new(Activity::new()),
            scope,
            closed: self.shutdown.child_token(),
        });
        // Admitted and registered under one lock: a trim (the timer's, or another
        // connection's) never picks a connection the host cannot find yet.
        let admitted = {
            let mut state = self.lock();
            let admitted =
                self.policy
                    .established(permit, id, remote_peer, direction, &remote_addr);
            if admitted.is_ok() {
                state.connections.insert(id, conn.clone());
                state.by_peer.entry(remote_peer).or_default().push(id);
            }
            admitted
        };
        let admission = match admitted {
            Ok(a) => a,
            Err(e) => {
                self.discard(conn.muxed.clone(), driver);
                return Err(e.into());
            }
        };
        book::on_connected(
            &self.writer,
            &remote_peer,
            &remote_public_key,
            &remote_addr,
            direction,
        );
        info!(peer = %remote_peer, conn = %id, %direction, %remote_addr, security = %security_protocol, muxer = %muxer_protocol, "connected");
        self.hooks.connection_opened(&conn, started);
        self.emit(Event::Connected {
            peer: remote_peer,
            connection: id,
            direction,
            local_addr,
            remote_addr,
            security: security_protocol,
            muxer: muxer_protocol,
        });

        // The driver: the connection lives as long as it runs.
        let weak = Arc::downgrade(self);
        let c = conn.clone();
        self.tasks.spawn(async move {
            let mut driver = driver;
            let ended = tokio::select! {
                r = &mut driver => Some(r),
                _ = c.closed.cancelled() => None,
            };
            let ended = match ended {
                Some(r) => Some(r),
                // Closed by us, or the host shut down (possibly before this
                // connection was registered, so nobody closed it yet): close it
                // gracefully (a no-op when already closed) while the driver winds
                // down, so every open stream sees the end instead of waiting forever.
                None => {
                    let muxed = c.muxed.clone();
                    let wind_down = futures::future::join(muxed.close(), &mut driver);
                    tokio::time::timeout(DRIVER_WIND_DOWN, wind_down)
                        .await
                        .ok()
                        .map(|(_, r)| r)
                }
            };
            if let Some(Err(e)) = ended {
                debug!(conn = %c.id, error = %e, "connection ended with an error");
            }
            c.closed.cancel();
            if let Some(inner) = weak.upgrade() {
                inner.remove_connection(&c);
            }
        });
        // Inbound streams.
        self.tasks
            .spawn(accept_streams(Arc::downgrade(self), conn.clone()));
        // Identify the remote.
        let inner = self.clone();
        let c = conn.clone();
        self.tasks
            .spawn(async move { inner.request_identify(&c).await });

        if admission.should_trim() {
            self.trim();
        }
        Ok(conn)
    }

    /// Closes a connection that was refused after its handshake.
    fn discard(
        &self,
        muxed: Arc<dyn weft_upgrader::MuxedConnection>,
        driver: weft_upgrader::BoxFuture<'static, Result<(), weft_upgrader::MuxerError>>,
    ) {
        self.tasks.spawn(async move {
            let _ = muxed.close().await;
        });
        self.tasks.spawn(async move {
            let _ = driver.await;
        });
    }

    fn remove_connection(&self, conn: &ConnState) {
        let last = {
            let mut state = self.lock();
            state.connections.remove(&conn.id);
            let mut last = false;
            if let Some(ids) = state.by_peer.get_mut(&conn.peer) {
                ids.retain(|id| *id != conn.id);
                if ids.is_empty() {
                    state.by_peer.remove(&conn.peer);
                    state.ping_locks.remove(&conn.peer);
                    last = true;
                }
            }
            last
        };
        self.policy.closed(conn.id);
        if last {
            book::on_disconnected(&self.writer, &conn.peer);
        }
        info!(peer = %conn.peer, conn = %conn.id, "disconnected");
        self.hooks.connection_closed(conn);
        self.emit(Event::Disconnected {
            peer: conn.peer,
            connection: conn.id,
            direction: conn.direction,
            remote_addr: conn.remote_addr.clone(),
        });
    }

    /// Closes the connections idle for longer than the idle timeout.
    fn close_idle(self: &Arc<Self>) {
        let Some(timeout) = self.config.idle_timeout else {
            return;
        };
        let now = std::time::Instant::now();
        let idle: Vec<Arc<ConnState>> = self
            .lock()
            .connections
            .values()
            .filter(|c| c.is_usable() && c.is_idle(timeout, now))
            .cloned()
            .collect();
        let grace = self.config.shutdown_grace;
        for conn in idle {
            info!(peer = %conn.peer, conn = %conn.id, ?timeout, "closing idle connection");
            self.tasks
                .spawn(async move { close_connection(&conn, grace).await });
        }
    }

    /// Closes what the policy says is expendable.
    fn trim(self: &Arc<Self>) {
        let victims: Vec<Arc<ConnState>> = {
            let ids = self.policy.trim();
            let state = self.lock();
            ids.iter()
                .filter_map(|id| state.connections.get(id).cloned())
                .collect()
        };
        let grace = self.config.shutdown_grace;
        for conn in victims {
            info!(peer = %conn.peer, conn = %conn.id, "trimming connection");
            self.tasks
                .spawn(async move { close_connection(&conn, grace).await });
        }
    }

    /// What a new stream reports its end and its bytes to. `handler` is the
    /// registration key of the handler serving `protocol`, when the caller knows it;
    /// otherwise it is looked up (only when an observer wants it).
    fn tracker(
        &self,
        conn: &ConnState,
        protocol: &str,
        handler: Option<&str>,
        direction: Direction,
    ) -> StreamTracker {
        let policy = self.policy.clone();
        let id = conn.id;
        StreamTracker {
            events: self.events.clone(),
            open_streams: conn.open_streams.clone(),
            activity: conn.activity.clone(),
            on_count_change: Arc::new(move |n| policy.stream_count_changed(id, n)),
            meter: self.hooks.stream_opened(
                protocol,
                || match handler {
                    Some(key) => Some(key.to_string()),
                    None => self.handlers.find(protocol).map(|e| e.id),
                },
                direction,
            ),
        }
    }

    async fn open_stream_on(
        &self,
        conn: &ConnState,
        protocols: &[&str],
    ) -> Result<Stream, StreamError> {
        let known = book::first_supported(&self.writer, &conn.peer, protocols).await;
        let (proposals, version): (Vec<&str>, Version) = match known.as_deref() {
            Some(p) => (vec![p], Version::V1Lazy),
            None if protocols.len() == 1 => (protocols.to_vec(), Version::V1Lazy),
            None => (protocols.to_vec(), Version::V1),
        };
        let mut scope =
            lock_scope(&conn.scope).open_stream(weft_resource_manager::Direction::Outbound)?;
        let raw = conn.muxed.open_stream().await?;
        let timeout = self.config.negotiation_timeout;
        let (protocol, negotiated) =
            tokio::time::timeout(timeout, weft_mss::dialer_select(raw, proposals, version))
                .await
                .map_err(|_| StreamError::Timeout(timeout))??;
        scope.set_protocol(&protocol)?;
        let tracker = self.tracker(conn, &protocol, None, Direction::Outbound);
        Ok(Stream::new(
            negotiated,
            protocol,
            conn.peer,
            conn.id,
            Direction::Outbound,
            tracker,
            scope,
        ))
    }

    // ----- identify -----

    fn identify_message(&self, observed: Option<&Multiaddr>) -> identify::IdentifyMessage {
        identify::build_message(
            &self.keypair.public(),
            &self.config.protocol_version,
            &self.config.agent_version,
            &self.listen_addrs(),
            observed,
            self.handlers.ids(),
        )
    }

    async fn request_identify(self: &Arc<Self>, conn: &Arc<ConnState>) {
        let timeout = self.config.protocol_timeout;
        let run = async {
            let mut stream = self
                .open_stream_on(conn, &[identify::PROTOCOL])
                .await
                .map_err(|e| e.to_string())?;
            identify::read(&mut stream).await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(msg)) => {
                self.hooks.identify_received(false, true);
                self.apply_identify(conn, &msg, false).await
            }
            Ok(Err(e)) => {
                self.hooks.identify_received(false, false);
                debug!(peer = %conn.peer, error = %e, "identify failed")
            }
            Err(_) => {
                self.hooks.identify_received(false, false);
                debug!(peer = %conn.peer, "identify timed out")
            }
        }
    }

    /// Stores what a peer told us and emits the events. A push may leave fields out.
    async fn apply_identify(&self, conn: &ConnState, msg: &identify::IdentifyMessage, push: bool) {
        let info = identify::IdentifyInfo::from_message(msg);
        if let Some(key) = &info.public_key {
            if key.to_peer_id() != conn.peer {
                warn!(peer = %conn.peer, "identify carried a public key of another peer; ignored");
                return;
            }
        }
        let replace_protocols = !push || !msg.protocols.is_empty();
        let (added, removed) =
            book::on_identified(&self.writer, &conn.peer, &info, replace_protocols).await;
        if !push {
            self.emit(Event::PeerIdentified {
                peer: conn.peer,
                connection: conn.id,
                agent_version: info.agent_version.clone().unwrap_or_default(),
                protocol_version: info.protocol_version.clone().unwrap_or_default(),
                protocols: info.protocols.clone(),
                listen_addrs: info.listen_addrs.clone(),
                observed_addr: info.observed_addr.clone(),
            });
        }
        if !added.is_empty() || !removed.is_empty() {
            self.emit(Event::PeerProtocolsChanged {
                peer: conn.peer,
                added,
                removed,
            });
        }
    }

    /// Tells every connected peer our current protocols and addresses.
    fn push_identify_to_all(self: &Arc<Self>) {
        if self.shutdown.is_cancelled() {
            return;
        }
        let conns: Vec<Arc<ConnState>> = self.lock().connections.values().cloned().collect();
        for conn in conns {
            let inner = self.clone();
            self.tasks.spawn(async move {
                let timeout = inner.config.protocol_timeout;
                let run = async {
                    let mut stream = inner
                        .open_stream_on(&conn, &[identify::PUSH_PROTOCOL])
                        .await
                        .map_err(|e| e.to_string())?;
                    let msg = inner.identify_message(Some(&conn.remote_addr));
                    identify::send(&mut stream, &msg)
                        .await
                        .map_err(|e| e.to_string())
                };
                match tokio::time::timeout(timeout, run).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!(peer = %conn.peer, error = %e, "identify push failed"),
                    Err(_) => debug!(peer = %conn.peer, "identify push timed out"),
                }
            });
        }
    }
}

impl Host {
    fn register_builtin_protocols(&self) {
        let weak = Arc::downgrade(&self.inner);
        self.inner.handlers.insert_exact(
            identify::PROTOCOL.to_string(),
            Arc::new(move |mut stream: Stream| {
                let weak = weak.clone();
                Box::pin(async move {
                    let Some(inner) = weak.upgrade() else { return };
                    let observed = inner
                        .lock()
                        .connections
                        .get(&stream.connection())
                        .map(|c| c.remote_addr.clone());
                    let msg = inner.identify_message(observed.as_ref());
                    if let Err(e) = identify::send(&mut stream, &msg).await {
                        debug!(error = %e, "answering identify failed");
                    }
                })
            }),
            HandlerOptions::default()
                .with_max_inbound_streams_per_peer(Some(IDENTIFY_STREAMS_PER_PEER)),
        );
        let weak = Arc::downgrade(&self.inner);
        self.inner.handlers.insert_exact(
            identify::PUSH_PROTOCOL.to_string(),
            Arc::new(move |mut stream: Stream| {
                let weak = weak.clone();
                Box::pin(async move {
                    let Some(inner) = weak.upgrade() else { return };
                    let timeout = inner.config.protocol_timeout;
                    let msg = match tokio::time::timeout(timeout, identify::read(&mut stream)).await
                    {
                        Ok(Ok(msg)) => msg,
                        Ok(Err(e)) => {
                            inner.hooks.identify_received(true, false);
                            return debug!(error = %e, "identify push malformed");
                        }
                        Err(_) => {
                            inner.hooks.identify_received(true, false);
                            return debug!("identify push timed out");
                        }
                    };
                    inner.hooks.identify_received(true, true);
                    let conn = inner.lock().connections.get(&stream.connection()).cloned();
                    if let Some(conn) = conn {
                        inner.apply_identify(&conn, &msg, true).await;
                    }
                })
            }),
            HandlerOptions::default()
                .with_max_inbound_streams_per_peer(Some(IDENTIFY_PUSH_STREAMS_PER_PEER)),
        );
        // The spec: a listener SHOULD accept at most 2 ping streams per peer. More
        // get `na`.
        self.inner.handlers.insert_exact(
            ping::PROTOCOL.to_string(),
            Arc::new(move |mut stream: Stream| {
                Box::pin(async move {
                    if let Err(e) = ping::serve(&mut stream).await {
                        debug!(error = %e, "serving ping failed");
                    }
                })
            }),
            HandlerOptions::default()
                .with_max_inbound_streams_per_peer(Some(ping::MAX_INBOUND_STREAMS_PER_PEER)),
        );
    }
}

/// Accepts the inbound streams of one connection and hands each to its handler.
async fn accept_streams(weak: Weak<Inner>, conn: Arc<ConnState>) {
    loop {
        let raw = tokio::select! {
            _ = conn.closed.cancelled() => break,
            r = conn.muxed.accept_stream() => match r {
                Ok(s) => s,
                Err(e) => {
                    debug!(conn = %conn.id, error = %e, "no more inbound streams");
                    break;
                }
            },
        };
        let Some(inner) = weak.upgrade() else { break };
        let c = conn.clone();
        let weak = weak.clone();
        inner.tasks.spawn(async move {
            let Some(inner) = weak.upgrade() else { return };
            let timeout = inner.config.negotiation_timeout;
            let scope =
                match lock_scope(&c.scope).open_stream(weft_resource_manager::Direction::Inbound) {
                    Ok(scope) => scope,
                    // Dropping the raw stream resets it.
                    Err(e) => {
                        inner.hooks.inbound_stream_refused();
                        return debug!(conn = %c.id, error = %e, "inbound stream refused");
                    }
                };
            // The matcher takes the handler's and the peer's slots, and moves the
            // stream's scope to the protocol, when it accepts a proposal: a stream over
            // its slot or its protocol's limits gets `na`.
            let matcher = InboundMatcher::new(&inner.handlers, c.peer, Some(scope));
            let negotiated =
                tokio::time::timeout(timeout, weft_mss::listener_select(raw, &matcher)).await;
            let (protocol, io) = match negotiated {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => {
                    inner.hooks.inbound_stream_refused();
                    return debug!(conn = %c.id, error = %e, "inbound negotiation failed");
                }
                Err(_) => {
                    inner.hooks.inbound_stream_refused();
                    return debug!(conn = %c.id, "inbound negotiation timed out");
                }
            };
            let Some((admitted, Some(scope))) = matcher.into_admitted(&protocol) else {
                inner.hooks.inbound_stream_refused();
                return debug!(%protocol, "negotiated a protocol no handler admitted");
            };
            let tracker =
                inner.tracker(&c, &protocol, Some(&admitted.entry.id), Direction::Inbound);
            let stream = Stream::new(
                io,
                protocol,
                c.peer,
                c.id,
                Direction::Inbound,
                tracker,
                scope,
            );
            drop(inner);
            (admitted.entry.handler)(stream).await;
            drop(admitted);
        });
    }
}
