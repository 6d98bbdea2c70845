//! The `weft-upgrader` security conformance suite, run against TLS.

use libp2p_identity::Keypair;
use std::sync::Arc;
use weft_security_tls::TlsUpgrade;
use weft_upgrader::SecurityUpgrade;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_passes_the_security_conformance_suite() {
    weft_upgrader::test_suite::security::run_all(|keypair: Keypair| {
        Arc::new(TlsUpgrade::new(keypair)) as Arc<dyn SecurityUpgrade>
    })
    .await;
}
