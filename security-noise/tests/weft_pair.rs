//! weft Noise against weft Noise over TCP on 127.0.0.1: inlined muxer negotiation,
//! the dialed-peer check, both crypto backends, data and half-close.

mod common;

use common::{exchange_checksummed, tcp_pair};
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::Keypair;
use weft_security_noise::{CryptoBackend, Noise, NoiseConfig, NoiseError};
use weft_upgrader::{SecuredConnection, SecurityError, SecurityUpgrade};

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|id| id.to_string()).collect()
}

async fn connect(
    initiator: &Noise,
    responder: &Noise,
    initiator_muxers: &[String],
    responder_muxers: &[String],
) -> (SecuredConnection, SecuredConnection) {
    let (dialer, listener) = tcp_pair().await;
    let (out, inb) = tokio::join!(
        initiator.secure_outbound(
            Box::new(dialer),
            Some(responder.local_peer_id()),
            initiator_muxers
        ),
        responder.secure_inbound(Box::new(listener), responder_muxers),
    );
    (out.unwrap(), inb.unwrap())
}

async fn agreed(initiator_muxers: &[&str], responder_muxers: &[&str]) -> Option<String> {
    let a = Noise::new(&Keypair::generate_ed25519()).unwrap();
    let b = Noise::new(&Keypair::generate_ed25519()).unwrap();
    let (out, inb) = connect(&a, &b, &ids(initiator_muxers), &ids(responder_muxers)).await;
    assert_eq!(out.muxer, inb.muxer, "both sides must agree");
    assert_eq!(out.remote_peer, b.local_peer_id());
    assert_eq!(inb.remote_peer, a.local_peer_id());
    out.muxer
}

#[tokio::test]
async fn muxer_is_the_first_of_the_initiators_list_both_support() {
    let result = agreed(
        &["/yamux/1.0.0", "/mplex/6.7.0"],
        &["/mplex/6.7.0", "/yamux/1.0.0"],
    )
    .await;
    assert_eq!(result.as_deref(), Some("/yamux/1.0.0"));
    let result = agreed(
        &["/other/1", "/mplex/6.7.0"],
        &["/yamux/1.0.0", "/mplex/6.7.0"],
    )
    .await;
    assert_eq!(result.as_deref(), Some("/mplex/6.7.0"));
}

#[tokio::test]
async fn no_muxer_when_either_list_is_empty_or_they_do_not_overlap() {
    assert_eq!(agreed(&[], &["/yamux/1.0.0"]).await, None);
    assert_eq!(agreed(&["/yamux/1.0.0"], &[]).await, None);
    assert_eq!(agreed(&[], &[]).await, None);
    assert_eq!(agreed(&["/yamux/1.0.0"], &["/mplex/6.7.0"]).await, None);
}

#[tokio::test]
async fn dialing_the_wrong_peer_is_a_peer_id_mismatch() {
    let a = Noise::new(&Keypair::generate_ed25519()).unwrap();
    let b = Noise::new(&Keypair::generate_secp256k1()).unwrap();
    let expected = Keypair::generate_ed25519().public().to_peer_id();
    let (dialer, listener) = tcp_pair().await;
    let (out, inb) = tokio::join!(
        a.secure_outbound(Box::new(dialer), Some(expected), &[]),
        b.secure_inbound(Box::new(listener), &[]),
    );
    match out {
        Err(SecurityError::PeerIdMismatch {
            expected: e,
            actual,
        }) => {
            assert_eq!(e, expected);
            assert_eq!(actual, b.local_peer_id());
        }
        other => panic!("expected PeerIdMismatch, got {other:?}"),
    }
    // The initiator hung up before sending message 3.
    assert!(matches!(inb, Err(SecurityError::Io(_))), "{inb:?}");
}

#[tokio::test]
async fn every_backend_pairing_interoperates_and_carries_data() {
    for (x, y) in [
        (CryptoBackend::Ring, CryptoBackend::RustCrypto),
        (CryptoBackend::RustCrypto, CryptoBackend::Ring),
        (CryptoBackend::RustCrypto, CryptoBackend::RustCrypto),
    ] {
        let a = NoiseConfig::new(&Keypair::generate_ecdsa())
            .crypto_backend(x)
            .build()
            .unwrap();
        let b = NoiseConfig::new(&Keypair::generate_ed25519())
            .crypto_backend(y)
            .build()
            .unwrap();
        let (out, inb) = connect(&a, &b, &[], &[]).await;
        exchange_checksummed(out.io, inb.io, 3 << 20).await;
    }
}

