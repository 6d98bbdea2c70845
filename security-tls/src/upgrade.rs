//! [`TlsUpgrade`]: libp2p TLS 1.3 behind weft's [`SecurityUpgrade`] trait.

use crate::alpn;
use crate::budgeted::{denied, Budgeted, BUFFER_PRIORITY, CHANNEL_MEMORY, HANDSHAKE_MEMORY};
use crate::config::TlsConfig;
use crate::error::TlsError;
use crate::verifier::Libp2pCertVerifier;
use futures_rustls::{LazyConfigAcceptor, TlsConnector};
use libp2p_identity::{Keypair, PeerId};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::server::{Acceptor, NoServerSessionStorage};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, ServerConfig};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::Instrument;
use weft_upgrader::{BoxedIo, Budget, SecuredConnection, SecurityError, SecurityUpgrade};

/// The multistream-select protocol id of libp2p TLS.
pub const PROTOCOL_ID: &str = "/tls/1.0.0";

/// The server name the client passes to rustls. It is never sent: SNI is disabled, as
/// the libp2p TLS spec requires.
const DUMMY_SERVER_NAME: &str = "libp2p.invalid";

/// libp2p TLS 1.3 (`/tls/1.0.0`) for a local identity.
///
/// Handshakes present a self-signed certificate carrying the libp2p public key
/// extension (fresh, or reused for [`TlsConfig::certificate_lifetime`]), require and
/// verify the peer's certificate on both sides, and may agree on a muxer through
/// ALPN. Handshakes need a Tokio runtime (for the timeout).
///
/// ```no_run
/// # async fn demo(tcp: weft_upgrader::BoxedIo) -> Result<(), weft_upgrader::SecurityError> {
/// use weft_security_tls::TlsUpgrade;
/// use weft_upgrader::SecurityUpgrade;
///
/// let tls = TlsUpgrade::new(libp2p_identity::Keypair::generate_ed25519());
/// let secured = tls
///     .secure_outbound(tcp, None, &["/yamux/1.0.0".to_string()])
///     .await?;
/// println!("talking to {} (muxer {:?})", secured.remote_peer, secured.muxer);
/// # Ok(()) }
/// ```
pub struct TlsUpgrade {
    identity: Keypair,
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    /// The certificate in reuse and when it was made. Locked only briefly, never
    /// across an `.await`.
    cached: Mutex<Option<(Instant, Arc<CertifiedKey>)>>,
}

