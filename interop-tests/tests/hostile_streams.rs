//! Stream floods (issue 13): one rust-libp2p connection opens thousands of
//! `/echo/1.0.0` streams against `weft listen` (shipped defaults), far more than its
//! stream limits, writes 16 KiB into each accepted one and never reads. An honest
//! `weft dial` must still be served, and the listener's memory must stay in budget.

#[path = "hostile_support/mod.rs"]
mod support;

use futures::AsyncWriteExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{honest_dial, propose, Answer, RawConn, RssSampler, GROWTH_BUDGET_KIB};
use weft_interop_tests::procfs::{mib, rss_kib};
use weft_interop_tests::WeftListen;

const STREAMS: usize = 3000;
const FLOOD_TIME: Duration = Duration::from_secs(15);

#[derive(Default)]
struct Tally {
    accepted: AtomicUsize,
    na: AtomicUsize,
    failed: AtomicUsize,
    first_failure: Mutex<Option<String>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_streams_on_one_connection_leaves_room_for_an_honest_peer() {
    let mut listener = WeftListen::defaults().spawn().await.unwrap();
    let pid = listener.pid().unwrap();
    let warm = honest_dial(listener.addr(), 1 << 20, Duration::from_secs(10)).await;
    assert!(
        warm.success(),
        "honest dial before the attack failed: {warm:?}"
    );
    let before = rss_kib(pid).unwrap();
    let sampler = RssSampler::start(pid);

    let conn = RawConn::connect_with_streams(listener.socket_addr(), 4000)
        .await
        .unwrap();
    let tally = Arc::new(Tally::default());
    let mut held = tokio::task::JoinSet::new();
    let started = Instant::now();
    let mut opened = 0;
    while opened < STREAMS && started.elapsed() < FLOOD_TIME {
        let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(2), conn.open()).await
        else {
            break;
        };
        opened += 1;
        let tally = Arc::clone(&tally);
        held.spawn(async move {
            match propose(&mut stream, "/echo/1.0.0", Duration::from_secs(10)).await {
                Answer::Accepted => {
                    tally.accepted.fetch_add(1, Ordering::Relaxed);
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        stream.write_all(&[0x42; 16 * 1024]),
                    )
                    .await;
                }
                Answer::Na => {
                    tally.na.fetch_add(1, Ordering::Relaxed);
                }
                Answer::Failed(why) => {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut first) = tally.first_failure.lock() {
                        first.get_or_insert(why);
                    }
                }
            }
            // Hold the stream, never read.
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(stream);
        });
    }
    let flood_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let honest = honest_dial(listener.addr(), 1 << 20, Duration::from_secs(20)).await;
    let peak = sampler.stop().await;
    eprintln!(
        "stream flood: {opened} streams opened in {:.1} s (attacker connection closed: {}); \
         accepted {}, na {}, failed {} (first: {:?}); honest dial ok {} in {:.2} s; weft listen {:.1} -> \
         peak {:.1} MiB",
        flood_time.as_secs_f64(),
        conn.is_closed(),
        tally.accepted.load(Ordering::Relaxed),
        tally.na.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
        tally.first_failure.lock().ok().and_then(|f| f.clone()),
        honest.success(),
        honest.elapsed.as_secs_f64(),
        mib(before),
        mib(peak),
    );
    assert!(
        listener.is_running(),
        "weft listen exited:\n{}",
        listener.stderr()
    );
    assert!(
        opened > 512,
        "the attacker opened only {opened} streams: the flood did not exceed yamux's limits"
    );
    assert!(
        honest.success(),
        "during a flood of {opened} streams, an honest `weft dial --echo 1048576` failed after \
         {:.2} s: {honest:?}",
        honest.elapsed.as_secs_f64()
    );
    assert!(
        peak.saturating_sub(before) < GROWTH_BUDGET_KIB,
        "weft listen's resident memory grew by {:.1} MiB under a flood of {opened} streams \
         (budget: less than {} MiB)",
        mib(peak.saturating_sub(before)),
        GROWTH_BUDGET_KIB / 1024
    );
    held.abort_all();
}
