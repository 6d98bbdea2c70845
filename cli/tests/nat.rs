//! `weft nat` asks three `weft listen --autonat-server` processes about its
//! addresses on 127.0.0.1 (loopback taken as public on every side) and prints a
//! verdict per address: its listen address reachable, a port nobody listens on
//! unreachable. Without the override, loopback is not public.

mod support;

use support::{closed_tcp_port, listen, run_weft};

const LOOPBACK_TCP: &str = "/ip4/127.0.0.1/tcp/0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_nat_prints_a_verdict_per_address() {
    let mut servers = Vec::new();
    for _ in 0..3 {
        let server = listen(&[
            "--listen",
            LOOPBACK_TCP,
            "--autonat-server",
            "--public",
            "loopback",
        ])
        .await;
        servers.push(server);
    }
    let (_held, dead_port) = closed_tcp_port();
    let dead = format!("/ip4/127.0.0.1/tcp/{dead_port}");
    let mut args = vec![
        "--json",
        "nat",
        "--listen",
        LOOPBACK_TCP,
        "--external",
        &dead,
        "--public",
        "loopback",
    ];
    for (_, addr) in &servers {
        args.extend(["--server", addr.as_str()]);
    }
    let out = run_weft(&args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["servers"], 3, "{report}");
    let addrs = report["addrs"].as_array().unwrap();
    let verdict = |pick: &dyn Fn(&str) -> bool| {
        addrs
            .iter()
            .find(|a| pick(a["addr"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("no such address in {report}"))
            .clone()
    };
    let listened = verdict(&|a| a != dead);
    assert_eq!(listened["reachability"], "reachable", "{report}");
    assert_eq!(listened["successes"], 3, "{report}");
    let dead = verdict(&|a| a == dead);
    assert_eq!(dead["reachability"], "unreachable", "{report}");

    // The real internet's classifier: loopback is never public.
    let mut args = vec!["nat", "--listen", LOOPBACK_TCP];
    for (_, addr) in &servers {
        args.extend(["--server", addr.as_str()]);
    }
    let out = run_weft(&args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("unknown: not a public address"), "{stdout}");
    assert!(!stdout.contains("  reachable"), "{stdout}");
    for (mut child, _) in servers {
        child.kill().await.unwrap();
    }
}
