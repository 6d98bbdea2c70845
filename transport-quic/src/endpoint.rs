//! QUIC endpoints of one identity: a socket per listen address, reused for dials,
//! and a shared dialing socket per address family when nothing listens.

use crate::config::Config;
use crate::connection::{
    into_connection, peer_chain, proven_key, watch_handshake, Pending, Progress, Stage,
};
use crate::error::QuicError;
use crate::socket;
use crate::window::Windows;
use libp2p_identity::{Keypair, PeerId};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::CertificateDer;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;
use tracing::Instrument;
use weft_security_tls::SharedTlsConfigs;
use weft_upgrader::{Budget, Connection, EarlyData, Role};

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
    /// The certificate the peer presented: verified in this handshake, or, for a
    /// resumed session, the one of its original handshake (which rustls restores).
    /// `None` on a dialer's connection handed out before its handshake completed
    /// (0-RTT).
    pub peer_certificate: Option<CertificateDer<'static>>,
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
    /// The rustls configurations: the client's session tickets and dial records.
    tls: SharedTlsConfigs,
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
    /// The endpoint's socket (a duplicate descriptor), for [`QuicEndpoints::punch`].
    punch: Arc<std::net::UdpSocket>,
}

impl QuicEndpoints {
    /// Endpoints for `identity`: its TLS configuration is built once, here, and its
    /// certificate rotates inside it every [`Config::certificate_rotation`].
    ///
    /// # Errors
    ///
    /// [`QuicError::LocalTls`] when the TLS configuration cannot be built.
    pub fn new(identity: &Keypair, config: Config) -> Result<Self, QuicError> {
        let tls = SharedTlsConfigs::with_rotation(
            identity,
            weft_security_tls::default_crypto_provider(),
            config.certificate_rotation,
        )
        .map_err(QuicError::LocalTls)?;
        let tls_error =
            |e: &dyn std::fmt::Display| weft_security_tls::TlsError::Config(e.to_string());
        let client_crypto = QuicClientConfig::try_from(tls.client.clone())
            .map_err(|e| QuicError::LocalTls(tls_error(&e)))?;
        let server_crypto = QuicServerConfig::try_from(tls.server.clone())
            .map_err(|e| QuicError::LocalTls(tls_error(&e)))?;
        Ok(QuicEndpoints {
            inner: Arc::new(Inner {
                local_peer_id: identity.public().to_peer_id(),
                config,
                tls,
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

    /// The certificate our next handshake presents (until it is rotated).
    pub fn local_certificate(&self) -> CertificateDer<'static> {
        self.inner.tls.certificate().certificate()
    }

    /// Replaces our certificate by a freshly generated one of the same identity now,
    /// inside the same TLS configuration: sessions from before still resume.
    ///
    /// # Errors
    ///
    /// [`QuicError::LocalTls`] when the certificate cannot be generated (the current
    /// one stays).
    pub fn rotate_certificate(&self) -> Result<(), QuicError> {
        self.inner
            .tls
            .certificate()
            .rotate()
            .map_err(QuicError::LocalTls)
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
        let (endpoint, punch) = self.endpoint_and_socket(addr, Some(server))?;
        let local_addr = endpoint.local_addr()?;
        let mut sockets = self.inner.lock();
        let id = sockets.next_id;
        sockets.next_id += 1;
        sockets.listening.push(Listening {
            id,
            local_addr,
            endpoint: endpoint.clone(),
            punch: Arc::new(punch),
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
    /// receive window is reserved from `budget` first (shrunk if it denies). No early
    /// data: see [`dial_with`](Self::dial_with).
    ///
    /// # Errors
    ///
    /// As [`dial_with`](Self::dial_with).
    pub async fn dial(
        &self,
        remote: SocketAddr,
        expected: Option<PeerId>,
        budget: Budget,
    ) -> Result<Established, QuicError> {
        self.dial_with(remote, expected, false, budget).await
    }

    /// Connects to `remote`; the handshake must prove `expected` when given.
    ///
    /// A dial that knows the peer resumes a session of that peer id when the client
    /// holds one of its tickets (never one of another peer, whatever the address).
    /// With `early_data` it also returns at once, before the server answered, when
    /// the ticket allows 0-RTT: streams opened with
    /// [`open_early_stream`](weft_upgrader::MuxedConnection::open_early_stream)
    /// then leave in 0-RTT (replayable: only for requests safe to run twice), other
    /// streams wait for the handshake; [`session_info`](weft_upgrader::MuxedConnection::session_info)
    /// tells later whether the listener accepted the early data. Without a ticket
    /// the dial waits for a full handshake as usual.
    ///
    /// # Errors
    ///
    /// [`QuicError::Handshake`] (a wrong peer fails here, before any stream),
    /// [`QuicError::HandshakeTimeout`], [`QuicError::Connect`] or [`QuicError::Io`].
    /// An early connection whose handshake then fails is closed; its streams fail.
    pub async fn dial_with(
        &self,
        remote: SocketAddr,
        expected: Option<PeerId>,
        early_data: bool,
        budget: Budget,
    ) -> Result<Established, QuicError> {
        let endpoint = self.dialing_endpoint(remote)?;
        let config = &self.inner.config;
        let windows = Windows::reserve(config, &budget);
        let mut client = quinn::ClientConfig::new(self.inner.client_crypto.clone());
        client.transport_config(windows.transport_config(config));
        let dial = self.inner.tls.dial_name(expected);
        let span =
            tracing::debug_span!("quic_handshake", role = "client", %remote, expected = ?expected);
        let mut connecting = endpoint.connect_with(client, remote, dial.server_name())?;
        let local_addr = endpoint.local_addr()?;
        // 0-RTT only for a dial that asks, to a peer whose key a full handshake proved
        // (tickets do not expose their certificate, so it was remembered then).
        let early_key = expected
            .filter(|_| early_data)
            .and_then(|peer| self.inner.tls.proven_key(&peer));
        if let Some(key) = early_key {
            match connecting.into_0rtt() {
                Ok((connection, accepted)) => {
                    tracing::debug!(%remote, "QUIC dial sends early data");
                    let pending = Pending {
                        accepted,
                        key,
                        early_data: true,
                        resumed: Box::new(move || Some(dial.resumed())),
                        timeout: config.handshake_timeout,
                    };
                    return Ok(early(
                        connection,
                        Role::Initiator,
                        windows,
                        local_addr,
                        config,
                        pending,
                    ));
                }
                Err(full) => connecting = full,
            }
        }
        let connection = timed(config, connecting).instrument(span).await?;
        let progress = Progress::complete(Some(dial.resumed()));
        established(
            connection,
            Role::Initiator,
            windows,
            local_addr,
            config,
            progress,
        )
    }

    /// How many unused session tickets of `peer` the client holds (each dial that
    /// resumes takes one; the listener sends new ones on every connection).
    pub fn session_tickets(&self, peer: &PeerId) -> usize {
        self.inner.tls.tickets(peer)
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

    /// Sends `payload` as one UDP datagram to `remote` from a listening socket that
    /// can reach it: DCUtR's hole punching packets, sent by the peer that is to be the
    /// QUIC server of the punched connection, so that its NAT lets the other peer's
    /// dial in. The datagram is not QUIC; the other peer's endpoint drops it.
    ///
    /// # Errors
    ///
    /// [`QuicError::Io`] when no listening socket can reach `remote` or the send
    /// failed (a full socket buffer included: the next packet tries again).
    pub fn punch(&self, remote: SocketAddr, payload: &[u8]) -> Result<(), QuicError> {
        let socket = self
            .inner
            .lock()
            .listening
            .iter()
            .find(|l| socket::can_reach(l.local_addr, remote))
            .map(|l| l.punch.clone())
            .ok_or_else(|| {
                QuicError::Io(std::io::Error::new(
                    std::io::ErrorKind::AddrNotAvailable,
                    format!("no listening QUIC socket can reach {remote}"),
                ))
            })?;
        socket.send_to(payload, remote)?;
        Ok(())
    }

    /// A quinn endpoint on a fresh socket bound to `addr`, with a duplicate of the
    /// socket's descriptor.
    fn endpoint_and_socket(
        &self,
        addr: SocketAddr,
        server: Option<quinn::ServerConfig>,
    ) -> Result<(quinn::Endpoint, std::net::UdpSocket), QuicError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(QuicError::Io(std::io::Error::other(
                "QUIC endpoints need a Tokio runtime",
            )));
        }
        let udp = socket::bind(addr, self.inner.config.socket_buffer)?;
        let duplicate = udp.try_clone()?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            server,
            udp,
            Arc::new(quinn::TokioRuntime),
        )?;
        Ok((endpoint, duplicate))
    }

    /// A quinn endpoint on a fresh socket bound to `addr`.
    fn endpoint(
        &self,
        addr: SocketAddr,
        server: Option<quinn::ServerConfig>,
    ) -> Result<quinn::Endpoint, QuicError> {
        self.endpoint_and_socket(addr, server)
            .map(|(endpoint, _)| endpoint)
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
    /// A peer that resumes a session (its certificate comes back from the session,
    /// proven in the original handshake) is returned once its ClientHello is read,
    /// so the streams it opened in 0-RTT can be served: they report
    /// [`is_early`](weft_upgrader::MuxedStream::is_early), and our own streams wait
    /// for the handshake. Any other peer is returned after the full handshake.
    ///
    /// # Errors
    ///
    /// [`QuicError::Handshake`] or [`QuicError::HandshakeTimeout`].
    pub async fn handshake(self, budget: Budget) -> Result<Established, QuicError> {
        let config = &self.owner.config;
        let windows = Windows::reserve(config, &budget);
        let mut server = quinn::ServerConfig::with_crypto(self.owner.server_crypto.clone());
        server.transport_config(windows.listener_transport_config(config));
        let remote = self.remote_addr();
        let span = tracing::debug_span!("quic_handshake", role = "server", %remote);
        let mut connecting = self
            .incoming
            .accept_with(Arc::new(server))
            .map_err(QuicError::Handshake)?;
        let limit = config.handshake_timeout;
        let started = tokio::time::Instant::now();
        // The ClientHello: after it, a resumed session has its peer certificate back.
        match tokio::time::timeout(limit, connecting.handshake_data()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(QuicError::Handshake(error)),
            Err(_) => return Err(QuicError::HandshakeTimeout(limit)),
        }
        // A listener's conversion always succeeds (quinn: 0.5-RTT).
        let (connection, accepted) = match connecting.into_0rtt() {
            Ok(converted) => converted,
            Err(connecting) => {
                let connection = timed(config, connecting).instrument(span).await?;
                let progress = Progress::complete(Some(false));
                return established(
                    connection,
                    Role::Responder,
                    windows,
                    self.local_addr,
                    config,
                    progress,
                );
            }
        };
        // The client's certificate is known at this point either because the session
        // was resumed (restored, not verified again) or because a full handshake got
        // that far already (verified, and recorded by the verifier).
        let tls = &self.owner.tls;
        let resumed = peer_chain(&connection).map(|chain| !tls.claim_full_handshake(&chain));
        if resumed == Some(true) {
            let key = proven_key(&connection)?;
            tracing::debug!(%remote, "QUIC session resumed; serving early streams");
            let pending = Pending {
                accepted,
                key,
                early_data: false,
                resumed: Box::new(|| Some(true)),
                timeout: limit.saturating_sub(started.elapsed()),
            };
            return Ok(early(
                connection,
                Role::Responder,
                windows,
                self.local_addr,
                config,
                pending,
            ));
        }
        // A full handshake: nothing is handed out before the client proved its key.
        let remaining = limit.saturating_sub(started.elapsed());
        let completed = tokio::time::timeout(remaining, accepted)
            .instrument(span)
            .await;
        if completed.is_err() {
            connection.close(quinn::VarInt::from_u32(0), b"handshake timed out");
            return Err(QuicError::HandshakeTimeout(limit));
        }
        if let Some(error) = connection.close_reason() {
            return Err(QuicError::Handshake(error));
        }
        if resumed.is_none() {
            // Claim the verifier's record of this certificate, so that it cannot make a
            // later resumed connection of the same client look like a full one.
            if let Some(chain) = peer_chain(&connection) {
                tls.claim_full_handshake(&chain);
            }
        }
        let progress = Progress::complete(Some(false));
        established(
            connection,
            Role::Responder,
            windows,
            self.local_addr,
            config,
            progress,
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
    progress: Progress,
) -> Result<Established, QuicError> {
    let key = proven_key(&connection)?;
    let (_, progress) = watch::channel(progress);
    Ok(wrap(
        connection,
        role,
        windows,
        socket_addr,
        config,
        key,
        progress,
    ))
}

/// The [`Established`] connection of a handshake still running: handed out with the
/// key of the session it resumes, its handshake followed in a task.
fn early(
    connection: quinn::Connection,
    role: Role,
    windows: Windows,
    socket_addr: SocketAddr,
    config: &Config,
    pending: Pending,
) -> Established {
    let (sender, progress) = watch::channel(Progress {
        stage: Stage::Early,
        resumed: None,
        early_data: if pending.early_data {
            EarlyData::Pending
        } else {
            EarlyData::NotAttempted
        },
    });
    let key = pending.key.clone();
    tokio::spawn(watch_handshake(connection.clone(), pending, sender));
    wrap(
        connection,
        role,
        windows,
        socket_addr,
        config,
        key,
        progress,
    )
}

/// Wraps a connection with its socket addresses.
fn wrap(
    connection: quinn::Connection,
    role: Role,
    windows: Windows,
    socket_addr: SocketAddr,
    config: &Config,
    key: libp2p_identity::PublicKey,
    progress: watch::Receiver<Progress>,
) -> Established {
    let remote_addr = connection.remote_address();
    let peer_certificate = peer_chain(&connection).and_then(|chain| chain.into_iter().next());
    let local_ip = connection.local_ip().unwrap_or(socket_addr.ip());
    let local_addr = SocketAddr::new(local_ip, socket_addr.port());
    if role == Role::Responder {
        // A listener advertised the minimum (see `Windows::listener_transport_config`).
        connection.set_receive_window(quinn::VarInt::from_u32(windows.connection));
    }
    let connection = into_connection(connection, role, windows, config, key, progress);
    Established {
        connection,
        local_addr,
        remote_addr,
        peer_certificate,
    }
}
