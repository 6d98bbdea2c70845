//! Hostile QUIC peers against `weft listen --listen /ip4/127.0.0.1/udp/0/quic-v1`
//! (shipped defaults otherwise), each case held to the same claims as the TCP ones:
//! the listener keeps running, an honest `weft dial` over QUIC still gets through (its
//! 1 MiB echo verified), and its resident memory grows by less than 64 MiB.
//!
//! - a flood of abandoned handshakes: real Initials (libp2p TLS ClientHellos) from a
//!   new source port each, on 64 source addresses, never followed up. Unanswered, each
//!   would hold one of the listener's 256 handshake slots until its 5 s timeout; the
//!   listener answers unproven peers with a stateless Retry once half the slots are
//!   taken, which the flood never answers and an honest dialer does;
//! - a stream flood: one rust-libp2p QUIC connection opens `/echo/1.0.0` streams as
//!   fast as the listener's stream credit allows, writes 16 KiB into each and never
//!   reads;
//! - non-reading streams pinning windows: four stock rust-libp2p peers over QUIC, 64
//!   `/echo/1.0.0` streams each, written into without end and never read.

#[path = "hostile_support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::AsyncWriteExt;
use support::initials::flood;
use support::{honest_dial, propose, Answer, RawConn, RssSampler, GROWTH_BUDGET_KIB};
use weft_interop_tests::procfs::{mib, rss_kib};
use weft_interop_tests::{AttackPlan, Attacker, ListeningPeer, WeftListen};

const QUIC_LISTEN: &str = "/ip4/127.0.0.1/udp/0/quic-v1";

async fn quic_listener() -> ListeningPeer {
    let listener = WeftListen::defaults()
        .listen_on(QUIC_LISTEN)
        .spawn()
        .await
        .expect("weft listen starts on QUIC");
    assert!(
        listener.quic_socket_addr().is_some(),
        "weft listen printed {}",
        listener.addr()
    );
    listener
}

/// An honest QUIC dial with a 1 MiB echo, which must succeed.
async fn honest_ok(listener: &ListeningPeer, when: &str) -> Duration {
    let run = honest_dial(listener.addr(), 1 << 20, Duration::from_secs(20)).await;
    assert!(
        run.success(),
        "an honest `weft dial --echo 1048576` over QUIC {when} failed after {:.2} s: {run:?}",
        run.elapsed.as_secs_f64()
    );
    run.elapsed
}

