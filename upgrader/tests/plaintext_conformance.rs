//! The security conformance suite against the test-only `/plaintext/2.0.0`
//! protocol: checks the suite itself on an implementation without inlined muxers.

mod support;

use std::sync::Arc;
use support::plaintext::Plaintext;
use weft_upgrader::test_suite::security::{self, SecurityOptions};
use weft_upgrader::SecurityUpgrade;

fn plaintext(keypair: libp2p_identity::Keypair) -> Arc<dyn SecurityUpgrade> {
    Arc::new(Plaintext::new(keypair))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_passes_the_security_suite() {
    security::run_all_with(
        plaintext,
        SecurityOptions::default()
            .inlined_muxers(false)
            .charges_buffers(false),
    )
    .await;
}

/// The suite must fail an implementation that reserves nothing for its buffers.
#[tokio::test]
#[should_panic(expected = "reserves nothing")]
async fn suite_catches_uncharged_buffers() {
    security::budget_charged(plaintext).await;
}

/// The suite must fail an implementation that claims inlined muxers it does not do.
#[tokio::test]
#[should_panic(expected = "wrong muxer at the initiator")]
async fn suite_catches_a_missing_inlined_muxer() {
    security::inlined_muxer(plaintext, true).await;
}

/// The suite must fail an implementation that does not check the expected peer.
#[tokio::test]
#[should_panic(expected = "the dialer accepted")]
async fn suite_catches_an_unchecked_expected_peer() {
    security::expected_peer_mismatch(|keypair| {
        Arc::new(Plaintext::careless(keypair)) as Arc<dyn SecurityUpgrade>
    })
    .await;
}
