//! `weft dial` and `weft perf` errors name the address and the step that failed and
//! say how to fix it: nothing listening on the port, or a `/p2p/` that names another
//! peer than the one listening there.

mod support;

use support::{closed_tcp_port, listen, run_weft, tcp_port};

/// A peer id nobody listens as.
async fn fresh_peer_id() -> String {
    let out = run_weft(&["id"]).await;
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn a_refused_connection_asks_whether_weft_listen_runs_on_that_port() {
    let (_held, port) = closed_tcp_port();
    let addr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", fresh_peer_id().await);
    for command in ["dial", "perf"] {
        let out = run_weft(&[command, &addr, "--timeout-secs", "20"]).await;
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "connecting to {addr} failed: connection refused: is `weft listen` running \
                 on port {port}?"
            )),
            "weft {command}: {err}"
        );
    }
}

#[tokio::test]
async fn a_wrong_peer_id_names_the_peer_that_answered() {
    let (mut listener, printed) = listen(&[]).await;
    let (at, real) = printed.rsplit_once("/p2p/").expect("a /p2p/ address");
    let wrong = fresh_peer_id().await;
    let addr = format!("{at}/p2p/{wrong}");
    let out = run_weft(&["dial", &addr, "--timeout-secs", "20"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("the peer at {at} is {real}, not {wrong}")),
        "port {}: {err}",
        tcp_port(&printed)
    );
    listener.kill().await.unwrap();
}
