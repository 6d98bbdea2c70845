//! weft-upgrader's muxer conformance suite (`test-suite` feature), run against yamux.

use std::sync::Arc;
use weft_upgrader::test_suite::muxer;
use weft_upgrader::StreamMuxer;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_accept_both_roles() {
    muxer::open_accept_both_roles(yamux).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_streams() {
    muxer::many_streams(yamux).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close() {
    muxer::half_close(yamux).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_transfer() {
    muxer::large_transfer(yamux).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure() {
    muxer::backpressure(yamux).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset() {
    muxer::reset(yamux).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_drop() {
    muxer::connection_drop(yamux).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close() {
    muxer::close(yamux).await;
}
