//! Generating our own self-signed libp2p certificate.

use super::{signed_message, LIBP2P_EXTENSION_OID};
use crate::error::TlsError;
use crate::signed_key::SignedKey;
use libp2p_identity::Keypair;
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, PublicKeyData};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// How long before "now" a fresh certificate becomes valid (clock skew allowance).
const BACKDATE: Duration = Duration::hours(1);
/// How long a fresh certificate stays valid (go-libp2p uses 100 years).
const VALIDITY: Duration = Duration::days(100 * 365);

/// A freshly generated certificate and the private key of its (throw-away) key pair.
pub struct GeneratedCertificate {
    /// The self-signed DER certificate carrying the libp2p extension.
    pub certificate: CertificateDer<'static>,
    /// The certificate's private key (ECDSA P-256), PKCS#8 DER.
    pub private_key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for GeneratedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedCertificate")
            .field("certificate_len", &self.certificate.len())
            .finish_non_exhaustive()
    }
}

/// Generates a self-signed ECDSA P-256 / SHA-256 certificate for `identity`.
///
/// The certificate key is fresh and unrelated to the host key. The libp2p public key
/// extension (non-critical) is the certificate's first and only extension; it holds
/// the host public key and the host key's signature over `"libp2p-tls-handshake:"` ‖
/// the certificate's DER `SubjectPublicKeyInfo`. Validity: now − 1 h to now + 100
/// years.
pub fn generate_certificate(identity: &Keypair) -> Result<GeneratedCertificate, TlsError> {
    let generation_error = |e: rcgen::Error| TlsError::CertificateGeneration(e.to_string());
    let certificate_key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generation_error)?;

    let signature = identity
        .sign(&signed_message(&certificate_key.subject_public_key_info()))
        .map_err(|e| TlsError::CertificateGeneration(e.to_string()))?;
    let host_key = identity.public().encode_protobuf();
    let extension = SignedKey {
        public_key: &host_key,
        signature: &signature,
    }
    .encode();

    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.not_before = now - BACKDATE;
    params.not_after = now + VALIDITY;
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        LIBP2P_EXTENSION_OID,
        extension,
    )];
    let certificate = params
        .self_signed(&certificate_key)
        .map_err(generation_error)?;

    Ok(GeneratedCertificate {
        certificate: certificate.der().clone(),
        private_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certificate_key.serialize_der(),
        )),
    })
}
