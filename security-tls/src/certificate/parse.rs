//! Parsing and verifying a peer's libp2p certificate.

use super::scheme::signature_scheme;
use super::signed_message;
use crate::error::TlsError;
use crate::signed_key::SignedKey;
use libp2p_identity::{PeerId, PublicKey};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::UnixTime;
use rustls::SignatureScheme;
use x509_parser::prelude::{ASN1Time, FromDer, X509Certificate};

/// The DER contents of the libp2p extension OID 1.3.6.1.4.1.53594.1.1.
const LIBP2P_OID_DER: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xa2, 0x5a, 0x01, 0x01];

/// A parsed libp2p certificate: the X.509 structure plus the host identity carried in
/// its libp2p public key extension.
///
/// [`parse`](Self::parse) checks the structure (one libp2p extension, no unknown
/// critical extension, a decodable host key); [`verify`](Self::verify) checks the
/// validity period, the self-signature and the extension signature.
pub struct Libp2pCertificate<'a> {
    x509: X509Certificate<'a>,
    host_key: PublicKey,
    extension_signature: &'a [u8],
}

impl std::fmt::Debug for Libp2pCertificate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Libp2pCertificate")
            .field("peer_id", &self.peer_id())
            .finish_non_exhaustive()
    }
}

impl<'a> Libp2pCertificate<'a> {
    /// Parses a DER certificate and its libp2p extension.
    ///
    /// Fails if the DER is malformed, if the libp2p extension is missing or present
    /// more than once (it is accepted at any position, critical or not), if another
    /// extension is critical and not understood, if a deprecated unique identifier is
    /// present, or if the host key does not decode.
    pub fn parse(der: &'a [u8]) -> Result<Self, TlsError> {
        let (rest, x509) = X509Certificate::from_der(der)
            .map_err(|e| TlsError::MalformedCertificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(TlsError::MalformedCertificate(
                "trailing bytes after the certificate".into(),
            ));
        }
        if x509.tbs_certificate.issuer_uid.is_some() || x509.tbs_certificate.subject_uid.is_some() {
            return Err(TlsError::UniqueIdentifierPresent);
        }

        let mut libp2p_extension = None;
        for extension in x509.extensions() {
            if extension.oid.as_bytes() == LIBP2P_OID_DER {
                if libp2p_extension.is_some() {
                    return Err(TlsError::DuplicateExtension);
                }
                libp2p_extension = Some(extension.value);
            } else if extension.critical {
                let parsed = extension.parsed_extension();
                if parsed.unsupported() || parsed.error().is_some() {
                    return Err(TlsError::UnknownCriticalExtension(
                        extension.oid.to_id_string(),
                    ));
                }
            }
        }
        let extension = libp2p_extension.ok_or(TlsError::MissingExtension)?;
        let signed_key = SignedKey::decode(extension)?;
        let host_key = PublicKey::try_decode_protobuf(signed_key.public_key)
            .map_err(|e| TlsError::InvalidHostKey(e.to_string()))?;
        Ok(Libp2pCertificate {
            x509,
            host_key,
            extension_signature: signed_key.signature,
        })
    }

    /// The peer this certificate claims to be (proven only after [`verify`](Self::verify)).
    pub fn peer_id(&self) -> PeerId {
        self.host_key.to_peer_id()
    }

    /// The host public key from the libp2p extension.
    pub fn public_key(&self) -> &PublicKey {
        &self.host_key
    }

    /// The DER `SubjectPublicKeyInfo` of the certificate key.
    pub fn spki_der(&self) -> &[u8] {
        self.x509.public_key().raw
    }

    /// The TLS 1.3 signature scheme of the certificate's self-signature, or
    /// [`TlsError::UnsupportedSignatureScheme`] (for example a P-384 key with SHA-256).
    pub fn signature_scheme(&self) -> Result<SignatureScheme, TlsError> {
        signature_scheme(&self.x509)
    }

    /// Verifies the certificate at time `now`: the validity period, the self-signature
    /// (with `algorithms`, normally the crypto provider's) and the libp2p extension
    /// signature by the host key.
    pub fn verify(
        &self,
        now: UnixTime,
        algorithms: &WebPkiSupportedAlgorithms,
    ) -> Result<(), TlsError> {
        let seconds = i64::try_from(now.as_secs()).map_err(|_| TlsError::NotValidNow)?;
        let now = ASN1Time::from_timestamp(seconds).map_err(|_| TlsError::NotValidNow)?;
        if !self.x509.validity().is_valid_at(now) {
            return Err(TlsError::NotValidNow);
        }
        self.verify_self_signature(algorithms)?;
        if !self
            .host_key
            .verify(&signed_message(self.spki_der()), self.extension_signature)
        {
            return Err(TlsError::BadExtensionSignature);
        }
        Ok(())
    }

    /// Verifies the certificate's self-signature with the algorithms of its scheme.
    fn verify_self_signature(
        &self,
        algorithms: &WebPkiSupportedAlgorithms,
    ) -> Result<(), TlsError> {
        let scheme = self.signature_scheme()?;
        let candidates = algorithms
            .mapping
            .iter()
            .find(|(supported, _)| *supported == scheme)
            .map(|(_, candidates)| *candidates)
            .ok_or_else(|| TlsError::UnsupportedSignatureScheme(format!("{scheme:?}")))?;
        let key = &self.x509.public_key().subject_public_key.data;
        let message = self.x509.tbs_certificate.as_ref();
        let signature = &self.x509.signature_value.data;
        // The scheme fixes the hash; each candidate fixes the key type, so at most the
        // one matching the certificate key can succeed.
        if candidates
            .iter()
            .any(|algorithm| algorithm.verify_signature(key, message, signature).is_ok())
        {
            Ok(())
        } else {
            Err(TlsError::BadSelfSignature)
        }
    }
}
