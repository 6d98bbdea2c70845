//! `weft listen` on QUIC, and `weft dial` / `weft perf` to a `/quic-v1` address.

mod support;

use support::{listen, run_weft};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_and_perf_run_over_quic() {
    let (mut listener, addr) =
        listen(&["--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--perf"]).await;
    assert!(
        addr.contains("/udp/") && addr.contains("/quic-v1/p2p/"),
        "{addr}"
    );
    let peer = addr
        .rsplit_once("/p2p/")
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| panic!("no /p2p/ in {addr}"));

    let out = run_weft(&["--json", "dial", &addr, "--ping", "1", "--echo", "1048576"]).await;
    assert!(
        out.status.success(),
        "weft dial {addr} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["remote_peer"], peer.as_str());
    assert_eq!(report["security"], "/tls/1.0.0");
    assert_eq!(report["muxer"], "quic-v1");
    assert_eq!(report["echo_bytes"], 1048576);

    let out = run_weft(&[
        "perf",
        &addr,
        "--upload",
        "1048576",
        "--download",
        "1048576",
    ])
    .await;
    assert!(
        out.status.success(),
        "weft perf {addr} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    listener.kill().await.expect("stops the listener");
}
