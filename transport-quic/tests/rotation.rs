//! Certificate rotation inside the one long-lived TLS configuration of an identity,
//! over real UDP sockets on 127.0.0.1: after a rotation a full handshake presents the
//! new certificate and proves the same peer id, and a session from before the
//! rotation still resumes (rustls resumes only with the same resolver objects) and
//! still proves the peer id.

use futures::io::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::{Keypair, PeerId};
use std::time::{Duration, Instant};
use weft_security_tls::{peer_public_key, TICKETS_PER_HANDSHAKE};
use weft_transport_quic::{Config, Established, QuicEndpoints, QuicListener};
use weft_upgrader::Budget;

fn node() -> (QuicEndpoints, PeerId) {
    let key = Keypair::generate_ed25519();
    let peer = key.public().to_peer_id();
    let endpoints = QuicEndpoints::new(&key, Config::default()).expect("endpoints");
    (endpoints, peer)
}

/// Dials `listener` expecting `expected`; returns both ends, their drivers running.
async fn connect(
    client: &QuicEndpoints,
    listener: &QuicListener,
    expected: Option<PeerId>,
) -> (Established, Established) {
    let accept = async {
        listener
            .accept()
            .await?
            .handshake(Budget::unlimited())
            .await
    };
    let (outbound, inbound) = tokio::join!(
        client.dial(listener.local_addr(), expected, Budget::unlimited()),
        accept
    );
    (outbound.expect("dials"), inbound.expect("accepts"))
}

/// The peer id the certificate an end saw proves.
fn proven_peer(established: &Established) -> PeerId {
    let certificate = established
        .peer_certificate
        .clone()
        .expect("the peer's certificate is known after the handshake");
    peer_public_key(&[certificate])
        .expect("a libp2p certificate")
        .to_peer_id()
}

/// Runs both drivers and checks an echo on one stream from `outbound` to `inbound`.
async fn echo_once(outbound: Established, inbound: Established) {
    tokio::spawn(outbound.connection.driver);
    tokio::spawn(inbound.connection.driver);
    let server = inbound.connection.muxed;
    let echo = tokio::spawn(async move {
        let mut stream = server.accept_stream().await.expect("accepts");
        let mut data = Vec::new();
        stream.read_to_end(&mut data).await.expect("reads");
        stream.write_all(&data).await.expect("writes");
        stream.close().await.expect("closes");
        server
    });
    let client = outbound.connection.muxed;
    let mut stream = client.open_stream().await.expect("opens");
    stream.write_all(b"rotated").await.expect("writes");
    stream.close().await.expect("half-closes");
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut back))
        .await
        .expect("in time")
        .expect("reads");
    assert_eq!(back, b"rotated");
    let _server = echo.await.expect("the echo ran");
    client.close().await.expect("closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_handshake_after_a_rotation_presents_the_new_certificate_of_the_same_peer() {
    let (server, server_id) = node();
    let (client, client_id) = node();
    let listener = server
        .listen("127.0.0.1:0".parse().expect("an address"))
        .expect("listens");

    // A dial that expects no peer keeps no ticket: the next one is a full handshake.
    let (outbound, inbound) = connect(&client, &listener, None).await;
    let old_server = outbound.peer_certificate.clone().expect("verified");
    let old_client = inbound.peer_certificate.clone().expect("verified");
    assert_eq!(old_server, server.local_certificate());
    assert_eq!(old_client, client.local_certificate());
    drop((outbound, inbound));

    server.rotate_certificate().expect("rotates");
    client.rotate_certificate().expect("rotates");
    assert_ne!(server.local_certificate(), old_server);
    assert_ne!(client.local_certificate(), old_client);

    let (outbound, inbound) = connect(&client, &listener, Some(server_id)).await;
    assert_eq!(
        outbound.connection.muxed.session_info().resumed,
        Some(false)
    );
    assert_eq!(
        outbound.peer_certificate.as_ref(),
        Some(&server.local_certificate()),
        "the listener presents its new certificate"
    );
    assert_eq!(
        inbound.peer_certificate.as_ref(),
        Some(&client.local_certificate()),
        "the dialer presents its new certificate"
    );
    assert_eq!(outbound.connection.remote_peer, server_id);
    assert_eq!(proven_peer(&outbound), server_id);
    assert_eq!(inbound.connection.remote_peer, client_id);
    assert_eq!(proven_peer(&inbound), client_id);
    echo_once(outbound, inbound).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_from_before_a_rotation_resumes_and_proves_the_same_peer() {
    let (server, server_id) = node();
    let (client, client_id) = node();
    let listener = server
        .listen("127.0.0.1:0".parse().expect("an address"))
        .expect("listens");

    let (first_out, first_in) = connect(&client, &listener, Some(server_id)).await;
    assert_eq!(
        first_out.connection.muxed.session_info().resumed,
        Some(false)
    );
    let original_server = first_out.peer_certificate.clone().expect("verified");
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.session_tickets(&server_id) < TICKETS_PER_HANDSHAKE {
        assert!(Instant::now() < deadline, "no session ticket arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first_out.connection.muxed.close().await.expect("closes");
    drop((first_out, first_in));

    server.rotate_certificate().expect("rotates");
    client.rotate_certificate().expect("rotates");
    assert_ne!(server.local_certificate(), original_server);

    let (outbound, inbound) = connect(&client, &listener, Some(server_id)).await;
    assert_eq!(
        outbound.connection.muxed.session_info().resumed,
        Some(true),
        "the rotation kept the resolver, so the session resumes"
    );
    assert!(inbound.connection.muxed.handshake_complete().await);
    assert_eq!(inbound.connection.muxed.session_info().resumed, Some(true));
    // Both ends prove the peer with the certificate of the original handshake, which
    // the session carries: the same identity key as the new certificate's.
    assert_eq!(outbound.peer_certificate.as_ref(), Some(&original_server));
    assert_eq!(outbound.connection.remote_peer, server_id);
    assert_eq!(proven_peer(&outbound), server_id);
    assert_eq!(inbound.connection.remote_peer, client_id);
    assert_eq!(proven_peer(&inbound), client_id);
    echo_once(outbound, inbound).await;
}
