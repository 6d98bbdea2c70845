//! Memory pinning (issue 13): four stock rust-libp2p 0.57 peers, each with its own
//! peer id, dial `weft listen` (shipped defaults) through a 60 ms RTT relay, open 64
//! `/echo/1.0.0` streams each, write into every stream and never read. The listener's
//! resident memory must grow by less than 64 MiB over its pre-attack value, and an
//! honest `weft dial --echo 1048576` through the same relay must still succeed.

#[path = "hostile_support/mod.rs"]
mod support;

use std::time::Duration;
use support::{honest_dial, RssSampler};
use weft_interop_tests::procfs::mib;
use weft_interop_tests::{AttackPlan, Attacker, DelayRelay, WeftListen};

const ONE_WAY: Duration = Duration::from_millis(30);
const BUDGET_KIB: u64 = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_pinning_peers_grow_weft_listen_by_less_than_64_mib() {
    let mut listener = WeftListen::defaults().spawn().await.unwrap();
    let pid = listener.pid().unwrap();
    let relay = DelayRelay::start(listener.socket_addr(), ONE_WAY)
        .await
        .unwrap();
    let addr = listener.addr_via(relay.local_addr());

    // Warm up code paths and the allocator with one honest exchange, then measure.
    let warm = honest_dial(&addr, 1 << 20, Duration::from_secs(30)).await;
    assert!(
        warm.success(),
        "honest dial before the attack failed: {warm:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = weft_interop_tests::procfs::rss_kib(pid).unwrap();

    let sampler = RssSampler::start(pid);
    let plan = AttackPlan::default();
    let mut attacker = Attacker::spawn(&addr, &plan).await.unwrap();
    attacker.ready(Duration::from_secs(30)).await.unwrap();
    let (progress, stalled) = attacker
        .settled(Duration::from_secs(2), Duration::from_secs(30))
        .await;
    let honest = honest_dial(&addr, 1 << 20, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let peak = sampler.stop().await;
    let growth = peak.saturating_sub(before);
    eprintln!(
        "memory pinning, {} connections x {} streams through a 60 ms relay: weft listen \
         {:.1} MiB before, peak {:.1} MiB (+{:.1} MiB); attackers wrote {:.1} MiB, {} \
         streams failed, writes stalled: {stalled}; honest 1 MiB echo: ok {} in {:.2} s",
        plan.connections,
        plan.streams,
        mib(before),
        mib(peak),
        mib(growth),
        progress.written as f64 / (1 << 20) as f64,
        progress.failed_streams,
        honest.success(),
        honest.elapsed.as_secs_f64(),
    );
    assert!(
        listener.is_running(),
        "weft listen died under the attack:\n{}",
        listener.stderr()
    );
    assert!(
        growth < BUDGET_KIB,
        "weft listen's resident memory grew by {:.1} MiB ({:.1} -> {:.1} MiB) under {} \
         non-reading connections x {} streams (attackers wrote {:.1} MiB); the budget is \
         less than 64 MiB",
        mib(growth),
        mib(before),
        mib(peak),
        plan.connections,
        plan.streams,
        progress.written as f64 / (1 << 20) as f64,
    );
    assert!(
        honest.success(),
        "an honest `weft dial --echo 1048576` during the attack failed after {:.2} s: {honest:?}",
        honest.elapsed.as_secs_f64()
    );
    drop(attacker);
}
