//! The reference peers against each other: go-libp2p, js-libp2p and rust-libp2p, every
//! ordered pair (dialer -> listener), Noise and TLS, 1 MiB through `/echo/1.0.0`.
//!
//! Proves that the three peer programs follow the contract and that the harness
//! (build once, spawn, parse) works; weft joins the same matrix later. Each test runs
//! its Noise and TLS cells concurrently. Without `go`/`node`/`npm` a test prints
//! `skipped: ...`; under `CI=true` it fails instead.

use weft_interop_tests::{
    require_impls, run_dialer, DialReport, Impl, ListeningPeer, Security, DEFAULT_ECHO_BYTES,
};

const EXPECTED_PROTOCOLS: [&str; 3] = ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/echo/1.0.0"];

/// One cell: `listener` listens with `security`, `dialer` dials it; returns the
/// report after checking it against the contract.
async fn cell(dialer: Impl, listener: Impl, security: Security) -> Result<DialReport, String> {
    let name = format!("{dialer} -> {listener} over {security}");
    let peer = ListeningPeer::spawn(listener, security)
        .await
        .map_err(|e| format!("{name}: listener: {e}"))?;
    let report = run_dialer(dialer, peer.addr(), security, DEFAULT_ECHO_BYTES)
        .await
        .map_err(|e| format!("{name}: {e}\nlistener stderr:\n{}", peer.stderr()))?;
    let check = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("{name}: {what}: {report:?}"))
        }
    };
    check(report.remote_peer == peer.peer_id(), "wrong remote peer")?;
    check(
        report.agent_version == listener.agent_version(),
        "wrong agent version",
    )?;
    for p in EXPECTED_PROTOCOLS {
        check(
            report.protocols.iter().any(|q| q == p),
            &format!("identify lacks {p}"),
        )?;
    }
    check(report.security == security.protocol_id(), "wrong security")?;
    check(report.muxer == "/yamux/1.0.0", "wrong muxer")?;
    check(report.echo_bytes == DEFAULT_ECHO_BYTES, "wrong echo size")?;
    check(
        report.rtt_ms.is_finite() && report.rtt_ms >= 0.0,
        "bad ping rtt",
    )?;
    eprintln!(
        "{name}: ok, rtt {:.3} ms, echoed {} bytes",
        report.rtt_ms, report.echo_bytes
    );
    Ok(report)
}

/// Runs the Noise and TLS cells of one ordered pair concurrently.
async fn pair(dialer: Impl, listener: Impl) {
    if !require_impls(&[dialer, listener]) {
        return;
    }
    let (noise, tls) = tokio::join!(
        cell(dialer, listener, Security::Noise),
        cell(dialer, listener, Security::Tls)
    );
    let failures: Vec<String> = [noise, tls].into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

macro_rules! pair_test {
    ($name:ident, $dialer:expr, $listener:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            pair($dialer, $listener).await;
        }
    };
}

pair_test!(go_dials_rust, Impl::Go, Impl::Rust);
pair_test!(rust_dials_go, Impl::Rust, Impl::Go);
pair_test!(go_dials_js, Impl::Go, Impl::Js);
pair_test!(js_dials_go, Impl::Js, Impl::Go);
pair_test!(js_dials_rust, Impl::Js, Impl::Rust);
pair_test!(rust_dials_js, Impl::Rust, Impl::Js);
