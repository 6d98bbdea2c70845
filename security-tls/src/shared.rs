//! rustls configurations shared by every connection of one identity, for transports
//! that run TLS inside themselves (QUIC).
//!
//! A QUIC endpoint keeps one client and one server configuration per identity (the
//! precondition for session resumption later: rustls keys its ticket cache by the
//! server name of a configuration it keeps). The peer a dial expects is therefore
//! not part of the configuration; it travels in the server name the client passes to
//! rustls ([`expected_peer_server_name`]), which is never sent (SNI is off) but is
//! handed to the certificate verifier. So a wrong peer fails inside the handshake,
//! before any stream opens, and a ticket cache keyed by server name holds the
//! tickets of one peer id per entry.
//!
//! The certificate is generated once per configuration pair: the spec allows its
//! reuse, and it saves a key generation and two signatures per connection.

use crate::alpn::LIBP2P_ALPN;
use crate::certificate::{generate_certificate, Libp2pCertificate};
use crate::error::TlsError;
use crate::provider::libp2p_provider;
use crate::verifier::Libp2pCertVerifier;
use libp2p_identity::{Keypair, PeerId, PublicKey};
use rustls::client::Resumption;
use rustls::pki_types::CertificateDer;
use rustls::server::NoServerSessionStorage;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, ServerConfig};
use std::sync::Arc;

/// The server name of a dial that expects no particular peer.
pub const ANY_PEER_SERVER_NAME: &str = "libp2p.invalid";

/// The suffix of a server name that names the expected peer.
const PEER_SERVER_NAME_SUFFIX: &str = ".peer.libp2p.invalid";

/// The longest DNS label we emit (the limit is 63).
const LABEL_LEN: usize = 60;

/// A client and a server configuration of libp2p TLS for one identity, with ALPN
/// `"libp2p"` only (QUIC has its own streams: no muxer is negotiated).
///
/// Both require and verify exactly one peer certificate as [`Libp2pCertificate`]
/// describes; TLS 1.3 only; no SNI; session resumption off for now (no tickets
/// sent, none stored).
#[derive(Debug, Clone)]
pub struct SharedTlsConfigs {
    /// For dials: pass [`expected_peer_server_name`] as the server name.
    pub client: Arc<ClientConfig>,
    /// For inbound connections.
    pub server: Arc<ServerConfig>,
}

impl SharedTlsConfigs {
    /// Generates a certificate for `identity` and builds both configurations around it.
    ///
    /// # Errors
    ///
    /// [`TlsError::CertificateGeneration`] or [`TlsError::Config`]: local failures.
    pub fn new(identity: &Keypair) -> Result<Self, TlsError> {
        let provider = libp2p_provider();
        let generated = generate_certificate(identity)?;
        let key = provider
            .key_provider
            .load_private_key(generated.private_key)
            .map_err(|e| TlsError::CertificateGeneration(e.to_string()))?;
        let certified = Arc::new(CertifiedKey::new(vec![generated.certificate], key));
        let algorithms = provider.signature_verification_algorithms;

        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Libp2pCertVerifier::from_server_name(
                algorithms,
            )))
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified.clone())));
        client.enable_sni = false;
        client.alpn_protocols = vec![LIBP2P_ALPN.to_vec()];
        client.resumption = Resumption::disabled();

        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(Arc::new(Libp2pCertVerifier::new(algorithms, None)))
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        server.alpn_protocols = vec![LIBP2P_ALPN.to_vec()];
        server.send_tls13_tickets = 0;
        server.session_storage = Arc::new(NoServerSessionStorage {});

        Ok(SharedTlsConfigs {
            client: Arc::new(client),
            server: Arc::new(server),
        })
    }
}

/// The server name a dial passes to rustls with a [`SharedTlsConfigs::client`]: it
/// carries the expected peer id (hex, in DNS labels under `peer.libp2p.invalid`), or
/// is [`ANY_PEER_SERVER_NAME`] when any peer will do.
pub fn expected_peer_server_name(expected: Option<PeerId>) -> String {
    let Some(peer) = expected else {
        return ANY_PEER_SERVER_NAME.to_string();
    };
    let hex = hex::encode(peer.to_bytes());
    let labels: Vec<&str> = hex
        .as_bytes()
        .chunks(LABEL_LEN)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    format!("{}{PEER_SERVER_NAME_SUFFIX}", labels.join("."))
}

/// The peer a server name from [`expected_peer_server_name`] expects: `Ok(None)` for
/// [`ANY_PEER_SERVER_NAME`].
///
/// # Errors
///
/// [`TlsError::Config`] for any other name: a verifier fails closed on it.
pub(crate) fn expected_peer_from_server_name(name: &str) -> Result<Option<PeerId>, TlsError> {
    if name == ANY_PEER_SERVER_NAME {
        return Ok(None);
    }
    let bad = || TlsError::Config(format!("server name {name:?} names no peer"));
    let labels = name.strip_suffix(PEER_SERVER_NAME_SUFFIX).ok_or_else(bad)?;
    let bytes = hex::decode(labels.replace('.', "")).map_err(|_| bad())?;
    PeerId::from_bytes(&bytes).map(Some).map_err(|_| bad())
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
    use rustls::pki_types::ServerName;

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
        let generated = generate_certificate(&key).expect("generates");
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
