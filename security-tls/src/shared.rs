//! rustls configurations shared by every connection of one identity, for transports
//! that run TLS inside themselves (QUIC), with TLS 1.3 session resumption.
//!
//! A QUIC endpoint keeps one client and one server configuration per identity:
//! rustls resumes a session only with the very verifier and certificate resolver
//! objects of the original one. The peer a dial expects is therefore not part of the
//! configuration; it travels in the server name the client passes to rustls
//! ([`SharedTlsConfigs::dial_name`]), which is never sent (SNI is off) but is handed
//! to the certificate verifier and to the session store. So a wrong peer fails
//! inside the handshake, before any stream opens, and the store files each ticket
//! under the peer id it was issued for (see [`DialName`]).
//!
//! The server keeps its sessions in memory (stateful tickets, each usable once) and
//! allows early data on them: rustls accepts 0-RTT only with stateful storage, whose
//! single-use tickets are the anti-replay within one process. The client allows
//! early data too; whether any is sent is up to the transport.
//!
//! The certificate is reused across connections (the spec allows it, and it saves a
//! key generation and two signatures per connection) and rotated inside the
//! configurations: both resolve it through one [`RotatingCertificate`], which swaps
//! in a fresh certificate of the same identity every rotation interval
//! ([`DEFAULT_CERTIFICATE_LIFETIME`] by default) without a new configuration, so
//! sessions resume across rotations.

use crate::alpn::LIBP2P_ALPN;
use crate::certificate::Libp2pCertificate;
use crate::config::DEFAULT_CERTIFICATE_LIFETIME;
use crate::error::TlsError;
use crate::provider::default_crypto_provider;
use crate::rotation::RotatingCertificate;
use crate::sessions::{server_name, DialName, PeerSessions, VerifiedClients, ANY_PEER};
use crate::verifier::Libp2pCertVerifier;
use libp2p_identity::{Keypair, PeerId, PublicKey};
use rustls::client::{Resumption, Tls12Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::ServerSessionMemoryCache;
use rustls::{ClientConfig, ServerConfig};
use std::sync::Arc;
use std::time::Duration;

/// The server name of a dial that expects no particular peer.
pub const ANY_PEER_SERVER_NAME: &str = ANY_PEER;

/// Sessions a server keeps for resumption (each a few hundred bytes plus the
/// client's certificate); beyond it the oldest are forgotten (their tickets then
/// get a full handshake).
pub const MAX_SERVER_SESSIONS: usize = 1024;

/// Tickets a server sends after each handshake.
pub const TICKETS_PER_HANDSHAKE: usize = 2;

/// A client and a server configuration of libp2p TLS for one identity, with ALPN
/// `"libp2p"` only (QUIC has its own streams: no muxer is negotiated).
///
/// Both require and verify exactly one peer certificate as [`Libp2pCertificate`]
/// describes; TLS 1.3 only; no SNI. Session resumption is on: the client keeps
/// tickets per remote peer id (in memory), the server keeps its sessions in memory
/// and issues [`TICKETS_PER_HANDSHAKE`] single-use tickets per handshake; both allow
/// early data (`max_early_data_size` is `u32::MAX`, as QUIC requires).
#[derive(Debug, Clone)]
pub struct SharedTlsConfigs {
    /// For dials: pass a [`DialName`] from [`SharedTlsConfigs::dial_name`] as the
    /// server name.
    pub client: Arc<ClientConfig>,
    /// For inbound connections.
    pub server: Arc<ServerConfig>,
    sessions: Arc<PeerSessions>,
    clients: Arc<VerifiedClients>,
    certificate: Arc<RotatingCertificate>,
}

impl SharedTlsConfigs {
    /// Generates a certificate for `identity` and builds both configurations around it;
    /// the certificate rotates every [`DEFAULT_CERTIFICATE_LIFETIME`].
    ///
    /// # Errors
    ///
    /// [`TlsError::CertificateGeneration`] or [`TlsError::Config`]: local failures.
    pub fn new(identity: &Keypair) -> Result<Self, TlsError> {
        Self::with_crypto_provider(identity, default_crypto_provider())
    }

    /// As [`SharedTlsConfigs::new`], with `provider` in place of
    /// [`default_crypto_provider`] (see [`TlsConfig::crypto_provider`]). A QUIC
    /// transport needs a provider with `TLS13_AES_128_GCM_SHA256` (QUIC's initial
    /// packets use it).
    ///
    /// # Errors
    ///
    /// [`TlsError::CertificateGeneration`] or [`TlsError::Config`] (also for a
    /// provider without a TLS 1.3 cipher suite): local failures.
    ///
    /// [`TlsConfig::crypto_provider`]: crate::TlsConfig::crypto_provider
    pub fn with_crypto_provider(
        identity: &Keypair,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        Self::with_rotation(identity, provider, DEFAULT_CERTIFICATE_LIFETIME)
    }

    /// As [`SharedTlsConfigs::with_crypto_provider`], with the certificate rotated
    /// every `interval` (`Duration::ZERO`: a fresh certificate for every handshake)
    /// in place of [`DEFAULT_CERTIFICATE_LIFETIME`].
    ///
    /// # Errors
    ///
    /// As [`SharedTlsConfigs::with_crypto_provider`].
    pub fn with_rotation(
        identity: &Keypair,
        provider: Arc<CryptoProvider>,
        interval: Duration,
    ) -> Result<Self, TlsError> {
        let certificate = Arc::new(RotatingCertificate::new(
            identity,
            provider.clone(),
            interval,
        )?);
        let algorithms = provider.signature_verification_algorithms;
        let sessions = Arc::new(PeerSessions::default());
        let clients = Arc::new(VerifiedClients::default());

        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Libp2pCertVerifier::from_server_name(
                algorithms,
                sessions.clone(),
            )))
            .with_client_cert_resolver(certificate.clone());
        client.enable_sni = false;
        client.alpn_protocols = vec![LIBP2P_ALPN.to_vec()];
        client.resumption =
            Resumption::store(sessions.clone()).tls12_resumption(Tls12Resumption::Disabled);
        client.enable_early_data = true;

        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(Arc::new(Libp2pCertVerifier::recording_clients(
                algorithms,
                clients.clone(),
            )))
            .with_cert_resolver(certificate.clone());
        server.alpn_protocols = vec![LIBP2P_ALPN.to_vec()];
        server.send_tls13_tickets = TICKETS_PER_HANDSHAKE;
        server.session_storage = ServerSessionMemoryCache::new(MAX_SERVER_SESSIONS);
        server.max_early_data_size = u32::MAX;

        Ok(SharedTlsConfigs {
            client: Arc::new(client),
            server: Arc::new(server),
            sessions,
            clients,
            certificate,
        })
    }

    /// The certificate both configurations present: [`RotatingCertificate::rotate`]
    /// replaces it at once, [`RotatingCertificate::certificate`] shows the current
    /// one.
    pub fn certificate(&self) -> &RotatingCertificate {
        &self.certificate
    }

    /// The server name of a new dial expecting `expected` (none: any peer, and no
    /// resumption), with a record of what the handshake did ([`DialName::resumed`]).
    pub fn dial_name(&self, expected: Option<PeerId>) -> DialName {
        self.sessions.dial_name(expected)
    }

    /// The host key a full handshake with `peer` proved, while the client keeps its
    /// entry: a dial that resumes a session of `peer` knows this key before the
    /// server answers.
    pub fn proven_key(&self, peer: &PeerId) -> Option<PublicKey> {
        self.sessions.key_of(peer)
    }

    /// For a listener: whether the connection whose client presented `chain` ran a
    /// full handshake (its certificate was verified, and this claims that record);
    /// false means the session was resumed. Ask once per connection, after the
    /// certificate is known; two connections of one client at the same moment, one
    /// full and one resumed, may be told apart the wrong way round.
    pub fn claim_full_handshake(&self, chain: &[CertificateDer<'_>]) -> bool {
        chain
            .first()
            .is_some_and(|certificate| self.clients.claim(certificate.as_ref()))
    }

    /// How many unused session tickets of `peer` the client holds.
    pub fn tickets(&self, peer: &PeerId) -> usize {
        self.sessions.tickets_of(peer)
    }
}

