//! File-descriptor exhaustion (issue 13): `weft listen`, shipped defaults, runs with
//! its open-files limit lowered to 256 (`prlimit`, as the workspace forbids unsafe
//! code), and 400 idle sockets from 127.0.0.2..=127.0.0.40 are held open against it.
//! An honest `weft dial` must still get through, the listener must keep listening
//! (accept again once the attackers close), and its memory must stay within budget.

#[path = "hostile_support/mod.rs"]
mod support;

use std::time::Duration;
use support::{hold_sockets, honest_dial, DialSummary, RssSampler, GROWTH_BUDGET_KIB};
use weft_interop_tests::procfs::{fd_limit, mib, open_fds, rss_kib};
use weft_interop_tests::WeftListen;

const FD_LIMIT: u64 = 256;
const SOCKETS: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_listen_under_a_256_fd_limit_survives_400_idle_sockets() {
    let mut listener = WeftListen::defaults()
        .nofile(FD_LIMIT)
        .spawn()
        .await
        .unwrap();
    let pid = listener.pid().unwrap();
    assert_eq!(fd_limit(pid).unwrap(), FD_LIMIT, "prlimit did not apply");
    let warm = honest_dial(listener.addr(), 0, Duration::from_secs(10)).await;
    assert!(
        warm.success(),
        "honest dial before the attack failed: {warm:?}"
    );
    let before = rss_kib(pid).unwrap();
    let sampler = RssSampler::start(pid);

    let held = hold_sockets(listener.socket_addr(), SOCKETS, 39, 0, b"").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fds_during = open_fds(pid).unwrap_or(0);
    let during = honest_dial(listener.addr(), 0, Duration::from_secs(10)).await;
    let during_summary = DialSummary::of(&during);
    let peak = sampler.stop().await;
    eprintln!(
        "fd exhaustion: {} sockets held against a {FD_LIMIT}-fd listener ({fds_during} fds \
         open); honest dial during the attack ok {} connect {:?} ms (run {:.2} s) {:?}",
        held.len(),
        during.success(),
        during_summary.connect_ms,
        during.elapsed.as_secs_f64(),
        during_summary.error,
    );

    let held_count = held.len();
    drop(held);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let running = listener.is_running();
    let after = honest_dial(listener.addr(), 1 << 20, Duration::from_secs(10)).await;
    eprintln!(
        "after the attackers closed: listener running {running}, honest dial ok {} ({:.2} s) {:?}",
        after.success(),
        after.elapsed.as_secs_f64(),
        DialSummary::of(&after).error
    );
    assert!(running, "weft listen exited:\n{}", listener.stderr());
    assert!(
        held_count >= SOCKETS * 9 / 10,
        "only {held_count} of {SOCKETS} attacking sockets connected: the attack did not happen"
    );
    assert!(
        after.success(),
        "after {SOCKETS} sockets against a {FD_LIMIT}-fd limit closed, weft listen no longer \
         accepts: an honest dial failed after {:.2} s: {:?}\nlistener stderr:\n{}",
        after.elapsed.as_secs_f64(),
        DialSummary::of(&after).error,
        listener.stderr()
    );
    assert!(
        during.success(),
        "with {SOCKETS} idle sockets held against a {FD_LIMIT}-fd limit, an honest dial \
         failed after {:.2} s: {:?}",
        during.elapsed.as_secs_f64(),
        during_summary.error
    );
    assert!(
        peak.saturating_sub(before) < GROWTH_BUDGET_KIB,
        "weft listen's resident memory grew by {:.1} MiB",
        mib(peak.saturating_sub(before))
    );
}
