//! weft TLS against rust-libp2p's `libp2p-tls` 0.7 over TCP on 127.0.0.1, both roles,
//! several key types, then 64 MiB of checksummed data each way.

mod common;

use common::*;
use libp2p_core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
use libp2p_identity::Keypair;
use weft_security_tls::TlsUpgrade;
use weft_upgrader::SecurityUpgrade;

const BULK: usize = 64 * 1024 * 1024;

fn key_types() -> Vec<(&'static str, Keypair)> {
    vec![
        ("ed25519", Keypair::generate_ed25519()),
        ("ecdsa", Keypair::generate_ecdsa()),
        ("secp256k1", Keypair::generate_secp256k1()),
    ]
}

fn yamux_offer() -> Vec<String> {
    vec!["/yamux/1.0.0".to_string()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_dials_libp2p_tls() {
    for (index, (name, weft_key)) in key_types().into_iter().enumerate() {
        let (_, libp2p_key) = &key_types()[(index + 1) % 3];
        let (dialer, listener) = tcp_pair().await;
        let weft = TlsUpgrade::new(weft_key.clone());
        let libp2p = libp2p_tls::Config::new(libp2p_key).unwrap();
        // With and without inlined muxer negotiation: libp2p-tls answers only "libp2p".
        let offer = if index % 2 == 0 {
            yamux_offer()
        } else {
            Vec::new()
        };
        let (ours, theirs) = tokio::join!(
            weft.secure_outbound(
                Box::new(dialer),
                Some(libp2p_key.public().to_peer_id()),
                &offer
            ),
            libp2p.upgrade_inbound(listener, "/tls/1.0.0"),
        );
        let ours = ours.unwrap_or_else(|e| panic!("{name}: {e}"));
        let (their_view, their_stream) = theirs.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ours.remote_peer, libp2p_key.public().to_peer_id(), "{name}");
        assert_eq!(their_view, weft_key.public().to_peer_id(), "{name}");
        assert_eq!(
            ours.muxer, None,
            "{name}: libp2p-tls only speaks \"libp2p\""
        );

        let size = if index == 0 { BULK } else { BULK / 16 };
        let to_them = pseudo_random(size, 1 + index as u64);
        let to_us = pseudo_random(size, 100 + index as u64);
        let (they_got, we_got) =
            tokio::join!(exchange(their_stream, &to_us), exchange(ours.io, &to_them));
        assert_eq!(they_got, sha256(&to_them), "{name}: weft -> libp2p");
        assert_eq!(we_got, sha256(&to_us), "{name}: libp2p -> weft");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libp2p_tls_dials_weft() {
    for (index, (name, weft_key)) in key_types().into_iter().enumerate() {
        let (_, libp2p_key) = &key_types()[(index + 2) % 3];
        let (dialer, listener) = tcp_pair().await;
        let weft = TlsUpgrade::new(weft_key.clone());
        let libp2p = libp2p_tls::Config::new(libp2p_key).unwrap();
        let supported = if index % 2 == 0 {
            yamux_offer()
        } else {
            Vec::new()
        };
        let (theirs, ours) = tokio::join!(
            libp2p.upgrade_outbound(dialer, "/tls/1.0.0"),
            weft.secure_inbound(Box::new(listener), &supported),
        );
        let ours = ours.unwrap_or_else(|e| panic!("{name}: {e}"));
        let (their_view, their_stream) = theirs.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ours.remote_peer, libp2p_key.public().to_peer_id(), "{name}");
        assert_eq!(their_view, weft_key.public().to_peer_id(), "{name}");
        assert_eq!(
            ours.muxer, None,
            "{name}: libp2p-tls only offers \"libp2p\""
        );

        let size = if index == 0 { BULK } else { BULK / 16 };
        let to_them = pseudo_random(size, 7 + index as u64);
        let to_us = pseudo_random(size, 700 + index as u64);
        let (they_got, we_got) =
            tokio::join!(exchange(their_stream, &to_us), exchange(ours.io, &to_them));
        assert_eq!(they_got, sha256(&to_them), "{name}: weft -> libp2p");
        assert_eq!(we_got, sha256(&to_us), "{name}: libp2p -> weft");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libp2p_tls_sees_a_mismatch_when_weft_is_not_the_dialed_peer() {
    // The other direction: weft dials expecting someone else, libp2p-tls answers.
    let libp2p_key = Keypair::generate_ed25519();
    let (dialer, listener) = tcp_pair().await;
    let weft = TlsUpgrade::new(Keypair::generate_ed25519());
    let libp2p = libp2p_tls::Config::new(&libp2p_key).unwrap();
    let stranger = Keypair::generate_ed25519().public().to_peer_id();
    let (ours, theirs) = tokio::join!(
        weft.secure_outbound(Box::new(dialer), Some(stranger), &[]),
        libp2p.upgrade_inbound(listener, "/tls/1.0.0"),
    );
    assert!(matches!(
        ours,
        Err(weft_upgrader::SecurityError::PeerIdMismatch { .. })
    ));
    assert!(theirs.is_err(), "libp2p-tls must see the aborted handshake");
}