/// The server name a dial passes to rustls with a [`SharedTlsConfigs::client`]: it
/// carries the expected peer id (hex, in DNS labels under `peer.libp2p.invalid`), or
/// is [`ANY_PEER_SERVER_NAME`] when any peer will do. Prefer
/// [`SharedTlsConfigs::dial_name`], which also reports whether the dial resumed.
pub fn expected_peer_server_name(expected: Option<PeerId>) -> String {
    server_name(None, expected)
}

/// The host key a verified peer certificate chain carries (as a QUIC library reports
/// the chain after the handshake).
///
/// # Errors
///
/// [`TlsError::NoCertificate`], [`TlsError::TooManyCertificates`] or a parse error.
pub fn peer_public_key(chain: &[CertificateDer<'_>]) -> Result<PublicKey, TlsError> {
    match chain {
        [] => Err(TlsError::NoCertificate),
        [certificate] => Ok(Libp2pCertificate::parse(certificate)?.public_key().clone()),
        more => Err(TlsError::TooManyCertificates(more.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::parse_server_name;
    use rustls::pki_types::ServerName;

    fn expected_peer_from_server_name(name: &str) -> Result<Option<PeerId>, ()> {
        parse_server_name(name).map(|parsed| parsed.peer).ok_or(())
    }

    #[test]
    fn server_names_carry_the_expected_peer_and_are_valid_dns_names() {
        for key in [
            Keypair::generate_ed25519(),
            Keypair::generate_secp256k1(),
            Keypair::generate_ecdsa(),
        ] {
            let peer = key.public().to_peer_id();
            let name = expected_peer_server_name(Some(peer));
            ServerName::try_from(name.clone()).expect("a valid DNS name");
            assert_eq!(expected_peer_from_server_name(&name).unwrap(), Some(peer));
        }
        assert_eq!(expected_peer_server_name(None), ANY_PEER_SERVER_NAME);
        assert_eq!(
            expected_peer_from_server_name(ANY_PEER_SERVER_NAME).unwrap(),
            None
        );
        for bad in [
            "example.com",
            "zz.peer.libp2p.invalid",
            "00.peer.libp2p.invalid",
        ] {
            assert!(expected_peer_from_server_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_peer_key_comes_from_a_single_certificate() {
        let key = Keypair::generate_ed25519();
        let generated = crate::certificate::generate_certificate(&key).expect("generates");
        let chain = vec![generated.certificate];
        assert_eq!(peer_public_key(&chain).unwrap(), key.public());
        assert!(matches!(peer_public_key(&[]), Err(TlsError::NoCertificate)));
        let two = vec![chain[0].clone(), chain[0].clone()];
        assert!(matches!(
            peer_public_key(&two),
            Err(TlsError::TooManyCertificates(2))
        ));
        SharedTlsConfigs::new(&key).expect("configs build");
    }
}
