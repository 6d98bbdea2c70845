//! Interoperability with rust-libp2p's `libp2p-noise` 0.47 over real TCP sockets:
//! both roles, several identity key types, our muxer extension on and off (libp2p
//! does not inline muxers, so the result must be `None`), WebTransport certhashes,
//! then 64 MiB of random data each way, checksummed.

mod common;

use common::{exchange_checksummed, tcp_pair};
use libp2p_core::multihash::Multihash;
use libp2p_core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
use libp2p_identity::Keypair;
use std::collections::HashSet;
use weft_security_noise::{Noise, NoiseConfig};
use weft_upgrader::SecurityUpgrade;

const BIG: usize = 64 << 20;
const SMALL: usize = 1 << 20;

fn muxers(on: bool) -> Vec<String> {
    if on {
        vec!["/yamux/1.0.0".to_string()]
    } else {
        Vec::new()
    }
}

/// weft dials, libp2p-noise answers.
async fn weft_initiator(ours: Keypair, theirs: Keypair, offer_muxers: bool, len: usize) {
    let (dialer, listener) = tcp_pair().await;
    let noise = Noise::new(&ours).unwrap();
    let libp2p = libp2p_noise::Config::new(&theirs).unwrap();
    let their_id = theirs.public().to_peer_id();
    let offered = muxers(offer_muxers);
    let (ours_result, theirs_result) = tokio::join!(
        noise.secure_outbound(Box::new(dialer), Some(their_id), &offered),
        libp2p.upgrade_inbound(listener, "/noise"),
    );
    let secured = ours_result.unwrap();
    let (peer_seen_by_libp2p, libp2p_io) = theirs_result.unwrap();
    assert_eq!(secured.remote_peer, their_id);
    assert_eq!(secured.remote_public_key, theirs.public());
    assert_eq!(peer_seen_by_libp2p, ours.public().to_peer_id());
    assert_eq!(secured.muxer, None, "libp2p-noise does not inline muxers");
    exchange_checksummed(secured.io, libp2p_io, len).await;
}

/// libp2p-noise dials, weft answers.
async fn weft_responder(ours: Keypair, theirs: Keypair, offer_muxers: bool, len: usize) {
    let (dialer, listener) = tcp_pair().await;
    let noise = Noise::new(&ours).unwrap();
    let libp2p = libp2p_noise::Config::new(&theirs).unwrap();
    let offered = muxers(offer_muxers);
    let (theirs_result, ours_result) = tokio::join!(
        libp2p.upgrade_outbound(dialer, "/noise"),
        noise.secure_inbound(Box::new(listener), &offered),
    );
    let secured = ours_result.unwrap();
    let (peer_seen_by_libp2p, libp2p_io) = theirs_result.unwrap();
    assert_eq!(secured.remote_peer, theirs.public().to_peer_id());
    assert_eq!(peer_seen_by_libp2p, ours.public().to_peer_id());
    assert_eq!(secured.muxer, None, "libp2p-noise does not inline muxers");
    exchange_checksummed(secured.io, libp2p_io, len).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_weft_initiator_64mib() {
    weft_initiator(
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
        true,
        BIG,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_weft_responder_64mib() {
    weft_responder(
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
        true,
        BIG,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_muxer_extension_both_roles() {
    weft_initiator(
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
        false,
        SMALL,
    )
    .await;
    weft_responder(
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
        false,
        SMALL,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secp256k1_and_ecdsa_keys_both_roles() {
    for (ours, theirs) in [
        (Keypair::generate_secp256k1(), Keypair::generate_secp256k1()),
        (Keypair::generate_ecdsa(), Keypair::generate_ed25519()),
        (Keypair::generate_ed25519(), Keypair::generate_ecdsa()),
    ] {
        weft_initiator(ours.clone(), theirs.clone(), true, SMALL).await;
        weft_responder(ours, theirs, true, SMALL).await;
    }
}

fn certhashes() -> (Vec<Vec<u8>>, HashSet<Multihash<64>>) {
    let hash = Multihash::<64>::wrap(0x12, &[7u8; 32]).unwrap();
    (vec![hash.to_bytes()], HashSet::from([hash]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webtransport_certhashes_from_libp2p_responder_are_ignored() {
    let ours = Keypair::generate_ed25519();
    let theirs = Keypair::generate_ed25519();
    let (dialer, listener) = tcp_pair().await;
    let noise = Noise::new(&ours).unwrap();
    let libp2p = libp2p_noise::Config::new(&theirs)
        .unwrap()
        .with_webtransport_certhashes(certhashes().1);
    let offered = muxers(true);
    let (ours_result, theirs_result) = tokio::join!(
        noise.secure_outbound(Box::new(dialer), None, &offered),
        libp2p.upgrade_inbound(listener, "/noise"),
    );
    let secured = ours_result.unwrap();
    let (_, libp2p_io) = theirs_result.unwrap();
    assert_eq!(secured.muxer, None);
    exchange_checksummed(secured.io, libp2p_io, SMALL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libp2p_initiator_accepts_our_certhashes() {
    let ours = Keypair::generate_ed25519();
    let theirs = Keypair::generate_ed25519();
    let (hashes, expected) = certhashes();
    let noise = NoiseConfig::new(&ours)
        .webtransport_certhashes(hashes)
        .build()
        .unwrap();
    let (dialer, listener) = tcp_pair().await;
    let libp2p = libp2p_noise::Config::new(&theirs)
        .unwrap()
        .with_webtransport_certhashes(expected.clone());
    let offered = muxers(true);
    let (theirs_result, ours_result) = tokio::join!(
        libp2p.upgrade_outbound(dialer, "/noise"),
        noise.secure_inbound(Box::new(listener), &offered),
    );
    assert_eq!(ours_result.unwrap().muxer, None);
    theirs_result.unwrap();

    // And without them, libp2p's initiator refuses us: proof the field is read.
    let (dialer, listener) = tcp_pair().await;
    let libp2p = libp2p_noise::Config::new(&theirs)
        .unwrap()
        .with_webtransport_certhashes(expected);
    let plain = Noise::new(&ours).unwrap();
    let (theirs_result, _ours_result) = tokio::join!(
        libp2p.upgrade_outbound(dialer, "/noise"),
        plain.secure_inbound(Box::new(listener), &[]),
    );
    assert!(matches!(
        theirs_result,
        Err(libp2p_noise::Error::UnknownWebTransportCerthashes(..))
    ));
}