fn assert_in_budget(listener: &mut ListeningPeer, before: u64, peak: u64, attack: &str) {
    assert!(
        listener.is_running(),
        "weft listen exited under {attack}:\n{}",
        listener.stderr()
    );
    let growth = peak.saturating_sub(before);
    assert!(
        growth < GROWTH_BUDGET_KIB,
        "weft listen's resident memory grew by {:.1} MiB ({:.1} -> {:.1} MiB) under {attack}; \
         the budget is less than {} MiB",
        mib(growth),
        mib(before),
        mib(peak),
        GROWTH_BUDGET_KIB / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_abandoned_handshakes_leaves_room_for_an_honest_peer() {
    /// Initials per second: 256 slots held 5 s each would need only ~52/s.
    const RATE: u32 = 1_000;
    const FLOOD_TIME: Duration = Duration::from_secs(12);
    let mut listener = quic_listener().await;
    let target = listener.quic_socket_addr().expect("a QUIC address");
    let pid = listener.pid().expect("running");
    honest_ok(&listener, "before the flood").await;
    let before = rss_kib(pid).expect("reads RSS");
    let sampler = RssSampler::start(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooding = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        tokio::task::spawn_blocking(move || flood(target, 64, RATE, FLOOD_TIME, &stop, &sent))
    };
    // Long enough for every slot the flood can take to be taken (and held).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = honest_ok(&listener, "during the flood").await;
    let sent_by_then = sent.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let report = flooding.await.expect("the flood thread");
    // The abandoned handshakes time out (5 s); the listener must be usable after them.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = honest_ok(&listener, "after the flood").await;
    let peak = sampler.stop().await;
    eprintln!(
        "QUIC handshake flood: {} Initials sent ({} failed locally; {sent_by_then} before the \
         honest dial, which took {:.2} s; {:.2} s after the flood); weft listen {:.1} -> peak \
         {:.1} MiB",
        report.sent,
        report.failed,
        during.as_secs_f64(),
        after.as_secs_f64(),
        mib(before),
        mib(peak),
    );
    assert!(
        sent_by_then > 512,
        "only {sent_by_then} Initials were sent before the honest dial: fewer than twice the \
         listener's 256 handshake slots, so the flood proved nothing"
    );
    assert_in_budget(&mut listener, before, peak, "a handshake flood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_streams_on_one_quic_connection_leaves_room_for_an_honest_peer() {
    const STREAMS: usize = 3_000;
    const FLOOD_TIME: Duration = Duration::from_secs(15);
    let mut listener = quic_listener().await;
    let target = listener.quic_socket_addr().expect("a QUIC address");
    let pid = listener.pid().expect("running");
    honest_ok(&listener, "before the flood").await;
    let before = rss_kib(pid).expect("reads RSS");
    let sampler = RssSampler::start(pid);

    let conn = RawConn::connect_quic(target)
        .await
        .expect("the attacker connects over QUIC");
    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut held = tokio::task::JoinSet::new();
    let started = Instant::now();
    let mut opened = 0;
    while opened < STREAMS && started.elapsed() < FLOOD_TIME {
        // Beyond the listener's stream credit, opening waits: that is the limit.
        let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(2), conn.open()).await
        else {
            break;
        };
        opened += 1;
        let (accepted, refused) = (Arc::clone(&accepted), Arc::clone(&refused));
        held.spawn(async move {
            match propose(&mut stream, "/echo/1.0.0", Duration::from_secs(10)).await {
                Answer::Accepted => {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        stream.write_all(&[0x42; 16 * 1024]),
                    )
                    .await;
                }
                Answer::Na | Answer::Failed(_) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Hold the stream, never read.
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(stream);
        });
    }
    let flood_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = honest_ok(&listener, "during the stream flood").await;
    let peak = sampler.stop().await;
    eprintln!(
        "QUIC stream flood: {opened} streams opened in {:.1} s (connection closed: {}); \
         accepted {}, refused or failed {}; honest dial {:.2} s; weft listen {:.1} -> peak \
         {:.1} MiB",
        flood_time.as_secs_f64(),
        conn.is_closed(),
        accepted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        during.as_secs_f64(),
        mib(before),
        mib(peak),
    );
    assert!(
        opened >= 256,
        "the attacker opened only {opened} streams, not even the listener's 256"
    );
    assert_in_budget(&mut listener, before, peak, "a QUIC stream flood");
    held.abort_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_reading_quic_streams_pin_less_than_the_budget() {
    let mut listener = quic_listener().await;
    let pid = listener.pid().expect("running");
    honest_ok(&listener, "before the attack").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid).expect("reads RSS");
    let sampler = RssSampler::start(pid);

    let plan = AttackPlan::default();
    let mut attacker = Attacker::spawn(listener.addr(), &plan)
        .await
        .expect("the attacker starts");
    attacker
        .ready(Duration::from_secs(30))
        .await
        .expect("every attacking stream opens");
    let (progress, stalled) = attacker
        .settled(Duration::from_secs(2), Duration::from_secs(30))
        .await;
    let during = honest_ok(&listener, "while the windows are pinned").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let peak = sampler.stop().await;
    eprintln!(
        "QUIC window pinning, {} connections x {} streams: attackers wrote {:.1} MiB, {} \
         streams failed, writes stalled: {stalled}; honest dial {:.2} s; weft listen {:.1} -> \
         peak {:.1} MiB",
        plan.connections,
        plan.streams,
        progress.written as f64 / f64::from(1 << 20),
        progress.failed_streams,
        during.as_secs_f64(),
        mib(before),
        mib(peak),
    );
    assert!(
        stalled,
        "the attackers' writes never stalled: the listener keeps taking bytes nobody reads \
         ({:.1} MiB so far)",
        progress.written as f64 / f64::from(1 << 20)
    );
    assert_in_budget(&mut listener, before, peak, "non-reading QUIC streams");
    drop(attacker);
}
