//! QUIC endpoints of one identity: a socket per listen address, reused for dials,
//! and a shared dialing socket per address family when nothing listens.

use crate::config::Config;
use crate::connection::into_connection;
use crate::error::QuicError;
use crate::socket;
use crate::window::Windows;
use libp2p_identity::{Keypair, PeerId};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use tracing::Instrument;
use weft_security_tls::{expected_peer_server_name, SharedTlsConfigs};
use weft_upgrader::{Budget, Connection, Role};

/// A connection a dial or an accept produced, with its socket addresses.
#[derive(Debug)]
pub struct Established {
    /// The secure, multiplexed connection; spawn its driver.
    pub connection: Connection,
    /// Our side: the socket's port and, for an inbound connection, the local IP the
    /// peer's packets arrived on where the system reports it (Linux, macOS, Windows);
    /// otherwise the socket's own IP, which may be the wildcard.
    pub local_addr: SocketAddr,
    /// The peer's address as we see it.
    pub remote_addr: SocketAddr,
}

/// The QUIC endpoints of one identity.
///
/// Each [`listen`](QuicEndpoints::listen) binds a UDP socket (a quinn endpoint) that
/// serves inbound connections and also carries our dials to addresses it can reach,
/// so a remote (and a NAT) sees our listen port as the source port. Dials that no
/// listening socket can carry share one socket per address family, bound to an
/// ephemeral port on first use.
///
/// Cheap to clone; clones share the sockets. Needs a Tokio runtime.
#[derive(Clone)]
pub struct QuicEndpoints {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QuicEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicEndpoints")
            .field("local_peer_id", &self.inner.local_peer_id)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    local_peer_id: PeerId,
    config: Config,
    client_crypto: Arc<QuicClientConfig>,
    server_crypto: Arc<QuicServerConfig>,
    sockets: Mutex<Sockets>,
}

#[derive(Default)]
struct Sockets {
    next_id: u64,
    listening: Vec<Listening>,
    dial_v4: Option<quinn::Endpoint>,
    dial_v6: Option<quinn::Endpoint>,
}

struct Listening {
    id: u64,
    local_addr: SocketAddr,
    endpoint: quinn::Endpoint,
}

impl QuicEndpoints {
    /// Endpoints for `identity`: its certificate is generated once, here.
    ///
    /// # Errors
    ///
    /// [`QuicError::LocalTls`] when the TLS configuration cannot be built.
    pub fn new(identity: &Keypair, config: Config) -> Result<Self, QuicError> {
        let tls = SharedTlsConfigs::new(identity).map_err(QuicError::LocalTls)?;
        let tls_error =
            |e: &dyn std::fmt::Display| weft_security_tls::TlsError::Config(e.to_string());
        let client_crypto = QuicClientConfig::try_from(tls.client)
            .map_err(|e| QuicError::LocalTls(tls_error(&e)))?;
        let server_crypto = QuicServerConfig::try_from(tls.server)
            .map_err(|e| QuicError::LocalTls(tls_error(&e)))?;
        Ok(QuicEndpoints {
            inner: Arc::new(Inner {
                local_peer_id: identity.public().to_peer_id(),
                config,
                client_crypto: Arc::new(client_crypto),
                server_crypto: Arc::new(server_crypto),
                sockets: Mutex::new(Sockets::default()),
            }),
        })
    }

    /// Our own peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.inner.local_peer_id
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Binds a UDP socket to `addr` (port 0: any) and listens on it.
    ///
    /// # Errors
    ///
    /// [`QuicError::Io`] when the socket cannot be bound or no Tokio runtime runs.
    pub fn listen(&self, addr: SocketAddr) -> Result<QuicListener, QuicError> {
        let config = &self.inner.config;
        let mut server = quinn::ServerConfig::with_crypto(self.inner.server_crypto.clone());
        server
            .max_incoming(config.max_pending_inbound.max(1))
            .transport_config(
                Windows::reserve(config, &Budget::unlimited()).transport_config(config),
            );
        let endpoint = self.endpoint(addr, Some(server))?;
        let local_addr = endpoint.local_addr()?;
        let mut sockets = self.inner.lock();
        let id = sockets.next_id;
        sockets.next_id += 1;
        sockets.listening.push(Listening {
            id,
            local_addr,
            endpoint: endpoint.clone(),
        });
        tracing::debug!(%local_addr, "QUIC listening");
        Ok(QuicListener {
            id,
            local_addr,
            endpoint,
            owner: self.inner.clone(),
        })
    }