impl std::fmt::Debug for TlsUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsUpgrade")
            .field("local_peer_id", &self.local_peer_id())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TlsUpgrade {
    /// TLS for `identity` with the default [`TlsConfig`].
    pub fn new(identity: Keypair) -> Self {
        Self::with_config(identity, TlsConfig::default())
    }

    /// TLS for `identity` with `config`.
    pub fn with_config(identity: Keypair, config: TlsConfig) -> Self {
        TlsUpgrade {
            identity,
            provider: config.provider(),
            config,
            cached: Mutex::new(None),
        }
    }

    /// Our own peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.identity.public().to_peer_id()
    }

    /// The configuration in use.
    pub fn config(&self) -> &TlsConfig {
        &self.config
    }

    /// Our certificate and signing key: the cached one while it is younger than the
    /// configured lifetime, otherwise a fresh one.
    fn certified_key(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        let lifetime = self.config.certificate_lifetime;
        if lifetime.is_zero() {
            return self.fresh_certified_key();
        }
        let now = Instant::now();
        if let Some((made, key)) = self.lock_cache().as_ref() {
            if now.saturating_duration_since(*made) < lifetime {
                return Ok(key.clone());
            }
        }
        let key = self.fresh_certified_key()?;
        *self.lock_cache() = Some((now, key.clone()));
        Ok(key)
    }

    /// The certificate cache (a poisoned lock still holds a usable value).
    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Arc<CertifiedKey>)>> {
        self.cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh certificate and its loaded signing key.
    fn fresh_certified_key(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        crate::rotation::certified_key(&self.identity, &self.provider)
    }

    /// The client configuration of one handshake.
    fn client_config(
        &self,
        verifier: Arc<Libp2pCertVerifier>,
        muxers: &[String],
    ) -> Result<ClientConfig, TlsError> {
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(self.certified_key()?)));
        config.enable_sni = false;
        config.alpn_protocols = alpn::client_protocols(muxers);
        // A resumed session would skip the certificate, and with it the peer's identity.
        config.resumption = Resumption::disabled();
        Ok(config)
    }

    /// The server configuration of one handshake, answering with `alpn_protocols`.
    fn server_config(
        &self,
        verifier: Arc<Libp2pCertVerifier>,
        alpn_protocols: Vec<Vec<u8>>,
    ) -> Result<ServerConfig, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(self.certified_key()?)));
        config.alpn_protocols = alpn_protocols;
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        Ok(config)
    }

    /// The dialer side, without the timeout.
    async fn outbound(
        &self,
        io: BoxedIo,
        expected: Option<PeerId>,
        muxers: &[String],
        budget: Budget,
    ) -> Result<SecuredConnection, SecurityError> {
        let mut memory = budget
            .reserve(HANDSHAKE_MEMORY, BUFFER_PRIORITY)
            .map_err(|e| denied("handshake buffers", e))?;
        let verifier = Arc::new(Libp2pCertVerifier::new(
            self.provider.signature_verification_algorithms,
            expected,
        ));
        let config = self
            .client_config(verifier.clone(), muxers)
            .map_err(local_failure)?;
        let server_name = ServerName::try_from(DUMMY_SERVER_NAME)
            .map_err(|e| local_failure(TlsError::Config(e.to_string())))?;
        let stream = TlsConnector::from(Arc::new(config))
            .connect(server_name, io)
            .await
            .map_err(classify_io)?;
        let muxer = alpn::muxer_from_alpn(stream.get_ref().1.alpn_protocol());
        memory
            .resize(CHANNEL_MEMORY, BUFFER_PRIORITY)
            .map_err(|e| denied("read buffers", e))?;
        let io = Box::new(Budgeted::new(stream, memory));
        secured(&verifier, io, muxer).ok_or_else(unverified)
    }

    /// The listener side, without the timeout.
    async fn inbound(
        &self,
        io: BoxedIo,
        muxers: &[String],
        budget: Budget,
    ) -> Result<SecuredConnection, SecurityError> {
        let mut memory = budget
            .reserve(HANDSHAKE_MEMORY, BUFFER_PRIORITY)
            .map_err(|e| denied("handshake buffers", e))?;
        let start = LazyConfigAcceptor::new(Acceptor::default(), io)
            .await
            .map_err(classify_io)?;
        let supported = alpn::server_protocols(muxers);
        let chosen = start
            .client_hello()
            .alpn()
            .and_then(|offered| alpn::choose(offered, &supported));
        // No match: offer our whole list, so rustls aborts with no_application_protocol.
        let answer = chosen.map_or(supported, |choice| vec![choice]);
        let verifier = Arc::new(Libp2pCertVerifier::new(
            self.provider.signature_verification_algorithms,
            None,
        ));
        let config = self
            .server_config(verifier.clone(), answer)
            .map_err(local_failure)?;
        let stream = start
            .into_stream(Arc::new(config))
            .await
            .map_err(classify_io)?;
        let muxer = alpn::muxer_from_alpn(stream.get_ref().1.alpn_protocol());
        memory
            .resize(CHANNEL_MEMORY, BUFFER_PRIORITY)
            .map_err(|e| denied("read buffers", e))?;
        let io = Box::new(Budgeted::new(stream, memory));
        secured(&verifier, io, muxer).ok_or_else(unverified)
    }

    /// Runs `handshake` under the configured timeout, logging the outcome.
    async fn timed(
        &self,
        handshake: impl Future<Output = Result<SecuredConnection, SecurityError>>,
    ) -> Result<SecuredConnection, SecurityError> {
        let limit = self.config.handshake_timeout;
        let result = match tokio::time::timeout(limit, handshake).await {
            Ok(result) => result,
            Err(_) => Err(SecurityError::Timeout(limit)),
        };
        match &result {
            Ok(secured) => {
                tracing::debug!(peer = %secured.remote_peer, muxer = ?secured.muxer, "TLS handshake done");
            }
            Err(error) => tracing::debug!(%error, "TLS handshake failed"),
        }
        result
    }
}

