//! The `weft_upgrader::test_suite` conformance checks run against weft's own
//! security protocols (Noise, TLS) and muxer (yamux), one test per check.

use std::sync::Arc;
use weft_upgrader::test_suite::{muxer, security};
use weft_upgrader::{SecurityUpgrade, StreamMuxer};

fn noise(keypair: libp2p_identity::Keypair) -> Arc<dyn SecurityUpgrade> {
    Arc::new(weft_security_noise::Noise::new(&keypair).expect("noise config"))
}

fn tls(keypair: libp2p_identity::Keypair) -> Arc<dyn SecurityUpgrade> {
    Arc::new(weft_security_tls::TlsUpgrade::new(keypair))
}

fn yamux() -> Arc<dyn StreamMuxer> {
    // The suite's backpressure check allows 4 MiB before a writer must stall; the
    // boost (which an inflated loopback round trip on a busy machine can switch on)
    // is capped below that here, so it stays on and within the suite's bound.
    let boost = weft_muxer_yamux::WindowBoost {
        max_per_stream: 2 << 20,
        ..Default::default()
    };
    let config = weft_muxer_yamux::YamuxConfig::default().with_window_boost(Some(boost));
    Arc::new(weft_muxer_yamux::Yamux::with_config(config).expect("valid yamux config"))
}

macro_rules! security_checks {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn handshake_over_tcp() {
                security::handshake_over_tcp($make).await;
            }
            #[tokio::test]
            async fn handshake_over_memory() {
                security::handshake_over_memory($make).await;
            }
            #[tokio::test]
            async fn key_types() {
                security::key_types($make).await;
            }
            #[tokio::test]
            async fn expected_peer_mismatch() {
                security::expected_peer_mismatch($make).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn large_transfer() {
                security::large_transfer($make).await;
            }
            #[tokio::test]
            async fn half_close() {
                security::half_close($make).await;
            }
            #[tokio::test]
            async fn close_and_drop() {
                security::close_and_drop($make).await;
            }
            #[tokio::test]
            async fn inlined_muxer() {
                security::inlined_muxer($make, true).await;
            }
            #[tokio::test]
            async fn garbage_input() {
                security::garbage_input($make).await;
            }
        }
    };
}

security_checks!(noise_suite, noise);
security_checks!(tls_suite, tls);

mod yamux_suite {
    use super::*;

    #[tokio::test]
    async fn open_accept_both_roles() {
        muxer::open_accept_both_roles(yamux).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_streams() {
        muxer::many_streams(yamux).await;
    }
    #[tokio::test]
    async fn half_close() {
        muxer::half_close(yamux).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_transfer() {
        muxer::large_transfer(yamux).await;
    }
    #[tokio::test]
    async fn backpressure() {
        muxer::backpressure(yamux).await;
    }
    #[tokio::test]
    async fn reset() {
        muxer::reset(yamux).await;
    }
    #[tokio::test]
    async fn connection_drop() {
        muxer::connection_drop(yamux).await;
    }
    #[tokio::test]
    async fn close() {
        muxer::close(yamux).await;
    }
}
