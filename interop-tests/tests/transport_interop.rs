//! The test-plans transport-interop matrix, run here the way libp2p/test-plans runs
//! it (minus docker): for every dialer x listener pair with weft on at least one side
//! (weft, rust-libp2p, go-libp2p, js-libp2p), over TCP crossing Noise and TLS with
//! yamux, and over QUIC v1 (secure and multiplexed on its own: test-plans sets neither
//! `security` nor `muxer` for it), each test gets its own real `redis-server`, a listener and a dialer started
//! with the contract's environment variables, and a timeout. The dialer must exit 0
//! with exactly one JSON line (`weft_interop_tests::transport_interop::DialerReport`).
//!
//! Results: `target/interop/transport-interop.md` (with the dialer's timings) and the
//! root README's table between its `transport-interop` markers (pass/fail only, so
//! an all-green run leaves it unchanged). Child logs: `target/interop/logs/`.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use weft_interop_tests::transport_interop::DialerReport;
use weft_interop_tests::{paths, prepare_async, require_impls, running_in_ci, tool_available};
use weft_interop_tests::{Impl, PeerCommand};

/// `test_timeout_seconds` given to both participants.
const TEST_TIMEOUT_SECS: u64 = 60;
/// The runner's own bound on one test (the participants' timeout plus slack).
const RUNNER_TIMEOUT: Duration = Duration::from_secs(TEST_TIMEOUT_SECS + 15);
/// How long redis-server may take to accept connections.
const REDIS_START: Duration = Duration::from_secs(10);
/// Ports tried before a redis-server start counts as failed.
const REDIS_TRIES: usize = 3;
/// The stacks every pair runs: TCP x {noise, tls} x yamux, and QUIC.
const CELLS: [Cell; 3] = [Cell::Tcp("noise"), Cell::Tcp("tls"), Cell::Quic];
const README_BEGIN: &str = "<!-- transport-interop:begin -->";
const README_END: &str = "<!-- transport-interop:end -->";

/// One cell's stack, as test-plans names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    /// `transport=tcp`, this `security`, `muxer=yamux`.
    Tcp(&'static str),
    /// `transport=quic-v1`, no `security` or `muxer`.
    Quic,
}

impl Cell {
    fn transport(self) -> &'static str {
        match self {
            Cell::Tcp(_) => "tcp",
            Cell::Quic => "quic-v1",
        }
    }

    fn security(self) -> Option<&'static str> {
        match self {
            Cell::Tcp(security) => Some(security),
            Cell::Quic => None,
        }
    }

    fn muxer(self) -> Option<&'static str> {
        match self {
            Cell::Tcp(_) => Some("yamux"),
            Cell::Quic => None,
        }
    }

    /// `tcp, noise, yamux` or `quic-v1`, as in test-plans' test names.
    fn label(self) -> String {
        [Some(self.transport()), self.security(), self.muxer()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One side of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Participant {
    Weft,
    Peer(Impl),
}

impl Participant {
    fn name(self) -> &'static str {
        match self {
            Participant::Weft => "weft",
            Participant::Peer(imp) => imp.name(),
        }
    }
}

/// A program that speaks the contract with no arguments beyond `leading`.
#[derive(Debug, Clone)]
struct Program {
    program: PathBuf,
    leading: Vec<std::ffi::OsString>,
}

async fn program_of(participant: Participant) -> Program {
    match participant {
        Participant::Weft => Program {
            program: PathBuf::from(env!("CARGO_BIN_EXE_weft-transport-interop")),
            leading: Vec::new(),
        },
        Participant::Peer(imp) => {
            let PeerCommand {
                program,
                mut leading_args,
                ..
            } = prepare_async(imp)
                .await
                .unwrap_or_else(|e| panic!("prepare {imp}: {e}"));
            leading_args.push("transport-interop".into());
            Program {
                program,
                leading: leading_args,
            }
        }
    }
}

/// A `redis-server` on 127.0.0.1, killed on drop.
struct RedisServer {
    /// Held for its `kill_on_drop`.
    _child: Child,
    addr: SocketAddr,
}

impl RedisServer {
    /// Starts one, on a fresh port each try: the port is free when read, but another
    /// test's listener may take it before redis binds it.
    async fn start() -> Self {
        let mut errors = Vec::new();
        for _ in 0..REDIS_TRIES {
            match Self::try_start().await {
                Ok(server) => return server,
                Err(e) => errors.push(e),
            }
        }
        panic!("redis-server did not start: {}", errors.join("; "));
    }

    async fn try_start() -> Result<Self, String> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        let pid = child.id().ok_or("redis-server exited at once")?;
        let ready = async {
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("redis-server on port {port} exited ({status})"));
                }
                // Whatever took the port (another test's redis, say) may answer too.
                if is_redis_of(addr, pid).await {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(REDIS_START, ready)
            .await
            .map_err(|_| format!("redis-server on port {port} not ready in {REDIS_START:?}"))??;
        Ok(RedisServer {
            _child: child,
            addr,
        })
    }
}

