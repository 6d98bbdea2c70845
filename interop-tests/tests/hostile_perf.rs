//! Perf abuse (issue 13): `/perf/1.0.0` is off in `weft listen` unless `--perf` is
//! given (multistream-select answers `na`, identify does not advertise it), and with
//! `--perf` a request for 2^60 bytes is refused or cut short: the stream ends within
//! 30 s, and the listener's memory stays within budget.

#[path = "hostile_support/mod.rs"]
mod support;

use futures::AsyncWriteExt;
use std::time::{Duration, Instant};
use support::GROWTH_BUDGET_KIB;
use support::{drain, honest_dial, propose, Answer, DialSummary, RawConn, RssSampler};
use weft_interop_tests::procfs::{mib, rss_kib};
use weft_interop_tests::WeftListen;

const PERF: &str = "/perf/1.0.0";
const ABSURD: u64 = 1 << 60;
/// How long the listener may keep sending an absurd download before it must stop.
const BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_listen_does_not_offer_perf_by_default() {
    let listener = WeftListen::defaults().spawn().await.unwrap();
    let conn = RawConn::connect(listener.socket_addr()).await.unwrap();
    let mut stream = conn.open().await.unwrap();
    let answer = propose(&mut stream, PERF, Duration::from_secs(5)).await;
    let dial = honest_dial(listener.addr(), 0, Duration::from_secs(10)).await;
    let protocols = DialSummary::of(&dial).protocols;
    eprintln!(
        "weft listen without --perf: {PERF} answered {answer:?}; identify lists {protocols:?}"
    );
    assert!(dial.success(), "an honest dial failed: {dial:?}");
    assert_eq!(
        answer,
        Answer::Na,
        "weft listen without --perf answered a {PERF} proposal with {answer:?}, not `na`"
    );
    assert!(
        !protocols.iter().any(|p| p == PERF),
        "weft listen without --perf advertises {PERF} through identify: {protocols:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_listen_with_perf_bounds_an_absurd_download() {
    let mut listener = WeftListen::defaults().arg("--perf").spawn().await.unwrap();
    let pid = listener.pid().unwrap();
    let before = rss_kib(pid).unwrap();
    let sampler = RssSampler::start(pid);
    let conn = RawConn::connect(listener.socket_addr()).await.unwrap();
    let mut stream = conn.open().await.unwrap();
    let answer = propose(&mut stream, PERF, Duration::from_secs(5)).await;
    assert_eq!(
        answer,
        Answer::Accepted,
        "weft listen --perf refused {PERF}"
    );
    let started = Instant::now();
    stream.write_all(&ABSURD.to_be_bytes()).await.unwrap();
    stream.close().await.unwrap();
    let (received, ended) = drain(&mut stream, BOUND).await;
    let took = started.elapsed();
    let dial = honest_dial(listener.addr(), 1 << 20, Duration::from_secs(10)).await;
    let peak = sampler.stop().await;
    eprintln!(
        "perf request for 2^60 bytes: {:.1} MiB received in {:.1} s, ended {ended:?}; honest \
         dial ok {}; weft listen {:.1} -> peak {:.1} MiB",
        received as f64 / (1 << 20) as f64,
        took.as_secs_f64(),
        dial.success(),
        mib(before),
        mib(peak)
    );
    assert!(
        listener.is_running(),
        "weft listen exited:\n{}",
        listener.stderr()
    );
    assert!(
        !matches!(&ended, Err(e) if e.starts_with("still open")),
        "weft listen --perf was still sending after {BOUND:?} ({:.1} MiB) for a request of \
         2^60 bytes: the download is not bounded",
        received as f64 / (1 << 20) as f64
    );
    assert!(dial.success(), "an honest dial failed: {dial:?}");
    assert!(
        peak.saturating_sub(before) < GROWTH_BUDGET_KIB,
        "weft listen's resident memory grew by {:.1} MiB",
        mib(peak.saturating_sub(before))
    );
}
