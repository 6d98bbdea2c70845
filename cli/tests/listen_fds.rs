//! `weft listen` keeps listening when it runs out of file descriptors.
//!
//! The listener runs in a child process whose descriptor limit is lowered with
//! `prlimit` (util-linux; the workspace forbids the unsafe code a `setrlimit` in this
//! process would take). The test fills its descriptors with idle connections until its
//! accept fails, closes them, and shows that an honest `weft dial` gets through and the
//! listener is still the same running process.

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
const RECOVERED: &str = "accepting again";

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

async fn wait_for_log(log: &Mutex<Vec<String>>, needle: &str) {
    tokio::time::timeout(WAIT, async {
        while count(log, needle) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no {needle:?} in the log:\n{}",
            log.lock().unwrap().join("\n")
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_survives_running_out_of_file_descriptors() {
    let (mut listener, addr, log) = spawn_listener().await;
    let port: u16 = addr
        .split('/')
        .nth(4)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no tcp port in {addr}"));

    // Idle connections: each one the listener accepts holds a descriptor until its
    // handshake times out; past the limit the kernel still completes the TCP handshake
    // (the backlog), so our connects succeed while the listener's accept fails.
    let mut idle = Vec::new();
    for _ in 0..4 * NOFILE {
        let socket = tokio::time::timeout(WAIT, TcpStream::connect(("127.0.0.1", port)))
            .await
            .expect("connect in time")
            .expect("connect");
        idle.push(socket);
    }
    wait_for_log(&log, BACKOFF_WARNING).await;
    assert!(
        listener.try_wait().unwrap().is_none(),
        "the listener exited out of descriptors"
    );

    // Free its descriptors: the idle connections close, the listener accepts again.
    drop(idle);
    let dial = Command::new(weft())
        .arg("dial")
        .arg(&addr)
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
        "weft dial failed after the fd exhaustion:\n{}\n{}\nlistener log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log.lock().unwrap().join("\n")
    );
    wait_for_log(&log, RECOVERED).await;
    assert!(
        listener.try_wait().unwrap().is_none(),
        "the listener is the same running process"
    );
    // At most one warning every 10 s, however often the listener flips between
    // failing and accepting (this run takes well under 30 s).
    let warnings = count(&log, BACKOFF_WARNING);
    assert!(
        (1..=3).contains(&warnings),
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
