//! Helpers shared by the integration tests: TCP pairs, crafted certificates, raw
//! rustls peers and checksummed bulk transfers.
#![allow(dead_code)]

use futures::io::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::Keypair;
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, PublicKeyData, SanType};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::error::Error as _;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};
use weft_security_tls::{SignedKey, TlsError};
use weft_upgrader::{BoxedIo, SecurityError};

/// The libp2p extension OID.
pub const LIBP2P_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 53594, 1, 1];

/// A connected pair of TCP streams on 127.0.0.1: (dialer, listener).
pub async fn tcp_pair() -> (Compat<TcpStream>, Compat<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialer, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let dialer = dialer.unwrap();
    let (listener_side, _) = accepted.unwrap();
    dialer.set_nodelay(true).unwrap();
    listener_side.set_nodelay(true).unwrap();
    (dialer.compat(), listener_side.compat())
}

/// The same pair, boxed for the weft traits.
pub async fn boxed_pair() -> (BoxedIo, BoxedIo) {
    let (a, b) = tcp_pair().await;
    (Box::new(a), Box::new(b))
}

/// The detailed [`TlsError`] inside a [`SecurityError`], if any.
pub fn tls_error(error: &SecurityError) -> Option<&TlsError> {
    error.source().and_then(|e| e.downcast_ref::<TlsError>())
}

/// What to get wrong in a crafted certificate.
#[derive(Default, Clone, Copy)]
pub struct Craft {
    /// How many libp2p extensions to include (1 is correct).
    pub extensions: usize,
    /// Sign the wrong message with the host key.
    pub bad_signature: bool,
    /// Validity entirely in the past.
    pub expired: bool,
    /// Add an unknown critical extension.
    pub unknown_critical: bool,
    /// Put a subjectAltName before the libp2p extension.
    pub extension_not_first: bool,
}

impl Craft {
    /// A correct certificate.
    pub fn valid() -> Self {
        Craft {
            extensions: 1,
            ..Craft::default()
        }
    }
}

/// A certificate for `identity`, crafted as `craft` says, and its private key.
pub fn craft_certificate(
    identity: &Keypair,
    craft: Craft,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut message = b"libp2p-tls-handshake:".to_vec();
    message.extend_from_slice(&key.subject_public_key_info());
    if craft.bad_signature {
        message.push(0);
    }
    let signature = identity.sign(&message).unwrap();
    let host_key = identity.public().encode_protobuf();
    let content = SignedKey {
        public_key: &host_key,
        signature: &signature,
    }
    .encode();

    let now = time::OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if craft.expired {
        params.not_before = now - time::Duration::days(30);
        params.not_after = now - time::Duration::days(1);
    } else {
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(365);
    }
    if craft.extension_not_first {
        params.subject_alt_names = vec![SanType::DnsName("peer.example".try_into().unwrap())];
    }
    for _ in 0..craft.extensions {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                LIBP2P_OID,
                content.clone(),
            ));
    }
    if craft.unknown_critical {
        let mut extension = CustomExtension::from_oid_content(&[1, 2, 3, 4, 5], vec![0x05, 0x00]);
        extension.set_criticality(true);
        params.custom_extensions.push(extension);
    }
    let cert = params.self_signed(&key).unwrap();
    (
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// A server certificate verifier that accepts anything (for rogue test clients).
#[derive(Debug)]
pub struct AcceptAnything;

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A raw rustls client presenting `chain` (or no certificate when `None`).
pub fn rogue_client(
    chain: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything));
    let mut config = match chain {
        // A resolver, not `with_client_auth_cert`, so rustls does not vet our
        // deliberately broken certificates before sending them.
        Some((certs, key)) => {
            let key = provider.key_provider.load_private_key(key).unwrap();
            let certified = rustls::sign::CertifiedKey::new(certs, key);
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                certified,
            )))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"libp2p".to_vec()];
    config
}

/// Runs a rogue rustls client over `io` and drives it a little after the handshake
/// (TLS 1.3 clients finish before the server has checked their certificate).
pub async fn run_rogue_client(config: rustls::ClientConfig, io: BoxedIo) {
    let connector = futures_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("libp2p.invalid").unwrap();
    if let Ok(mut stream) = connector.connect(name, io).await {
        let _ = stream.write_all(b"hello").await;
        let _ = stream.flush().await;
        // Give the server time to reject us (its alert arrives here); on success the
        // server keeps the connection open, so do not wait for EOF.
        let mut buf = [0u8; 16];
        let _ = tokio::time::timeout(std::time::Duration::from_millis(300), stream.read(&mut buf))
            .await;
    }
}

/// A deterministic pseudo-random buffer (xorshift64*), fast in debug builds.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// Writes `data` (then closes) while reading everything the other side sends; returns
/// the SHA-256 of what was read.
pub async fn exchange<S>(stream: S, data: &[u8]) -> Vec<u8>
where
    S: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = stream.split();
    let write = async {
        for chunk in data.chunks(256 * 1024) {
            writer.write_all(chunk).await.unwrap();
        }
        writer.close().await.unwrap();
    };
    let read = async {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            context.update(&buf[..n]);
        }
        context.finish().as_ref().to_vec()
    };
    let ((), digest) = futures::join!(write, read);
    digest
}
