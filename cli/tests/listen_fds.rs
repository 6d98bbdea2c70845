//! `weft listen` under a low file-descriptor limit: the resource manager gives weft
//! half of the limit, so a crowd of idle connections makes it evict stale pending
//! handshakes; honest dials get through during the crowd and after it, and the listener
//! never stops (when a burst of accepts still touches the limit, it backs off).
//!
//! The listener runs in a child process whose descriptor limit is lowered with
//! `prlimit` (util-linux; the workspace forbids the unsafe code a `setrlimit` in this
//! process would take). That a listener which does run out (EMFILE) backs off and keeps
//! accepting is tested in the TCP transport's unit tests and `host/tests/accept.rs`.

mod support;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use support::{listen_command, run_weft, spawn_listener, tcp_port, WAIT};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Child;

/// Low enough to run out with a few dozen connections, high enough for the runtime.
const NOFILE: u32 = 48;
const BACKOFF_WARNING: &str = "accept failed; backing off";

async fn spawn_listener_logged() -> (Child, String, Arc<Mutex<Vec<String>>>) {
    let mut command = listen_command(&[], Some(NOFILE), Stdio::piped());
    command.env("WEFT_LOG", "info");
    let (mut child, addr) = spawn_listener(command).await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("piped stderr");
    let sink = log.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    (child, addr, log)
}

fn count(log: &Mutex<Vec<String>>, needle: &str) -> usize {
    log.lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

/// Runs `weft dial ADDR` and asserts that it succeeds.
async fn honest_dial(addr: &str, when: &str, log: &Mutex<Vec<String>>) {
    let out = run_weft(&["dial", addr]).await;
    assert!(
        out.status.success(),
        "weft dial failed {when}:\n{}\n{}\nlistener log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log.lock().unwrap().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_under_a_low_fd_limit_evicts_and_keeps_serving() {
    let (mut listener, addr, log) = spawn_listener_logged().await;
    let port = tcp_port(&addr);

    // Four times the process's limit in idle connections: without the resource
    // manager's fd budget every one would hold a descriptor until its handshake timed
    // out, and accept would fail with EMFILE.
    let mut idle = Vec::new();
    for _ in 0..4 * NOFILE {
        let socket = tokio::time::timeout(WAIT, TcpStream::connect(("127.0.0.1", port)))
            .await
            .expect("connect in time")
            .expect("connect");
        idle.push(socket);
    }
    honest_dial(&addr, "while the idle connections were held", &log).await;
    assert!(
        listener.try_wait().unwrap().is_none(),
        "the listener exited under the crowd"
    );
    drop(idle);
    honest_dial(&addr, "after the idle connections closed", &log).await;
    assert!(
        listener.try_wait().unwrap().is_none(),
        "the listener is the same running process"
    );
    // Sockets accepted in a burst hold descriptors until their admission refuses or
    // evicts, so the process may still touch its limit: then the accept loop backs off
    // with at most one warning every 10 s (this run takes well under 30 s).
    let warnings = count(&log, BACKOFF_WARNING);
    assert!(
        warnings <= 3,
        "{warnings} warnings:\n{}",
        log.lock().unwrap().join("\n")
    );
    assert_eq!(
        count(&log, "listener failed"),
        0,
        "the host saw an accept error"
    );
    listener.kill().await.unwrap();
}
