//! `weft listen --max-memory / --max-fds`: the one knob of the resource manager, as a
//! user sets it. A crowd of idle connections far beyond `--max-fds` leaves the
//! listener's open descriptors within the limit (stale pending handshakes are evicted),
//! an honest dial gets through during the crowd, and a value that cannot work is
//! refused with a clear error before anything listens.

mod support;

use std::time::Duration;
use support::{dial_ok, listen, run_weft, tcp_port, WAIT};
use tokio::net::TcpStream;

const MAX_FDS: usize = 12;
const CROWD: usize = 200;

/// Descriptors the process `pid` has open now.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/fd: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_fds_bounds_the_listeners_descriptors_and_honest_peers_get_in() {
    let (mut listener, addr) = listen(&["--max-fds", &MAX_FDS.to_string()]).await;
    let pid = listener.id().expect("the listener runs");
    let port = tcp_port(&addr);
    let baseline = open_fds(pid);

    let mut idle = Vec::new();
    let mut most = baseline;
    for _ in 0..CROWD {
        let socket = tokio::time::timeout(WAIT, TcpStream::connect(("127.0.0.1", port)))
            .await
            .expect("connect in time")
            .expect("connect");
        idle.push(socket);
        most = most.max(open_fds(pid));
    }
    dial_ok(&addr, &[], "during the crowd", "").await;
    for _ in 0..20 {
        most = most.max(open_fds(pid));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Each accepted socket holds a descriptor only until admission evicts a stale
    // one for it or refuses it; a few may be in between at any moment.
    assert!(
        most <= baseline + MAX_FDS + 4,
        "{most} descriptors open with --max-fds {MAX_FDS} (baseline {baseline})"
    );
    assert!(
        listener.try_wait().unwrap().is_none(),
        "the listener exited under the crowd"
    );
    drop(idle);
    listener.kill().await.unwrap();
}

#[tokio::test]
async fn knobs_that_cannot_work_are_refused_with_a_clear_error() {
    for (args, says) in [
        (&["--max-memory", "1MiB"][..], "too little memory"),
        (&["--max-memory", "lots"][..], "not a memory size"),
        (&["--max-fds", "100000000"][..], "open-files limit"),
    ] {
        let mut command = vec!["listen"];
        command.extend_from_slice(args);
        let out = run_weft(&command).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(out.stdout.is_empty(), "{args:?} listened anyway");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
