//! `weft dial` to an address without `/p2p/` learns the peer id from the handshake.

mod support;

use support::{listen, run_weft, tcp_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_without_a_peer_id_prints_the_peer_the_handshake_proved() {
    let (mut listener, addr) = listen(&[]).await;
    let peer = addr
        .rsplit_once("/p2p/")
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| panic!("no /p2p/ in {addr}"));
    let bare = format!("/ip4/127.0.0.1/tcp/{}", tcp_port(&addr));
    let out = run_weft(&["dial", &bare, "--ping", "1"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "weft dial {bare} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "connected to   {peer} (learned from the handshake)"
        )),
        "{stdout}"
    );
    // With --json: the same peer in the interop report format.
    let out = run_weft(&["--json", "dial", &bare]).await;
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["remote_peer"], peer.as_str());
    assert!(report.get("peer_learned").is_none(), "{report}");
    listener.kill().await.unwrap();
}
