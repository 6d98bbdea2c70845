//! weft TLS against itself and against hostile peers, over real TCP on 127.0.0.1:
//! ALPN muxer agreement, expected-peer checks, tampered certificates and handshakes.

mod common;

use common::*;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::{Keypair, PeerId};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use weft_security_tls::{TlsConfig, TlsError, TlsUpgrade};
use weft_upgrader::{SecuredConnection, SecurityError, SecurityUpgrade};

fn muxers(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn upgrade(identity: &Keypair) -> TlsUpgrade {
    TlsUpgrade::with_config(
        identity.clone(),
        TlsConfig::default().with_handshake_timeout(Duration::from_secs(5)),
    )
}

async fn weft_pair(
    client_muxers: &[String],
    server_muxers: &[String],
    expected: Option<PeerId>,
) -> (
    Result<SecuredConnection, SecurityError>,
    Result<SecuredConnection, SecurityError>,
    Keypair,
    Keypair,
) {
    let client_key = Keypair::generate_ed25519();
    let server_key = Keypair::generate_ecdsa();
    let (client_io, server_io) = boxed_pair().await;
    let client = upgrade(&client_key);
    let server = upgrade(&server_key);
    let expected = expected.or(Some(server_key.public().to_peer_id()));
    let (c, s) = tokio::join!(
        client.secure_outbound(client_io, expected, client_muxers),
        server.secure_inbound(server_io, server_muxers),
    );
    (c, s, client_key, server_key)
}

#[tokio::test]
async fn weft_to_weft_proves_both_peers_and_carries_data() {
    let (client, server, client_key, server_key) =
        weft_pair(&muxers(&["/yamux/1.0.0"]), &muxers(&["/yamux/1.0.0"]), None).await;
    let mut client = client.expect("client handshake");
    let mut server = server.expect("server handshake");
    assert_eq!(client.remote_peer, server_key.public().to_peer_id());
    assert_eq!(client.remote_public_key, server_key.public());
    assert_eq!(server.remote_peer, client_key.public().to_peer_id());
    assert_eq!(client.muxer.as_deref(), Some("/yamux/1.0.0"));
    assert_eq!(server.muxer.as_deref(), Some("/yamux/1.0.0"));

    client.io.write_all(b"ping").await.unwrap();
    client.io.flush().await.unwrap();
    let mut buf = [0u8; 4];
    server.io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    // close() sends close_notify: the other side reads a clean EOF.
    server.io.close().await.unwrap();
    assert_eq!(client.io.read(&mut buf).await.unwrap(), 0);
}

#[tokio::test]
async fn alpn_follows_the_clients_preference() {
    let (c, s, _, _) = weft_pair(
        &muxers(&["/mplex/6.7.0", "/yamux/1.0.0"]),
        &muxers(&["/yamux/1.0.0", "/mplex/6.7.0"]),
        None,
    )
    .await;
    assert_eq!(c.unwrap().muxer.as_deref(), Some("/mplex/6.7.0"));
    assert_eq!(s.unwrap().muxer.as_deref(), Some("/mplex/6.7.0"));

    let (c, s, _, _) = weft_pair(
        &muxers(&["/mplex/6.7.0", "/yamux/1.0.0"]),
        &muxers(&["/yamux/1.0.0"]),
        None,
    )
    .await;
    assert_eq!(c.unwrap().muxer.as_deref(), Some("/yamux/1.0.0"));
    assert_eq!(s.unwrap().muxer.as_deref(), Some("/yamux/1.0.0"));
}

#[tokio::test]
async fn no_muxer_when_either_side_offers_none_or_no_overlap() {
    for (client, server) in [
        (muxers(&[]), muxers(&["/yamux/1.0.0"])),
        (muxers(&["/yamux/1.0.0"]), muxers(&[])),
        (muxers(&[]), muxers(&[])),
        (muxers(&["/mplex/6.7.0"]), muxers(&["/yamux/1.0.0"])),
    ] {
        let (c, s, _, _) = weft_pair(&client, &server, None).await;
        assert_eq!(c.expect("client").muxer, None, "{client:?} / {server:?}");
        assert_eq!(s.expect("server").muxer, None, "{client:?} / {server:?}");
    }
}

#[tokio::test]
async fn wrong_expected_peer_is_a_peer_id_mismatch() {
    let stranger = Keypair::generate_ed25519().public().to_peer_id();
    let (client, server, _, server_key) = weft_pair(&[], &[], Some(stranger)).await;
    match client {
        Err(SecurityError::PeerIdMismatch { expected, actual }) => {
            assert_eq!(expected, stranger);
            assert_eq!(actual, server_key.public().to_peer_id());
        }
        other => panic!("expected PeerIdMismatch, got {other:?}"),
    }
    // The client aborted with an alert, so the server fails too.
    let error = server.expect_err("server must fail");
    assert!(!matches!(error, SecurityError::Timeout(_)), "{error:?}");
}

/// A rogue client presents `chain`; returns what our server concluded.
async fn server_verdict(
    chain: Option<(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
) -> Result<SecuredConnection, SecurityError> {
    let (client_io, server_io) = boxed_pair().await;
    let server = upgrade(&Keypair::generate_ed25519());
    let config = rogue_client(chain, &[&rustls::version::TLS13]);
    let (_, verdict) = tokio::join!(
        run_rogue_client(config, client_io),
        server.secure_inbound(server_io, &[]),
    );
    verdict
}

fn single(
    craft: Craft,
    identity: &Keypair,
) -> Option<(
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
)> {
    let (cert, key) = craft_certificate(identity, craft);
    Some((vec![cert], key))
}

fn assert_auth_failure(
    verdict: Result<SecuredConnection, SecurityError>,
    check: impl Fn(&TlsError) -> bool,
    what: &str,
) {
    let error = verdict.expect_err(what);
    assert!(
        matches!(error, SecurityError::Authentication(_)),
        "{what}: {error:?}"
    );
    let detail = tls_error(&error).unwrap_or_else(|| panic!("{what}: no TlsError in {error:?}"));
    assert!(check(detail), "{what}: {detail:?}");
}

#[tokio::test]
async fn a_crafted_valid_certificate_is_accepted_even_with_the_extension_not_first() {
    let identity = Keypair::generate_secp256k1();
    for craft in [
        Craft::valid(),
        Craft {
            extension_not_first: true,
            ..Craft::valid()
        },
    ] {
        let verdict = server_verdict(single(craft, &identity)).await;
        assert_eq!(
            verdict.expect("accepted").remote_peer,
            identity.public().to_peer_id()
        );
    }
}

#[tokio::test]
async fn tampered_certificates_are_rejected_with_typed_errors() {
    let identity = Keypair::generate_ed25519();
    assert_auth_failure(
        server_verdict(single(Craft::default(), &identity)).await,
        |e| matches!(e, TlsError::MissingExtension),
        "no extension",
    );
    assert_auth_failure(
        server_verdict(single(
            Craft {
                extensions: 2,
                ..Craft::default()
            },
            &identity,
        ))
        .await,
        |e| matches!(e, TlsError::DuplicateExtension),
        "extension twice",
    );
    assert_auth_failure(
        server_verdict(single(
            Craft {
                bad_signature: true,
                ..Craft::valid()
            },
            &identity,
        ))
        .await,
        |e| matches!(e, TlsError::BadExtensionSignature),
        "bad extension signature",
    );
    assert_auth_failure(
        server_verdict(single(
            Craft {
                expired: true,
                ..Craft::valid()
            },
            &identity,
        ))
        .await,
        |e| matches!(e, TlsError::NotValidNow),
        "expired",
    );
    assert_auth_failure(
        server_verdict(single(
            Craft {
                unknown_critical: true,
                ..Craft::valid()
            },
            &identity,
        ))
        .await,
        |e| matches!(e, TlsError::UnknownCriticalExtension(oid) if oid == "1.2.3.4.5"),
        "unknown critical extension",
    );
    let (first, key) = craft_certificate(&identity, Craft::valid());
    let (second, _) = craft_certificate(&identity, Craft::valid());
    assert_auth_failure(
        server_verdict(Some((vec![first, second], key))).await,
        |e| matches!(e, TlsError::TooManyCertificates(2)),
        "two certificates",
    );
    assert_auth_failure(
        server_verdict(None).await,
        |e| matches!(e, TlsError::NoCertificate),
        "no client certificate",
    );
}

#[tokio::test]
async fn a_tls12_only_client_is_rejected() {
    let (client_io, server_io) = boxed_pair().await;
    let server = upgrade(&Keypair::generate_ed25519());
    let identity = Keypair::generate_ed25519();
    let config = rogue_client(
        single(Craft::valid(), &identity),
        &[&rustls::version::TLS12],
    );
    let (_, verdict) = tokio::join!(
        run_rogue_client(config, client_io),
        server.secure_inbound(server_io, &[]),
    );
    let error = verdict.expect_err("TLS 1.2 must fail");
    assert!(matches!(error, SecurityError::Protocol(_)), "{error:?}");
    assert!(
        matches!(
            tls_error(&error),
            Some(TlsError::Rustls(rustls::Error::PeerIncompatible(_)))
        ),
        "{error:?}"
    );
}

/// Relays bytes between two sockets, flipping one bit of the `flip_at`-th byte the
/// server sends (0-based).
async fn flipping_proxy(
    client_side: tokio::net::TcpStream,
    server_side: tokio::net::TcpStream,
    flip_at: usize,
) {
    let (mut client_read, mut client_write) = client_side.into_split();
    let (mut server_read, mut server_write) = server_side.into_split();
    let upstream = async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let downstream = async move {
        let mut seen = 0usize;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if (seen..seen + n).contains(&flip_at) {
                buf[flip_at - seen] ^= 0x01;
            }
            seen += n;
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

#[tokio::test]
async fn a_flipped_byte_in_the_handshake_fails_both_sides_without_hanging() {
    // Offsets in the ServerHello record header and body, and in the encrypted
    // extensions/certificate flight.
    for flip_at in [5usize, 60, 200, 400] {
        let (client_io, proxy_client) = tcp_pair().await;
        let (proxy_server, server_io) = tcp_pair().await;
        let client = upgrade(&Keypair::generate_ed25519());
        let server = upgrade(&Keypair::generate_ed25519());
        let started = std::time::Instant::now();
        tokio::spawn(flipping_proxy(
            proxy_client.into_inner(),
            proxy_server.into_inner(),
            flip_at,
        ));
        let (c, s) = tokio::join!(
            client.secure_outbound(Box::new(client_io), None, &[]),
            server.secure_inbound(Box::new(server_io), &[]),
        );
        let c = c.expect_err("client must fail");
        assert!(
            matches!(
                c,
                SecurityError::Protocol(_) | SecurityError::Authentication(_)
            ),
            "flip at {flip_at}: client {c:?}"
        );
        let s = s.expect_err("server must fail");
        assert!(
            !matches!(s, SecurityError::Timeout(_)),
            "flip at {flip_at}: server {s:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "flip at {flip_at} was slow"
        );
    }
}

#[tokio::test]
async fn a_silent_peer_times_out() {
    let (client_io, _server_io) = boxed_pair().await;
    let client = TlsUpgrade::with_config(
        Keypair::generate_ed25519(),
        TlsConfig::default().with_handshake_timeout(Duration::from_millis(200)),
    );
    let error = client
        .secure_outbound(client_io, None, &[])
        .await
        .expect_err("nobody answers");
    assert!(matches!(error, SecurityError::Timeout(d) if d == Duration::from_millis(200)));
}

#[tokio::test]
async fn certificates_are_fresh_when_reuse_is_off_and_reused_otherwise() {
    // Observe the certificate the server presents through a rogue client's view.
    async fn presented(server: &TlsUpgrade) -> Vec<u8> {
        let (client_io, server_io) = boxed_pair().await;
        let identity = Keypair::generate_ed25519();
        let config = rogue_client(
            single(Craft::valid(), &identity),
            &[&rustls::version::TLS13],
        );
        let connector = futures_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from("libp2p.invalid").unwrap();
        let (client, _) = tokio::join!(
            connector.connect(name, client_io),
            server.secure_inbound(server_io, &[])
        );
        let client = client.expect("handshake");
        client.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }
    let identity = Keypair::generate_ed25519();
    let fresh = TlsUpgrade::with_config(
        identity.clone(),
        TlsConfig::default().with_certificate_lifetime(Duration::ZERO),
    );
    assert_ne!(presented(&fresh).await, presented(&fresh).await);
    let reused = TlsUpgrade::new(identity);
    assert_eq!(presented(&reused).await, presented(&reused).await);
}
