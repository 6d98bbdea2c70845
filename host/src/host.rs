//! The host: listening, dialing, connections, streams and the built-in protocols.

use crate::admission::PendingInbound;
use crate::config::HostConfig;
use crate::conn::{ConnState, ConnectionInfo};
use crate::dial::{DialOpts, DialSlot};
use crate::error::{DialError, ListenError, StreamError};
use crate::events::Event;
use crate::handlers::{Handler, HandlerOptions, Handlers, MatchFn};
use crate::listeners::Listeners;
use crate::observer::Hooks;
use crate::registry::Registry;
use crate::store_writer::StoreWriter;
use crate::stream::Stream;
use crate::transport::Transport;
use libp2p_identity::{Keypair, PeerId};
use multiaddr::Multiaddr;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use weft_connmgr::{ConnectionId, ConnectionPolicy};
use weft_peerstore::PeerStore;
use weft_resource_manager::ResourceManager;
use weft_upgrader::Upgrader;

#[derive(Default)]
pub(crate) struct State {
    pub(crate) registry: Registry<Arc<ConnState>>,
    pub(crate) dials: HashMap<PeerId, DialSlot>,
    pub(crate) listeners: Listeners,
    pub(crate) ping_locks: HashMap<PeerId, Arc<tokio::sync::Mutex<()>>>,
    pub(crate) own_addrs: crate::observed::OwnAddrs,
    #[cfg(feature = "autonat")]
    pub(crate) autonat: Option<Arc<crate::autonat::ClientShared>>,
}

impl State {
    /// The open connections to `peer`, oldest first.
    pub(crate) fn connections_of<'a>(
        &'a self,
        peer: &PeerId,
    ) -> impl DoubleEndedIterator<Item = &'a Arc<ConnState>> {
        self.registry.of(peer)
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
    /// Roles hole punches promised to inbound connections from their peers' IPs.
    pub(crate) inbound_roles: crate::inbound_roles::InboundRoles,
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
    pub(crate) inner: Arc<Inner>,
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
            inbound_roles: Default::default(),
            state: Mutex::new(State::default()),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        });
        let host = Host { inner };
        host.inner.register_identify();
        host.inner.serve_ping();
        let inner = &host.inner;
        inner.tasks.spawn(crate::registry::maintenance(
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

    /// Accepts `addr` as one of our addresses on the internet (an
    /// [`Event::ExternalAddrCandidate`], or one the user knows): identify advertises
    /// it from now on, and connected peers are told. False if it was accepted before.
    pub fn add_external_addr(&self, addr: Multiaddr) -> bool {
        self.inner.add_external_addr(addr)
    }

    /// Withdraws an external address; false if it was not accepted.
    pub fn remove_external_addr(&self, addr: &Multiaddr) -> bool {
        self.inner.remove_external_addr(addr)
    }

    /// The accepted external addresses.
    pub fn external_addrs(&self) -> Vec<Multiaddr> {
        self.inner.external_addrs()
    }

    /// Open connections, all peers.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.inner
            .all_connections()
            .iter()
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
            .add_exact_handler(protocol.into(), handler, options);
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
        self.inner.add_match_handler(id.into(), matches, handler);
    }

    /// Removes a handler; true if one was registered under `protocol`.
    pub fn remove_handler(&self, protocol: &str) -> bool {
        self.inner.remove_handler(protocol)
    }

    /// Serves `/perf/1.0.0` (off by default, as the spec recommends).
    pub fn enable_perf(&self) {
        self.inner.enable_perf();
    }

    /// The protocol ids we accept inbound streams for (what identify advertises).
    pub fn protocols(&self) -> Vec<String> {
        self.inner.handlers.ids()
    }

    // ----- listening -----

    /// Listens on an address; returns the actual addresses (port 0 resolved).
    pub async fn listen(&self, addr: &Multiaddr) -> Result<Vec<Multiaddr>, ListenError> {
        self.inner.listen(addr).await
    }

    /// Stops listening on the listener that has `addr` among its addresses.
    pub fn close_listener(&self, addr: &Multiaddr) -> bool {
        self.inner.close_listener(addr)
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
        self.inner.close_peer(peer).await
    }

    /// Closes one connection gracefully; false if no open connection has this id.
    pub async fn close(&self, connection: ConnectionId) -> bool {
        self.inner.close(&connection).await
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

    /// [`new_stream`](Self::new_stream) for a request that is safe to run twice (a
    /// ping, a perf run), connecting with early data if there is no connection yet.
    ///
    /// On a connection whose handshake still runs (QUIC dialed with
    /// [`DialOpts::with_early_data`] on a resumed session) the stream leaves at once
    /// as early (0-RTT) data, which an attacker may record and replay; the remote
    /// serves it early only with a handler that declares it safe
    /// ([`HandlerOptions::accepts_replayable`]), others after the handshake. If the
    /// remote rejects the early data, the stream's reads and writes fail
    /// ([`SessionInfo::early_data`](crate::SessionInfo::early_data) then says
    /// `Rejected`): open a new one. On any other connection it is
    /// [`new_stream`](Self::new_stream).
    pub async fn new_early_stream(
        &self,
        peer: PeerId,
        protocols: &[&str],
    ) -> Result<Stream, StreamError> {
        if protocols.is_empty() {
            return Err(StreamError::NoProtocols);
        }
        let opts = DialOpts::default().with_early_data(true);
        let conn = self.inner.connect(peer, opts).await?;
        self.inner.open_early_stream_on(&conn, protocols).await
    }

    /// What the handshake of an open connection did (resumed, early data accepted)
    /// and its transport's RTT estimate; `None` if no open connection has this id.
    pub fn session_info(&self, connection: ConnectionId) -> Option<crate::SessionInfo> {
        Some(self.inner.connection(&connection)?.muxed.session_info())
    }

    /// Waits until the handshake of an open connection has completed (at once for
    /// all but early QUIC connections): false if it failed or no open connection has
    /// this id.
    pub async fn handshake_complete(&self, connection: ConnectionId) -> bool {
        match self.inner.connection(&connection) {
            Some(conn) => conn.muxed.handshake_complete().await,
            None => false,
        }
    }

    /// Pings a peer once over `/ipfs/ping/1.0.0` and returns the round-trip time. At
    /// most one ping stream per peer is open at a time; concurrent calls wait.
    pub async fn ping(&self, peer: PeerId) -> Result<Duration, crate::PingFailure> {
        let open = self.new_stream(peer, &[crate::ping::PROTOCOL]);
        self.inner.ping(peer, open).await
    }

    /// Shuts down: stops the listeners (`ListenClose`), closes every connection with
    /// a go-away, waits for the host's tasks (bounded by the configured grace).
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return;
        }
        info!("shutting down");
        let conns: Vec<Arc<ConnState>> = inner.all_connections();
        let grace = inner.config.shutdown_grace;
        futures::future::join_all(
            conns
                .iter()
                .map(|c| crate::registry::close_connection(c, grace)),
        )
        .await;
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
}