    /// Connects to `remote`; the handshake must prove `expected` when given. The
    /// receive window is reserved from `budget` first (shrunk if it denies).
    ///
    /// # Errors
    ///
    /// [`QuicError::Handshake`] (a wrong peer fails here, before any stream),
    /// [`QuicError::HandshakeTimeout`], [`QuicError::Connect`] or [`QuicError::Io`].
    pub async fn dial(
        &self,
        remote: SocketAddr,
        expected: Option<PeerId>,
        budget: Budget,
    ) -> Result<Established, QuicError> {
        let endpoint = self.dialing_endpoint(remote)?;
        let config = &self.inner.config;
        let windows = Windows::reserve(config, &budget);
        let mut client = quinn::ClientConfig::new(self.inner.client_crypto.clone());
        client.transport_config(windows.transport_config(config));
        let server_name = expected_peer_server_name(expected);
        let span =
            tracing::debug_span!("quic_handshake", role = "client", %remote, expected = ?expected);
        let connecting = endpoint.connect_with(client, remote, &server_name)?;
        let connection = timed(config, connecting).instrument(span).await?;
        let local_addr = endpoint.local_addr()?;
        established(connection, Role::Initiator, windows, local_addr, config)
    }

    /// The endpoint a dial to `remote` leaves from: a listening one that can reach it
    /// (port reuse), else the shared one of its family.
    fn dialing_endpoint(&self, remote: SocketAddr) -> Result<quinn::Endpoint, QuicError> {
        let mut sockets = self.inner.lock();
        if let Some(listening) = sockets
            .listening
            .iter()
            .find(|l| socket::can_reach(l.local_addr, remote))
        {
            return Ok(listening.endpoint.clone());
        }
        let (slot, wildcard) = if remote.is_ipv4() {
            (&mut sockets.dial_v4, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        } else {
            (&mut sockets.dial_v6, IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        };
        if let Some(endpoint) = slot {
            return Ok(endpoint.clone());
        }
        let endpoint = self.endpoint(SocketAddr::new(wildcard, 0), None)?;
        *slot = Some(endpoint.clone());
        Ok(endpoint)
    }

    /// A quinn endpoint on a fresh socket bound to `addr`.
    fn endpoint(
        &self,
        addr: SocketAddr,
        server: Option<quinn::ServerConfig>,
    ) -> Result<quinn::Endpoint, QuicError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(QuicError::Io(std::io::Error::other(
                "QUIC endpoints need a Tokio runtime",
            )));
        }
        let udp = socket::bind(addr, self.inner.config.socket_buffer)?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            server,
            udp,
            Arc::new(quinn::TokioRuntime),
        )?;
        Ok(endpoint)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Sockets> {
        // The socket lists are updated in single steps that cannot panic halfway.
        self.sockets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A listening QUIC socket. Dropping it stops accepting; connections already made
/// (and dials leaving from this socket) go on.
pub struct QuicListener {
    id: u64,
    local_addr: SocketAddr,
    endpoint: quinn::Endpoint,
    owner: Arc<Inner>,
}

impl std::fmt::Debug for QuicListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicListener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl QuicListener {
    /// The address listened on (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for the next peer that starts a handshake. The handshake runs in
    /// [`Inbound::handshake`], so a slow peer never holds up the next one.
    ///
    /// # Errors
    ///
    /// [`QuicError::Closed`] once the endpoint is closed.
    pub async fn accept(&self) -> Result<Inbound, QuicError> {
        let incoming = self.endpoint.accept().await.ok_or(QuicError::Closed)?;
        Ok(Inbound {
            incoming,
            local_addr: self.local_addr,
            owner: self.owner.clone(),
        })
    }
}

impl Drop for QuicListener {
    fn drop(&mut self) {
        self.endpoint.set_server_config(None);
        self.owner.lock().listening.retain(|l| l.id != self.id);
        tracing::debug!(local_addr = %self.local_addr, "QUIC listener closed");
    }
}

/// A peer that started a handshake with a [`QuicListener`].
pub struct Inbound {
    incoming: quinn::Incoming,
    local_addr: SocketAddr,
    owner: Arc<Inner>,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("remote_addr", &self.remote_addr())
            .finish_non_exhaustive()
    }
}

impl Inbound {
    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.incoming.remote_address()
    }