#[async_trait::async_trait]
impl SecurityUpgrade for TlsUpgrade {
    fn protocol_id(&self) -> &str {
        PROTOCOL_ID
    }

    async fn secure_outbound(
        &self,
        io: BoxedIo,
        expected: Option<PeerId>,
        muxers: &[String],
    ) -> Result<SecuredConnection, SecurityError> {
        self.secure_outbound_with_budget(io, expected, muxers, Budget::unlimited())
            .await
    }

    async fn secure_inbound(
        &self,
        io: BoxedIo,
        muxers: &[String],
    ) -> Result<SecuredConnection, SecurityError> {
        self.secure_inbound_with_budget(io, muxers, Budget::unlimited())
            .await
    }

    /// Reserves rustls's handshake buffers from `budget`, then keeps its record and
    /// plaintext buffers reserved for the channel's life (at [`BUFFER_PRIORITY`]).
    async fn secure_outbound_with_budget(
        &self,
        io: BoxedIo,
        expected: Option<PeerId>,
        muxers: &[String],
        budget: Budget,
    ) -> Result<SecuredConnection, SecurityError> {
        let span = tracing::debug_span!("tls_handshake", role = "client", expected = ?expected);
        self.timed(self.outbound(io, expected, muxers, budget))
            .instrument(span)
            .await
    }

    /// As [`secure_outbound_with_budget`](Self::secure_outbound_with_budget).
    async fn secure_inbound_with_budget(
        &self,
        io: BoxedIo,
        muxers: &[String],
        budget: Budget,
    ) -> Result<SecuredConnection, SecurityError> {
        let span = tracing::debug_span!("tls_handshake", role = "server");
        self.timed(self.inbound(io, muxers, budget))
            .instrument(span)
            .await
    }
}

/// The result of a handshake whose verifier proved the peer (`None` if it did not).
fn secured(
    verifier: &Libp2pCertVerifier,
    io: BoxedIo,
    muxer: Option<String>,
) -> Option<SecuredConnection> {
    let key = verifier.verified_key()?;
    Some(SecuredConnection {
        remote_peer: key.to_peer_id(),
        remote_public_key: key,
        io,
        muxer,
    })
}

/// The error for a handshake that completed without a verified peer certificate.
fn unverified() -> SecurityError {
    SecurityError::Authentication(Box::new(TlsError::UnverifiedPeer))
}

/// A local failure (our certificate or configuration), reported as a protocol error.
fn local_failure(error: TlsError) -> SecurityError {
    SecurityError::Protocol(Box::new(error))
}

/// Maps an I/O error from futures-rustls: rustls failures become typed errors.
fn classify_io(error: std::io::Error) -> SecurityError {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => classify_rustls(tls.clone()),
        None => SecurityError::Io(error),
    }
}

/// Maps a rustls error: our own [`TlsError`] carried inside, or a TLS-level failure.
pub(crate) fn classify_rustls(error: rustls::Error) -> SecurityError {
    use rustls::{AlertDescription as Alert, CertificateError, Error};
    if let Error::InvalidCertificate(CertificateError::Other(other)) = &error {
        if let Some(tls) = other.0.downcast_ref::<TlsError>() {
            return classify_tls(tls.clone());
        }
    }
    match error {
        Error::NoCertificatesPresented => {
            SecurityError::Authentication(Box::new(TlsError::NoCertificate))
        }
        Error::InvalidCertificate(_)
        | Error::AlertReceived(
            Alert::BadCertificate
            | Alert::CertificateRequired
            | Alert::CertificateUnknown
            | Alert::UnsupportedCertificate
            | Alert::CertificateExpired
            | Alert::DecryptError,
        ) => SecurityError::Authentication(Box::new(TlsError::Rustls(error))),
        other => SecurityError::Protocol(Box::new(TlsError::Rustls(other))),
    }
}

/// Maps one of our own check failures to the trait's error.
fn classify_tls(error: TlsError) -> SecurityError {
    match error {
        TlsError::PeerIdMismatch { expected, actual } => SecurityError::PeerIdMismatch {
            expected: *expected,
            actual: *actual,
        },
        error if error.is_authentication_failure() => {
            SecurityError::Authentication(Box::new(error))
        }
        error => SecurityError::Protocol(Box::new(error)),
    }
}
