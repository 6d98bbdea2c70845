//! Dead links (issue 13): `weft dial --echo 1048576` reaches `weft listen` (shipped
//! defaults on both ends) through a relay that, mid-transfer, stops passing bytes in
//! both directions without closing anything (a NAT mapping dropped, a cable pulled).
//! Both ends must notice within 30 s: `weft dial` exits non-zero with a reason that
//! says the link is dead, and the listener closes the connection, so its open fds
//! return to what they were before the connection.

#[path = "hostile_support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use support::{honest_dial, DialSummary};
use weft_interop_tests::procfs::{open_fds, wait_for_fds};
use weft_interop_tests::{DelayRelay, WeftListen};

/// The bound for noticing a dead link.
const NOTICE: Duration = Duration::from_secs(30);
/// Slack for process start, the handshake and a loaded machine.
const SLACK: Duration = Duration::from_secs(10);
/// The relay dies after this many bytes towards the listener: inside the 1 MiB echo.
const DIE_AFTER: u64 = 512 * 1024;

/// Words a reason for a dead link may use.
fn says_dead_link(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    [
        "keep-alive",
        "keepalive",
        "keep alive",
        "dead",
        "liveness",
        "unresponsive",
        "ping timeout",
        "ping timed out",
    ]
    .iter()
    .any(|w| reason.contains(w))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ends_notice_a_relay_that_stops_passing_bytes() {
    let listener = WeftListen::defaults().spawn().await.unwrap();
    let pid = listener.pid().unwrap();
    // Let the listener finish starting up before counting its fds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fds_before = open_fds(pid).unwrap();
    let relay = DelayRelay::start(listener.socket_addr(), Duration::ZERO)
        .await
        .unwrap();
    relay.stall_after_to_target(DIE_AFTER);
    let addr = listener.addr_via(relay.local_addr());

    let started = Instant::now();
    let (dial, fds) = tokio::join!(
        // `weft dial`'s own overall timeout (60 s by default) must not be what ends it.
        honest_dial(&addr, 1 << 20, Duration::from_secs(60)),
        async {
            // Wait for the connection to show up, then for it to go away.
            let _ = wait_for_fds(pid, Duration::from_secs(10), |n| n > fds_before).await;
            let opened = open_fds(pid).unwrap_or(0);
            let (last, freed) = wait_for_fds(pid, NOTICE + SLACK + Duration::from_secs(5), |n| {
                n <= fds_before
            })
            .await
            .unwrap();
            (opened, last, freed, started.elapsed())
        }
    );
    let (fds_opened, fds_last, freed, freed_after) = fds;
    let summary = DialSummary::of(&dial);
    let reason = summary.error.clone().unwrap_or_else(|| dial.stderr.clone());
    eprintln!(
        "dead link after {} KiB: weft dial exited {:?} after {:.1} s with {reason:?}; listener \
         fds {fds_before} -> {fds_opened} -> {fds_last} (back: {freed}, after {:.1} s)",
        relay.bytes_to_target() / 1024,
        dial.status,
        dial.elapsed.as_secs_f64(),
        freed_after.as_secs_f64(),
    );
    assert!(
        relay.is_stalled(),
        "the relay never stalled: the echo ended first"
    );
    assert!(
        !dial.success(),
        "weft dial succeeded across a dead link: {dial:?}"
    );
    assert!(
        dial.status.is_some() && dial.elapsed < NOTICE + SLACK,
        "weft dial took {:.1} s to give up on a dead link (status {:?}); the bound is {} s \
         (+{} s slack)",
        dial.elapsed.as_secs_f64(),
        dial.status,
        NOTICE.as_secs(),
        SLACK.as_secs()
    );
    assert!(
        says_dead_link(&reason),
        "weft dial failed on a dead link with a reason that does not say so: {reason:?}"
    );
    assert!(
        freed,
        "weft listen still holds the dead connection: {fds_last} fds open {:.1} s after the \
         dial started, {fds_before} before it",
        freed_after.as_secs_f64()
    );
    // The listener still serves everyone else.
    let after = honest_dial(listener.addr(), 1 << 20, Duration::from_secs(10)).await;
    assert!(
        after.success(),
        "after the dead link, an honest direct dial failed: {after:?}"
    );
}