#[tokio::test]
async fn close_flushes_and_the_remote_reads_eof() {
    let a = Noise::new(&Keypair::generate_ed25519()).unwrap();
    let b = Noise::new(&Keypair::generate_ed25519()).unwrap();
    let (mut out, mut inb) = connect(&a, &b, &[], &[]).await;
    // Small writes are coalesced: nothing is sent until close flushes them.
    out.io.write_all(b"hello ").await.unwrap();
    out.io.write_all(b"noise").await.unwrap();
    out.io.close().await.unwrap();
    let mut received = Vec::new();
    inb.io.read_to_end(&mut received).await.unwrap();
    assert_eq!(received, b"hello noise");
}

#[tokio::test]
async fn a_bad_signature_is_reported_as_authentication_failure() {
    let (dialer, listener) = tcp_pair().await;
    let noise = Noise::new(&Keypair::generate_ed25519()).unwrap();
    let liar = Keypair::generate_ed25519();
    // The evil responder signs a static key that is not the one it uses.
    let evil = common::evil_responder(listener, move |_real_static| {
        common::payload_for(&liar, &[9u8; 32])
    });
    let (result, ()) = tokio::join!(noise.secure_outbound(Box::new(dialer), None, &[]), evil);
    let error = result.unwrap_err();
    let SecurityError::Authentication(source) = &error else {
        panic!("expected Authentication, got {error:?}");
    };
    assert!(matches!(
        source.downcast_ref::<NoiseError>(),
        Some(NoiseError::BadIdentitySignature)
    ));
}

#[tokio::test]
async fn a_correct_hand_made_payload_is_accepted() {
    // Control for the test above: the same evil responder, signing its real key.
    let (dialer, listener) = tcp_pair().await;
    let noise = Noise::new(&Keypair::generate_ed25519()).unwrap();
    let honest = Keypair::generate_ed25519();
    let honest_id = honest.public().to_peer_id();
    let responder = common::evil_responder(listener, move |real_static| {
        common::payload_for(&honest, real_static)
    });
    let (result, ()) = tokio::join!(
        noise.secure_outbound(Box::new(dialer), Some(honest_id), &[]),
        responder
    );
    assert_eq!(result.unwrap().remote_peer, honest_id);
}

#[tokio::test]
async fn malformed_payloads_are_typed_errors() {
    use prost::Message;
    type Check = fn(&NoiseError) -> bool;
    let cases: Vec<(Vec<u8>, Check)> = vec![
        (vec![0x0a, 0x50, 1, 2], |e| {
            matches!(e, NoiseError::PayloadDecode(_))
        }),
        (Vec::new(), |e| matches!(e, NoiseError::MissingIdentityKey)),
        (
            weft_security_noise::payload::NoiseHandshakePayload {
                identity_key: Some(vec![8, 1, 18, 3, 1, 2, 3]),
                identity_sig: Some(vec![1]),
                extensions: None,
            }
            .encode_to_vec(),
            |e| matches!(e, NoiseError::InvalidIdentityKey(_)),
        ),
        (
            weft_security_noise::payload::NoiseHandshakePayload {
                identity_key: Some(Keypair::generate_ed25519().public().encode_protobuf()),
                identity_sig: None,
                extensions: None,
            }
            .encode_to_vec(),
            |e| matches!(e, NoiseError::MissingIdentitySignature),
        ),
    ];
    for (payload, check) in cases {
        let (dialer, listener) = tcp_pair().await;
        let noise = Noise::new(&Keypair::generate_ed25519()).unwrap();
        let evil = common::evil_responder(listener, move |_| payload);
        let (result, ()) = tokio::join!(noise.secure_outbound(Box::new(dialer), None, &[]), evil);
        let error = result.unwrap_err();
        let source = match &error {
            SecurityError::Authentication(source) | SecurityError::Protocol(source) => source,
            other => panic!("unexpected {other:?}"),
        };
        let noise_error = source.downcast_ref::<NoiseError>().unwrap();
        assert!(check(noise_error), "unexpected {noise_error:?}");
    }
}
