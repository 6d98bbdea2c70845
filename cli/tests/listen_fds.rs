//! `weft listen` under a low file-descriptor limit: the resource manager gives weft
//! half of the limit, so a crowd of idle connections makes it evict stale pending
//! handshakes; honest dials get through during the crowd and after it, and the listener
//! never stops (when a burst of accepts still touches the limit, it backs off).
//!
//! The listener runs in a child process whose descriptor limit is lowered with
//! `prlimit` (util-linux; the workspace forbids the unsafe code a `setrlimit` in this
//! process would take). That a listener which does run out (EMFILE) backs off and keeps
//! accepting is tested in the TCP transport's unit tests and `host/tests/accept.rs`.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Low enough to run out with a few dozen connections, high enough for the runtime.
const NOFILE: u32 = 48;
const WAIT: Duration = Duration::from_secs(30);
const BACKOFF_WARNING: &str = "accept failed; backing off";

fn weft() -> &'static str {
    env!("CARGO_BIN_EXE_weft")
}

async fn spawn_listener() -> (Child, String, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile={NOFILE}:{NOFILE}"))
        .arg("--")
        .arg(weft())
        .arg("listen")
        .env("WEFT_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("prlimit (util-linux) runs weft listen");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("weft listen printed its address in time")
        .expect("stdout readable")
        .expect("an address line");
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
    let dial = Command::new(weft())
        .arg("dial")
        .arg(addr)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, dial)
        .await
        .expect("weft dial finished in time")
        .expect("weft dial ran");
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
    let (mut listener, addr, log) = spawn_listener().await;
    let port: u16 = addr
        .split('/')
        .nth(4)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no tcp port in {addr}"));

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
