//! What the `weft` command's tests share: the binary, starting `weft listen` (under a
//! lowered descriptor limit if asked), reading the address it prints, running a
//! `weft dial` that must succeed.
#![allow(dead_code)] // each test file uses part of it

use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long any one step of a test may take.
pub const WAIT: Duration = Duration::from_secs(60);

/// The `weft` binary under test.
pub fn weft() -> &'static str {
    env!("CARGO_BIN_EXE_weft")
}

/// `weft listen ARGS`, run under `prlimit --nofile=N` (util-linux; the workspace
/// forbids the unsafe code a `setrlimit` here would take) when `nofile` is given, with
/// stdout piped and stderr as `stderr` says.
pub fn listen_command(args: &[&str], nofile: Option<u32>, stderr: Stdio) -> Command {
    let mut command = match nofile {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg("--").arg(weft());
            c
        }
        None => Command::new(weft()),
    };
    command
        .arg("listen")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true);
    command
}

/// Spawns `command` (a `weft listen`) and waits for the first address it prints.
pub async fn spawn_listener(mut command: Command) -> (Child, String) {
    let mut child = command.spawn().expect("weft listen starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let addr = tokio::time::timeout(WAIT, BufReader::new(stdout).lines().next_line())
        .await
        .expect("weft listen printed its address in time")
        .expect("stdout readable")
        .expect("an address line");
    (child, addr)
}

/// `weft listen ARGS` with stderr discarded: the process and its address.
pub async fn listen(args: &[&str]) -> (Child, String) {
    spawn_listener(listen_command(args, None, Stdio::null())).await
}

/// The TCP port of a printed `/ip4/.../tcp/PORT/p2p/...` address.
pub fn tcp_port(addr: &str) -> u16 {
    addr.split('/')
        .nth(4)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no tcp port in {addr}"))
}

/// A TCP port on 127.0.0.1 that refuses connections while the socket lives: bound,
/// never listened on, so no listener started later is handed the same port.
pub fn closed_tcp_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket.bind(([127, 0, 0, 1], 0).into()).expect("binds");
    let port = socket.local_addr().expect("bound").port();
    (socket, port)
}

/// Runs `weft ARGS` to its end, within [`WAIT`].
pub async fn run_weft(args: &[&str]) -> Output {
    let run = Command::new(weft())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(WAIT, run)
        .await
        .unwrap_or_else(|_| panic!("weft {args:?} finished in time"))
        .unwrap_or_else(|e| panic!("weft {args:?} ran: {e}"))
}

/// Runs `weft dial ADDR EXTRA` and asserts that it succeeded; `context` is shown
/// with a failure (a listener's log, say).
pub async fn dial_ok(addr: &str, extra: &[&str], when: &str, context: &str) {
    let mut args = vec!["dial", addr];
    args.extend_from_slice(extra);
    let out = run_weft(&args).await;
    assert!(
        out.status.success(),
        "weft dial failed {when}:\n{}\n{}\n{context}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}
