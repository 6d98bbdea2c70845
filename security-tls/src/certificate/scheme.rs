//! Which TLS signature scheme a certificate's self-signature uses.
//!
//! libp2p accepts only certificates whose signature algorithm, together with the
//! certificate key, is one of the TLS 1.3 signature schemes (RFC 8446 §4.2.3): for
//! example ECDSA must pair P-256 with SHA-256, P-384 with SHA-384 and P-521 with
//! SHA-512, so a P-384 key signing with SHA-256 is rejected.

use crate::error::TlsError;
use rustls::SignatureScheme;
use x509_parser::oid_registry as oids;
use x509_parser::prelude::X509Certificate;
use x509_parser::signature_algorithm::SignatureAlgorithm;

/// The TLS signature scheme of the certificate's self-signature.
pub(crate) fn signature_scheme(cert: &X509Certificate<'_>) -> Result<SignatureScheme, TlsError> {
    let signature_oid = &cert.signature_algorithm.algorithm;
    let key_algorithm = &cert.public_key().algorithm;
    let unsupported = || TlsError::UnsupportedSignatureScheme(signature_oid.to_id_string());

    if key_algorithm.algorithm == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = key_algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or_else(unsupported)?;
        return if curve == oids::OID_EC_P256 && *signature_oid == oids::OID_SIG_ECDSA_WITH_SHA256 {
            Ok(SignatureScheme::ECDSA_NISTP256_SHA256)
        } else if curve == oids::OID_NIST_EC_P384
            && *signature_oid == oids::OID_SIG_ECDSA_WITH_SHA384
        {
            Ok(SignatureScheme::ECDSA_NISTP384_SHA384)
        } else if curve == oids::OID_NIST_EC_P521
            && *signature_oid == oids::OID_SIG_ECDSA_WITH_SHA512
        {
            Ok(SignatureScheme::ECDSA_NISTP521_SHA512)
        } else {
            Err(TlsError::UnsupportedSignatureScheme(format!(
                "{} with curve {}",
                signature_oid.to_id_string(),
                curve.to_id_string()
            )))
        };
    }
    if *signature_oid == oids::OID_SIG_ED25519 {
        return Ok(SignatureScheme::ED25519);
    }
    if *signature_oid == oids::OID_SIG_ED448 {
        return Ok(SignatureScheme::ED448);
    }
    if key_algorithm.algorithm == oids::OID_PKCS1_RSAENCRYPTION
        || key_algorithm.algorithm == oids::OID_PKCS1_RSASSAPSS
    {
        if *signature_oid == oids::OID_PKCS1_SHA256WITHRSA {
            return Ok(SignatureScheme::RSA_PKCS1_SHA256);
        }
        if *signature_oid == oids::OID_PKCS1_SHA384WITHRSA {
            return Ok(SignatureScheme::RSA_PKCS1_SHA384);
        }
        if *signature_oid == oids::OID_PKCS1_SHA512WITHRSA {
            return Ok(SignatureScheme::RSA_PKCS1_SHA512);
        }
        if *signature_oid == oids::OID_PKCS1_RSASSAPSS {
            if let Ok(SignatureAlgorithm::RSASSA_PSS(params)) =
                SignatureAlgorithm::try_from(&cert.signature_algorithm)
            {
                let hash = params.hash_algorithm_oid();
                if *hash == oids::OID_NIST_HASH_SHA256 {
                    return Ok(SignatureScheme::RSA_PSS_SHA256);
                }
                if *hash == oids::OID_NIST_HASH_SHA384 {
                    return Ok(SignatureScheme::RSA_PSS_SHA384);
                }
                if *hash == oids::OID_NIST_HASH_SHA512 {
                    return Ok(SignatureScheme::RSA_PSS_SHA512);
                }
            }
        }
    }
    Err(unsupported())
}
