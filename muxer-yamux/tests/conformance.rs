//! weft-upgrader's muxer conformance suite (`test-suite` feature), run against yamux.

use std::sync::Arc;
use weft_upgrader::test_suite::muxer;
use weft_upgrader::StreamMuxer;

fn yamux() -> Arc<dyn StreamMuxer> {
    // The shipped default: the suite's backpressure bound holds for it as it is.
    Arc::new(weft_muxer_yamux::Yamux::new())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_given_back() {
    muxer::budget_given_back(yamux).await;
}
