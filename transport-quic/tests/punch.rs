//! Hole punching packets leave from the listening socket (so a NAT maps the listen
//! port towards the peer), and the listener keeps serving QUIC afterwards.

use libp2p_identity::Keypair;
use std::time::Duration;
use weft_transport_quic::{Config, QuicEndpoints};
use weft_upgrader::Budget;

#[tokio::test]
async fn punching_packets_leave_from_the_listen_port() {
    let key = Keypair::generate_ed25519();
    let endpoints = QuicEndpoints::new(&key, Config::default()).unwrap();
    let listener = endpoints.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = peer.local_addr().unwrap();

    endpoints.punch(target, b"random bytes").unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
        .await
        .expect("the packet arrived")
        .unwrap();
    assert_eq!(&buf[..n], b"random bytes");
    assert_eq!(
        from,
        listener.local_addr(),
        "sent from the listening socket"
    );

    // The peer's garbage back does not disturb the endpoint: a dial still succeeds.
    peer.send_to(b"not quic", listener.local_addr())
        .await
        .unwrap();
    let client = QuicEndpoints::new(&Keypair::generate_ed25519(), Config::default()).unwrap();
    let expected = key.public().to_peer_id();
    let (dialed, accepted) = tokio::join!(
        client.dial(listener.local_addr(), Some(expected), Budget::unlimited()),
        async {
            listener
                .accept()
                .await
                .unwrap()
                .handshake(Budget::unlimited())
                .await
        }
    );
    assert!(dialed.is_ok() && accepted.is_ok());

    // No listening socket reaches a non-loopback address from 127.0.0.1.
    assert!(endpoints
        .punch("192.0.2.1:4001".parse().unwrap(), b"x")
        .is_err());
    drop(listener);
    assert!(
        endpoints.punch(target, b"x").is_err(),
        "the listener is gone"
    );
}
