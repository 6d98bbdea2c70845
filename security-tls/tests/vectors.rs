//! The libp2p TLS spec's certificate vectors and rust-libp2p's signature-scheme
//! certificates, parsed and verified with this crate's certificate code.

use rustls::pki_types::UnixTime;
use rustls::SignatureScheme;
use std::path::PathBuf;
use weft_security_tls::{verification_algorithms, Libp2pCertificate, TlsError};

fn vector(path: &str) -> Vec<u8> {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

#[test]
fn spec_vectors_one_to_three_verify_with_expected_peer_ids() {
    let expected = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/tls-spec/expected.tsv"),
    )
    .expect("expected.tsv");
    let mut checked = 0;
    for line in expected.lines().filter(|l| !l.starts_with('#')) {
        let mut fields = line.split('\t');
        let (Some(file), Some(_heading), Some(result)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let der = vector(&format!("tls-spec/{file}.der"));
        // The .hex twin holds the same bytes.
        let hex_text = String::from_utf8(vector(&format!("tls-spec/{file}.hex"))).expect("utf-8");
        assert_eq!(hex::decode(hex_text.trim()).expect("hex"), der, "{file}");

        let outcome = Libp2pCertificate::parse(&der).and_then(|cert| {
            cert.verify(UnixTime::now(), &verification_algorithms())?;
            Ok(cert.peer_id())
        });
        if result.starts_with("INVALID") {
            assert!(
                matches!(outcome, Err(TlsError::BadExtensionSignature)),
                "{file}: {outcome:?}"
            );
        } else {
            assert_eq!(outcome.expect(file).to_string(), result, "{file}");
        }
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[test]
fn spec_vectors_use_ecdsa_p256_sha256() {
    for file in ["1-ed25519-valid", "2-ecdsa-valid", "3-secp256k1-valid"] {
        let der = vector(&format!("tls-spec/{file}.der"));
        let cert = Libp2pCertificate::parse(&der).expect(file);
        assert_eq!(
            cert.signature_scheme().expect(file),
            SignatureScheme::ECDSA_NISTP256_SHA256
        );
    }
}

#[test]
fn tls_certs_parse_and_map_to_signature_schemes() {
    let cases = [
        ("ed25519", Some(SignatureScheme::ED25519)),
        ("ed448", Some(SignatureScheme::ED448)),
        (
            "nistp256_sha256",
            Some(SignatureScheme::ECDSA_NISTP256_SHA256),
        ),
        ("nistp384_sha256", None),
        (
            "nistp384_sha384",
            Some(SignatureScheme::ECDSA_NISTP384_SHA384),
        ),
        (
            "nistp521_sha512",
            Some(SignatureScheme::ECDSA_NISTP521_SHA512),
        ),
        // Named after its host key; the certificate itself is signed with Ed25519.
        ("pkcs1_sha256", Some(SignatureScheme::ED25519)),
        ("rsa_pkcs1_sha256", Some(SignatureScheme::RSA_PKCS1_SHA256)),
        ("rsa_pkcs1_sha384", Some(SignatureScheme::RSA_PKCS1_SHA384)),
        ("rsa_pkcs1_sha512", Some(SignatureScheme::RSA_PKCS1_SHA512)),
        ("rsa_pss_sha384", Some(SignatureScheme::RSA_PSS_SHA384)),
    ];
    for (file, scheme) in cases {
        let der = vector(&format!("tls-certs/{file}.der"));
        let cert = Libp2pCertificate::parse(&der).unwrap_or_else(|e| panic!("{file}: {e}"));
        match scheme {
            Some(scheme) => assert_eq!(cert.signature_scheme().expect(file), scheme, "{file}"),
            None => assert!(
                matches!(
                    cert.signature_scheme(),
                    Err(TlsError::UnsupportedSignatureScheme(_))
                ),
                "{file}"
            ),
        }
        // All but rsa_pss_sha384 expired in 2022. Note: the vectors INDEX says no
        // extension in this folder is validly signed, but rsa_pss_sha384's is (checked
        // independently with python-cryptography too), and it is valid until 2121.
        let verdict = cert.verify(UnixTime::now(), &verification_algorithms());
        if file == "rsa_pss_sha384" {
            assert!(verdict.is_ok(), "{file}: {verdict:?}");
        } else {
            assert!(verdict.is_err(), "{file} verified");
        }
    }
}

#[test]
fn tls_certs_fail_for_the_documented_reasons() {
    let expired = vector("tls-certs/nistp256_sha256.der");
    let cert = Libp2pCertificate::parse(&expired).expect("parses");
    assert!(matches!(
        cert.verify(UnixTime::now(), &verification_algorithms()),
        Err(TlsError::NotValidNow)
    ));
    // Inside its validity period its self-signature verifies and only the extension
    // signature fails.
    // 2021-12-15T20:26Z, within its one-month validity period.
    let in_2021 = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_639_600_000));
    assert!(matches!(
        cert.verify(in_2021, &verification_algorithms()),
        Err(TlsError::BadExtensionSignature)
    ));

    // The RSA-PSS one is still valid and fully verifies (its RSA-PSS self-signature
    // included); a flipped byte in its signature breaks the self-signature.
    let mut pss = vector("tls-certs/rsa_pss_sha384.der");
    let cert = Libp2pCertificate::parse(&pss).expect("parses");
    cert.verify(UnixTime::now(), &verification_algorithms())
        .expect("rsa_pss_sha384 verifies");
    let last = pss.len() - 1;
    pss[last] ^= 0x01;
    let cert = Libp2pCertificate::parse(&pss).expect("parses");
    assert!(matches!(
        cert.verify(UnixTime::now(), &verification_algorithms()),
        Err(TlsError::BadSelfSignature)
    ));

    // A P-384 key with SHA-256 is refused as a scheme before any signature check.
    let mismatched = vector("tls-certs/nistp384_sha256.der");
    let cert = Libp2pCertificate::parse(&mismatched).expect("parses");
    assert!(matches!(
        cert.verify(in_2021, &verification_algorithms()),
        Err(TlsError::UnsupportedSignatureScheme(_))
    ));
}
