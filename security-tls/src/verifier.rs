//! The rustls certificate verifiers of libp2p TLS, one per handshake.
//!
//! Both sides use the same checks: exactly one certificate, then everything
//! [`Libp2pCertificate`] parses and verifies; the dialer also checks the expected
//! peer. Handshake signatures (CertificateVerify) are checked with rustls's own
//! `verify_tls13_signature_with_raw_key` against the certificate key. TLS 1.2
//! signatures are always refused.

use crate::certificate::Libp2pCertificate;
use crate::error::TlsError;
use crate::sessions::{parse_server_name, PeerSessions, VerifiedClients};
use libp2p_identity::{PeerId, PublicKey};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature_with_raw_key, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::{Arc, Mutex};

/// Verifies the peer's certificate for one handshake and remembers the proven key.
pub(crate) struct Libp2pCertVerifier {
    algorithms: WebPkiSupportedAlgorithms,
    expected: Option<PeerId>,
    /// Whether a server certificate is checked against the peer the server name
    /// carries (a configuration shared by many dials) instead of `expected`.
    expected_from_server_name: bool,
    /// The client's session store, told which key each peer's certificate proved.
    sessions: Option<Arc<PeerSessions>>,
    /// A listener's record of the client certificates verified in full handshakes.
    clients: Option<Arc<VerifiedClients>>,
    verified: Mutex<Option<PublicKey>>,
}

impl std::fmt::Debug for Libp2pCertVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Libp2pCertVerifier")
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl Libp2pCertVerifier {
    /// A verifier using `algorithms` that, if `expected` is set, accepts only that peer.
    pub(crate) fn new(algorithms: WebPkiSupportedAlgorithms, expected: Option<PeerId>) -> Self {
        Libp2pCertVerifier {
            algorithms,
            expected,
            expected_from_server_name: false,
            sessions: None,
            clients: None,
            verified: Mutex::new(None),
        }
    }

    /// A verifier for a client configuration shared by many dials: each server
    /// certificate must prove the peer that the dial's server name carries (see
    /// [`SharedTlsConfigs::dial_name`](crate::SharedTlsConfigs::dial_name)), and
    /// `sessions` learns the key each verified certificate proved for its dial.
    pub(crate) fn from_server_name(
        algorithms: WebPkiSupportedAlgorithms,
        sessions: Arc<PeerSessions>,
    ) -> Self {
        Libp2pCertVerifier {
            expected_from_server_name: true,
            sessions: Some(sessions),
            ..Self::new(algorithms, None)
        }
    }

    /// A verifier of client certificates for a server configuration shared by many
    /// connections, recording each certificate it accepts in `clients`.
    pub(crate) fn recording_clients(
        algorithms: WebPkiSupportedAlgorithms,
        clients: Arc<VerifiedClients>,
    ) -> Self {
        Libp2pCertVerifier {
            clients: Some(clients),
            ..Self::new(algorithms, None)
        }
    }

    /// The host key the peer's certificate proved, once the certificate was verified.
    pub(crate) fn verified_key(&self) -> Option<PublicKey> {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// All the certificate checks; stores the proven host key.
    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        expected: Option<PeerId>,
    ) -> Result<PublicKey, TlsError> {
        if !intermediates.is_empty() {
            return Err(TlsError::TooManyCertificates(intermediates.len() + 1));
        }
        let certificate = Libp2pCertificate::parse(end_entity)?;
        certificate.verify(now, &self.algorithms)?;
        let actual = certificate.peer_id();
        if let Some(expected) = expected {
            if expected != actual {
                return Err(TlsError::PeerIdMismatch {
                    expected: Box::new(expected),
                    actual: Box::new(actual),
                });
            }
        }
        *self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(certificate.public_key().clone());
        tracing::debug!(peer = %actual, "peer certificate verified");
        Ok(certificate.public_key().clone())
    }

    /// Checks a TLS 1.3 CertificateVerify signature against the certificate key.
    fn verify_handshake_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let certificate = Libp2pCertificate::parse(cert).map_err(TlsError::into_rustls)?;
        let spki = SubjectPublicKeyInfoDer::from(certificate.spki_der());
        verify_tls13_signature_with_raw_key(message, &spki, dss, &self.algorithms)
            .map_err(|e| TlsError::HandshakeSignature(e).into_rustls())
    }

    /// The TLS 1.3 signature schemes we accept for handshake signatures.
    fn schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms
            .supported_schemes()
            .into_iter()
            .filter(|scheme| is_tls13_scheme(*scheme))
            .collect()
    }
}

impl ServerCertVerifier for Libp2pCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.expected_from_server_name {
            self.verify_chain(end_entity, intermediates, now, self.expected)
                .map_err(TlsError::into_rustls)?;
            return Ok(ServerCertVerified::assertion());
        }
        let name = server_name.to_str();
        let parsed = parse_server_name(&name).ok_or_else(|| {
            TlsError::Config(format!("server name {name:?} names no peer")).into_rustls()
        })?;
        let key = self
            .verify_chain(end_entity, intermediates, now, parsed.peer)
            .map_err(TlsError::into_rustls)?;
        if let Some(sessions) = &self.sessions {
            sessions.certificate_verified(&parsed, &key);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(TlsError::VersionNotAllowed.into_rustls())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_handshake_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ClientCertVerifier for Libp2pCertVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verify_chain(end_entity, intermediates, now, self.expected)
            .map_err(TlsError::into_rustls)?;
        if let Some(clients) = &self.clients {
            clients.verified(end_entity.as_ref());
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(TlsError::VersionNotAllowed.into_rustls())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_handshake_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

/// Whether `scheme` may sign TLS 1.3 handshakes (RFC 8446 §4.2.3: no PKCS#1 v1.5, no SHA-1).
fn is_tls13_scheme(scheme: SignatureScheme) -> bool {
    matches!(
        scheme,
        SignatureScheme::ECDSA_NISTP256_SHA256
            | SignatureScheme::ECDSA_NISTP384_SHA384
            | SignatureScheme::ECDSA_NISTP521_SHA512
            | SignatureScheme::ED25519
            | SignatureScheme::ED448
            | SignatureScheme::RSA_PSS_SHA256
            | SignatureScheme::RSA_PSS_SHA384
            | SignatureScheme::RSA_PSS_SHA512
    )
}
