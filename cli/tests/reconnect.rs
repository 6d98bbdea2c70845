//! `weft dial --reconnect N` to a `weft listen` over QUIC: the first connection is a
//! full handshake, every reconnect resumes and has its early ping accepted.

mod support;

use support::{listen, run_weft};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_resume_and_send_their_ping_in_0rtt() {
    let (mut listener, addr) = listen(&["--listen", "/ip4/127.0.0.1/udp/0/quic-v1"]).await;

    let out = run_weft(&["--json", "dial", &addr, "--reconnect", "3"]).await;
    assert!(
        out.status.success(),
        "weft dial {addr} --reconnect 3 failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let attempts = report["reconnects"].as_array().expect("a list of attempts");
    assert_eq!(attempts.len(), 4, "the first connection and 3 reconnects");
    assert_eq!(attempts[0]["attempt"], 0);
    assert_eq!(attempts[0]["resumed"], false, "{attempts:?}");
    assert_eq!(attempts[0]["early_data"], "none", "{attempts:?}");
    for (i, a) in attempts.iter().enumerate().skip(1) {
        assert_eq!(a["attempt"], i);
        assert_eq!(a["resumed"], true, "{a}");
        assert_eq!(a["early_data"], "accepted", "{a}");
    }
    for a in attempts {
        let first_byte = a["first_byte_ms"].as_f64().expect("a time");
        let rtt = a["rtt_ms"].as_f64().expect("an RTT");
        let rtts = a["rtts"].as_f64().expect("a count");
        assert!(first_byte > 0.0 && rtt > 0.0, "{a}");
        assert!(
            (rtts - first_byte / rtt).abs() < 1e-6 * rtts.max(1.0),
            "{a}"
        );
    }

    // The human form names each attempt.
    let out = run_weft(&["dial", &addr, "--reconnect", "1"]).await;
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("first ") && text.contains("full handshake"),
        "{text}"
    );
    assert!(
        text.contains("reconnect 1") && text.contains("resumed, 0-RTT accepted"),
        "{text}"
    );
    listener.kill().await.expect("stops the listener");
}
