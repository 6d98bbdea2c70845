//! `weft listen` serves `/perf/1.0.0` only with `--perf`, and then within its bounds.

mod support;

use support::{listen, run_weft};

async fn perf(addr: &str, download: u64) -> std::process::Output {
    let download = download.to_string();
    run_weft(&["perf", addr, "--upload", "1000", "--download", &download]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_is_off_unless_asked_for_and_bounded_when_on() {
    let (mut off, addr) = listen(&[]).await;
    let out = perf(&addr, 1 << 20).await;
    assert!(!out.status.success(), "perf served without --perf");
    // The proposal is lazy: the request leaves with it, the listener answers `na` and
    // then resets the stream, whose remaining bytes are no protocol id. Which of the
    // two the client meets first depends on timing; both say perf was refused.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("accepted none of the proposed protocols")
            || err.contains("was reset by the remote"),
        "{err}"
    );
    off.kill().await.unwrap();

    let (mut on, addr) = listen(&["--perf"]).await;
    let out = perf(&addr, 1 << 20).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without /p2p/ too: the handshake says who answered.
    let bare = addr.rsplit_once("/p2p/").map_or(addr.as_str(), |(a, _)| a);
    let out = perf(bare, 1 << 20).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Over the default largest download (1 GiB): refused before a byte is sent.
    let out = perf(&addr, (1 << 30) + 1).await;
    assert!(!out.status.success(), "a request over 1 GiB was served");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("received 0"), "{err}");
    assert!(
        on.try_wait().unwrap().is_none(),
        "the listener is still running"
    );
    on.kill().await.unwrap();
}