    /// Refuses the connection (the peer gets CONNECTION_REFUSED).
    pub fn refuse(self) {
        self.incoming.refuse();
    }

    /// Whether the peer proved that it receives at its address: its Initial carried a
    /// token we issued (in a Retry, or on an earlier connection).
    pub fn remote_address_validated(&self) -> bool {
        self.incoming.remote_address_validated()
    }

    /// Answers with a stateless Retry and keeps nothing: a peer that receives at its
    /// address comes back with the token, validated (one round trip later); a flood
    /// from ports nobody reads costs no handshake state. A peer that was validated
    /// already cannot be retried: it is refused.
    pub fn retry(self) {
        if let Err(error) = self.incoming.retry() {
            error.into_incoming().refuse();
        }
    }

    /// Runs the handshake, with the receive window reserved from `budget` first
    /// (shrunk if it denies).
    ///
    /// # Errors
    ///
    /// [`QuicError::Handshake`] or [`QuicError::HandshakeTimeout`].
    pub async fn handshake(self, budget: Budget) -> Result<Established, QuicError> {
        let config = &self.owner.config;
        let windows = Windows::reserve(config, &budget);
        let mut server = quinn::ServerConfig::with_crypto(self.owner.server_crypto.clone());
        server.transport_config(windows.transport_config(config));
        let remote = self.remote_addr();
        let span = tracing::debug_span!("quic_handshake", role = "server", %remote);
        let connecting = self
            .incoming
            .accept_with(Arc::new(server))
            .map_err(QuicError::Handshake)?;
        let connection = timed(config, connecting).instrument(span).await?;
        established(
            connection,
            Role::Responder,
            windows,
            self.local_addr,
            config,
        )
    }
}

/// Waits for a handshake under the configured timeout, logging the outcome.
async fn timed(
    config: &Config,
    connecting: quinn::Connecting,
) -> Result<quinn::Connection, QuicError> {
    let limit = config.handshake_timeout;
    let result = match tokio::time::timeout(limit, connecting).await {
        Ok(result) => result.map_err(QuicError::Handshake),
        Err(_) => Err(QuicError::HandshakeTimeout(limit)),
    };
    match &result {
        Ok(connection) => {
            tracing::debug!(remote = %connection.remote_address(), "QUIC handshake done")
        }
        Err(error) => tracing::debug!(%error, "QUIC handshake failed"),
    }
    result
}

/// The [`Established`] connection of a finished handshake.
fn established(
    connection: quinn::Connection,
    role: Role,
    windows: Windows,
    socket_addr: SocketAddr,
    config: &Config,
) -> Result<Established, QuicError> {
    let remote_addr = connection.remote_address();
    let local_ip = connection.local_ip().unwrap_or(socket_addr.ip());
    let local_addr = SocketAddr::new(local_ip, socket_addr.port());
    let connection = into_connection(connection, role, windows.reservation, config)?;
    Ok(Established {
        connection,
        local_addr,
        remote_addr,
    })
}
