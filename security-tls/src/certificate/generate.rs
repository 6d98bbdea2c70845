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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::Libp2pCertificate;
    use rustls::pki_types::UnixTime;
    use x509_parser::prelude::{FromDer, X509Certificate};

    #[test]
    fn the_libp2p_extension_comes_first_and_the_certificate_verifies() {
        for identity in [
            Keypair::generate_ed25519(),
            Keypair::generate_ecdsa(),
            Keypair::generate_secp256k1(),
        ] {
            let generated = generate_certificate(&identity).expect("generates");
            let (_, x509) = X509Certificate::from_der(&generated.certificate).expect("DER");
            let first = x509.extensions().first().expect("has extensions");
            assert_eq!(first.oid.to_id_string(), "1.3.6.1.4.1.53594.1.1");
            assert!(!first.critical);
            assert_eq!(x509.extensions().len(), 1);
            assert_eq!(
                x509.signature_algorithm.algorithm.to_id_string(),
                "1.2.840.10045.4.3.2" // ecdsa-with-SHA256
            );
            let validity = x509.validity();
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let before = validity.not_before.timestamp();
            assert!((now - 3600 - 5..=now - 3600 + 5).contains(&before));
            assert!(validity.not_after.timestamp() > now + 99 * 365 * 86400);

            let parsed = Libp2pCertificate::parse(&generated.certificate).expect("parses");
            parsed
                .verify(UnixTime::now(), &crate::verification_algorithms())
                .expect("verifies");
            assert_eq!(parsed.peer_id(), identity.public().to_peer_id());
        }
    }

    #[test]
    fn each_certificate_has_a_fresh_key() {
        let identity = Keypair::generate_ed25519();
        let a = generate_certificate(&identity).expect("a");
        let b = generate_certificate(&identity).expect("b");
        let spki = |der: &[u8]| {
            let (_, x509) = X509Certificate::from_der(der).expect("DER");
            x509.public_key().raw.to_vec()
        };
        assert_ne!(spki(&a.certificate), spki(&b.certificate));
    }
}
