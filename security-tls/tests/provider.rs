//! The crypto provider of `TlsConfig` and `SharedTlsConfigs` decides what a handshake
//! negotiates: weft against rust-libp2p's `libp2p-tls` (whose rustls connection
//! reports the negotiated cipher suite and key exchange group) over TCP on 127.0.0.1.

mod common;

use common::*;
use futures_rustls::TlsConnector;
use libp2p_core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
use libp2p_identity::Keypair;
use rustls::crypto::ring::{cipher_suite, kx_group};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::{CipherSuite, NamedGroup};
use std::sync::Arc;
use weft_security_tls::{default_crypto_provider, SharedTlsConfigs, TlsConfig, TlsUpgrade};
use weft_upgrader::SecurityUpgrade;

/// The default provider, with only `suite` and `group`.
fn only(
    suite: rustls::SupportedCipherSuite,
    group: &'static dyn rustls::crypto::SupportedKxGroup,
) -> Arc<CryptoProvider> {
    let mut provider = (*default_crypto_provider()).clone();
    provider.cipher_suites = vec![suite];
    provider.kx_groups = vec![group];
    Arc::new(provider)
}

/// A weft dialer with `config` against a libp2p-tls listener: what the listener's
/// rustls connection negotiated.
async fn weft_dials(config: TlsConfig) -> (Option<CipherSuite>, Option<NamedGroup>) {
    let server_key = Keypair::generate_ed25519();
    let weft = TlsUpgrade::with_config(Keypair::generate_ed25519(), config);
    let libp2p = libp2p_tls::Config::new(&server_key).unwrap();
    let (dialer, listener) = tcp_pair().await;
    let (ours, theirs) = tokio::join!(
        weft.secure_outbound(
            Box::new(dialer),
            Some(server_key.public().to_peer_id()),
            &[]
        ),
        libp2p.upgrade_inbound(listener, "/tls/1.0.0"),
    );
    ours.unwrap();
    let (_, stream) = theirs.unwrap();
    let state = stream.get_ref().1;
    (
        state.negotiated_cipher_suite().map(|s| s.suite()),
        state.negotiated_key_exchange_group().map(|g| g.name()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_dialer_negotiates_aes_128_gcm_over_x25519() {
    assert_eq!(
        weft_dials(TlsConfig::default()).await,
        (
            Some(CipherSuite::TLS13_AES_128_GCM_SHA256),
            Some(NamedGroup::X25519)
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_negotiates_the_suite_and_group_of_its_chosen_provider() {
    let provider = only(
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        kx_group::SECP256R1,
    );
    assert_eq!(
        weft_dials(TlsConfig::default().with_crypto_provider(provider)).await,
        (
            Some(CipherSuite::TLS13_CHACHA20_POLY1305_SHA256),
            Some(NamedGroup::secp256r1)
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_negotiates_the_suite_and_group_of_its_chosen_provider() {
    // libp2p-tls offers ChaCha20 first and a key share for X25519MLKEM768: a listener
    // with AES-256-GCM and P-384 only makes it take both (P-384 after a retry).
    let provider = only(cipher_suite::TLS13_AES_256_GCM_SHA384, kx_group::SECP384R1);
    let weft_key = Keypair::generate_ed25519();
    let weft = TlsUpgrade::with_config(
        weft_key.clone(),
        TlsConfig::default().with_crypto_provider(provider),
    );
    let libp2p = libp2p_tls::Config::new(&Keypair::generate_ed25519()).unwrap();
    let (dialer, listener) = tcp_pair().await;
    let (theirs, ours) = tokio::join!(
        libp2p.upgrade_outbound(dialer, "/tls/1.0.0"),
        weft.secure_inbound(Box::new(listener), &[]),
    );
    ours.unwrap();
    let (their_view, stream) = theirs.unwrap();
    assert_eq!(their_view, weft_key.public().to_peer_id());
    let state = stream.get_ref().1;
    assert_eq!(
        state.negotiated_cipher_suite().map(|s| s.suite()),
        Some(CipherSuite::TLS13_AES_256_GCM_SHA384)
    );
    assert_eq!(
        state.negotiated_key_exchange_group().map(|g| g.name()),
        Some(NamedGroup::secp384r1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_configs_negotiate_the_suite_and_group_of_their_provider() {
    let provider = only(
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        kx_group::SECP256R1,
    );
    let shared = SharedTlsConfigs::with_crypto_provider(&Keypair::generate_ed25519(), provider)
        .expect("configs build");
    let server_key = Keypair::generate_ed25519();
    let libp2p = libp2p_tls::Config::new(&server_key).unwrap();
    let dial = shared.dial_name(Some(server_key.public().to_peer_id()));
    let name = ServerName::try_from(dial.server_name().to_string()).unwrap();
    let (dialer, listener) = tcp_pair().await;
    let (ours, theirs) = tokio::join!(
        TlsConnector::from(shared.client.clone()).connect(name, dialer),
        libp2p.upgrade_inbound(listener, "/tls/1.0.0"),
    );
    let ours = ours.unwrap();
    let (_, theirs) = theirs.unwrap();
    for state in [
        ours.get_ref().1.negotiated_cipher_suite(),
        theirs.get_ref().1.negotiated_cipher_suite(),
    ] {
        assert_eq!(
            state.map(|s| s.suite()),
            Some(CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)
        );
    }
    assert_eq!(
        theirs
            .get_ref()
            .1
            .negotiated_key_exchange_group()
            .map(|g| g.name()),
        Some(NamedGroup::secp256r1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_without_tls_1_3_suites_is_a_local_error() {
    let mut provider = (*default_crypto_provider()).clone();
    provider.cipher_suites = vec![cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256];
    let provider = Arc::new(provider);
    assert!(matches!(
        SharedTlsConfigs::with_crypto_provider(&Keypair::generate_ed25519(), provider.clone()),
        Err(weft_security_tls::TlsError::Config(_))
    ));
    let weft = TlsUpgrade::with_config(
        Keypair::generate_ed25519(),
        TlsConfig::default().with_crypto_provider(provider),
    );
    let (dialer, _listener) = boxed_pair().await;
    let error = weft
        .secure_outbound(dialer, None, &[])
        .await
        .expect_err("no TLS 1.3 suite");
    assert!(
        matches!(
            tls_error(&error),
            Some(weft_security_tls::TlsError::Config(_))
        ),
        "{error:?}"
    );
}

#[test]
fn configs_are_equal_with_the_same_provider_only() {
    let provider = default_crypto_provider();
    let with = TlsConfig::default().with_crypto_provider(provider.clone());
    assert_eq!(with, TlsConfig::default().with_crypto_provider(provider));
    assert_eq!(TlsConfig::default(), TlsConfig::default());
    assert_ne!(with, TlsConfig::default());
    assert_ne!(
        with,
        TlsConfig::default().with_crypto_provider(default_crypto_provider())
    );
}