/// Whether the redis server at `addr` is the process `pid` (its `INFO server` says
/// `process_id:<pid>`).
async fn is_redis_of(addr: SocketAddr, pid: u32) -> bool {
    use tokio::io::AsyncWriteExt;
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    if stream.write_all(b"INFO server\r\n").await.is_err() {
        return false;
    }
    let wanted = format!("process_id:{pid}\r\n");
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        // The section is a few hundred bytes; 64 KiB bounds whatever else answers.
        while reply.len() < 64 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
            if String::from_utf8_lossy(&reply).contains(&wanted) {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(Duration::from_secs(1), read)
        .await
        .unwrap_or(false)
}

/// The outcome of one test.
#[derive(Debug)]
struct Outcome {
    name: String,
    dialer: Participant,
    listener: Participant,
    cell: Cell,
    result: Result<DialerReport, String>,
}

fn log_dir() -> PathBuf {
    paths::harness_dir().join("logs")
}

fn log_file(name: &str) -> std::fs::File {
    let dir = log_dir();
    std::fs::create_dir_all(&dir).expect("create the log directory");
    std::fs::File::create(dir.join(name)).expect("create a log file")
}

fn spawn(
    program: &Program,
    cell: Cell,
    is_dialer: bool,
    redis: SocketAddr,
    log: &str,
) -> std::io::Result<Child> {
    let mut command = Command::new(&program.program);
    command
        .args(&program.leading)
        .env("transport", cell.transport());
    // Unset, as test-plans leaves them for QUIC (and not inherited from our own env).
    for (name, value) in [("security", cell.security()), ("muxer", cell.muxer())] {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command
        .env("is_dialer", if is_dialer { "true" } else { "false" })
        .env("ip", "127.0.0.1")
        .env("redis_addr", redis.to_string())
        .env("test_timeout_seconds", TEST_TIMEOUT_SECS.to_string())
        .stdin(Stdio::null())
        .stdout(if is_dialer {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(log_file(log))
        .kill_on_drop(true)
        .spawn()
}

async fn run_one(
    dialer: (Participant, &Program),
    listener: (Participant, &Program),
    cell: Cell,
) -> Outcome {
    let name = format!(
        "{} x {} ({})",
        dialer.0.name(),
        listener.0.name(),
        cell.label()
    );
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let result = async {
        let redis = RedisServer::start().await;
        let _listener = spawn(
            listener.1,
            cell,
            false,
            redis.addr,
            &format!("{slug}.listener.log"),
        )
        .map_err(|e| format!("start the listener: {e}"))?;
        let mut child = spawn(
            dialer.1,
            cell,
            true,
            redis.addr,
            &format!("{slug}.dialer.log"),
        )
        .map_err(|e| format!("start the dialer: {e}"))?;
        let mut stdout = child.stdout.take().ok_or("no dialer stdout")?;
        let run = async {
            // The report is one short line; 64 KiB is far more than enough.
            let mut out = Vec::new();
            (&mut stdout)
                .take(64 * 1024)
                .read_to_end(&mut out)
                .await
                .map_err(|e| format!("read the dialer's stdout: {e}"))?;
            let status = child
                .wait()
                .await
                .map_err(|e| format!("wait for the dialer: {e}"))?;
            Ok::<_, String>((status, out))
        };
        let (status, out) = tokio::time::timeout(RUNNER_TIMEOUT, run)
            .await
            .map_err(|_| format!("timed out after {RUNNER_TIMEOUT:?}"))??;
        drop(redis);
        if !status.success() {
            return Err(format!(
                "dialer exited with {status} (logs: target/interop/logs/{slug}.*.log)"
            ));
        }
        DialerReport::parse_stdout(&String::from_utf8_lossy(&out))
    }
    .await;
    Outcome {
        name,
        dialer: dialer.0,
        listener: listener.0,
        cell,
        result,
    }
}

fn results_table(outcomes: &[Outcome], with_timings: bool) -> String {
    let mut table = String::new();
    if with_timings {
        table.push_str("| test | result | handshake + 1 RTT | ping RTT |\n|---|---|---|---|\n");
    } else {
        table.push_str("| dialer | listener | transport | security | muxer | result |\n");
        table.push_str("|---|---|---|---|---|---|\n");
    }
    for o in outcomes {
        let verdict = if o.result.is_ok() { "pass" } else { "FAIL" };
        if with_timings {
            let (hs, rtt) = match &o.result {
                Ok(r) => (
                    format!("{:.2} ms", r.handshake_plus_one_rtt_ms),
                    format!("{:.2} ms", r.ping_rtt_ms),
                ),
                Err(e) => (e.replace('|', "/"), String::new()),
            };
            let _ = writeln!(table, "| {} | {verdict} | {hs} | {rtt} |", o.name);
        } else {
            let _ = writeln!(
                table,
                "| {} | {} | {} | {} | {} | {verdict} |",
                o.dialer.name(),
                o.listener.name(),
                o.cell.transport(),
                o.cell.security().unwrap_or("-"),
                o.cell.muxer().unwrap_or("-"),
            );
        }
    }
    table
}

/// Replaces the README's table between the markers (only when it changed).
fn update_readme(readme: &Path, table: &str) {
    let text = std::fs::read_to_string(readme).expect("read the README");
    let (Some(begin), Some(end)) = (text.find(README_BEGIN), text.find(README_END)) else {
        panic!(
            "{} has no {README_BEGIN} ... {README_END} section",
            readme.display()
        );
    };
    assert!(begin < end, "README markers out of order");
    let updated = format!("{}{README_BEGIN}\n{table}{}", &text[..begin], &text[end..]);
    if updated != text {
        std::fs::write(readme, updated).expect("write the README");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_in_the_test_plans_matrix() {
    if !require_impls(&Impl::ALL) {
        return;
    }
    if !tool_available("redis-server") {
        assert!(
            !running_in_ci(),
            "CI=true and `redis-server` is not installed (Debian: apt-get install redis-server)"
        );
        eprintln!("skipped: `redis-server` is not installed");
        return;
    }
    let peers = [Impl::Rust, Impl::Go, Impl::Js];
    let weft = program_of(Participant::Weft).await;
    let mut programs = vec![(Participant::Weft, weft.clone())];
    for imp in peers {
        programs.push((
            Participant::Peer(imp),
            program_of(Participant::Peer(imp)).await,
        ));
    }
    // Every pair with weft on at least one side, in both roles.
    let mut pairs = vec![(0, 0)];
    for other in 1..programs.len() {
        pairs.push((0, other));
        pairs.push((other, 0));
    }
    let mut outcomes = Vec::new();
    for (d, l) in pairs {
        for cell in CELLS {
            let (dialer, listener) = (&programs[d], &programs[l]);
            let outcome = run_one((dialer.0, &dialer.1), (listener.0, &listener.1), cell).await;
            eprintln!("{}: {:?}", outcome.name, outcome.result);
            outcomes.push(outcome);
        }
    }

    let dir = paths::harness_dir();
    std::fs::create_dir_all(&dir).expect("create target/interop");
    let report = format!(
        "# test-plans transport-interop matrix (weft)\n\n{}",
        results_table(&outcomes, true)
    );
    std::fs::write(dir.join("transport-interop.md"), report).expect("write the results");
    update_readme(
        &paths::interop_dir().join("..").join("README.md"),
        &results_table(&outcomes, false),
    );

    assert_eq!(outcomes.len(), 21, "7 pairs x 3 cells");
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(|e| format!("{}: {e}", o.name)))
        .collect();
    assert!(failed.is_empty(), "failed tests:\n{}", failed.join("\n"));
}

/// The weft participant refuses what it does not support with a non-zero exit and
/// nothing on stdout, as test-plans counts an unsupported cell: a failure.
#[tokio::test]
async fn weft_refuses_unsupported_parameters() {
    let weft = PathBuf::from(env!("CARGO_BIN_EXE_weft-transport-interop"));
    for (var, value) in [
        ("transport", "ws"),
        ("muxer", "mplex"),
        ("security", "plaintext"),
    ] {
        let mut cmd = Command::new(&weft);
        cmd.env("transport", "tcp")
            .env("security", "noise")
            .env("muxer", "yamux")
            .env("is_dialer", "true")
            .env("redis_addr", "127.0.0.1:1")
            .env("test_timeout_seconds", "5")
            .env(var, value)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
            .await
            .expect("exits within 20 s")
            .expect("runs");
        assert_eq!(out.status.code(), Some(1), "{var}={value}: {out:?}");
        assert!(out.stdout.is_empty(), "{var}={value}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not supported"), "{var}={value}: {stderr}");
    }
}
