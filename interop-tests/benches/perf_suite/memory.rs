//! Resident memory per idle connection and per idle stream, measured in a child
//! process per implementation (the bench re-executes itself with [`CHILD_ENV`] set),
//! so that the two implementations' allocations never mix.
//!
//! The child runs a server and a client of one implementation in one process: the
//! figures are for both ends of a connection (one dialer plus one listener), and for
//! both ends of a stream plus the server's echo task waiting on it.

use crate::libp2p_side::Libp2p;
use crate::stack::{BenchResult, Node, Security, Stack, ECHO};
use crate::stats::Samples;
use crate::weft_side::Weft;
use crate::wire;
use std::process::Command;
use std::time::Duration;

/// The environment variable that makes the bench a memory child:
/// `<weft|rust-libp2p>:<connections>:<streams>[:quic]` (TCP + Noise + yamux, or QUIC).
pub const CHILD_ENV: &str = "WEFT_PERF_SUITE_MEMORY_CHILD";
/// The line prefix a child reports with.
const REPORT: &str = "PERF_SUITE_MEMORY";
/// Dials in flight at once while filling up.
const DIAL_CONCURRENCY: usize = 16;
/// QUIC connections per client node: weft reserves each QUIC connection's starting
/// windows (1 MiB receive, 1 MiB send) in the peer's scope, whose default memory
/// limit (128 MiB) lets such reservations take about 51 MiB (a denied one only
/// shrinks a window).
const QUIC_PER_CLIENT: usize = 25;

/// Per-connection and per-stream memory, KiB.
#[derive(Debug, Default)]
pub struct Memory {
    /// KiB per idle connection (both ends).
    pub per_connection: Samples,
    /// KiB per idle stream (both ends).
    pub per_stream: Samples,
}

/// Resident set size of this process, KiB (`VmRSS` in `/proc/self/status`).
fn rss_kib() -> BenchResult<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS in /proc/self/status")?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .ok_or("malformed VmRSS line")?
        .parse()?;
    Ok(kib)
}

/// Runs `runs` children for implementation `name` over `security` (Noise or QUIC).
pub fn measure(
    name: &str,
    security: Security,
    connections: usize,
    streams: usize,
    runs: usize,
) -> BenchResult<Memory> {
    let exe = std::env::current_exe()?;
    let mut memory = Memory::default();
    let spec = match security {
        Security::Quic => format!("{name}:{connections}:{streams}:quic"),
        _ => format!("{name}:{connections}:{streams}"),
    };
    for _ in 0..runs {
        let output = Command::new(&exe).env(CHILD_ENV, &spec).output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix(REPORT))
            .ok_or_else(|| {
                format!(
                    "memory child for {name} failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                )
            })?;
        let values: Vec<f64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let [base, with_conns, with_streams] = values[..] else {
            return Err(format!("bad memory report: {line}").into());
        };
        memory
            .per_connection
            .push((with_conns - base) / connections as f64);
        memory
            .per_stream
            .push((with_streams - with_conns) / streams as f64);
    }
    Ok(memory)
}

/// The child's entry point: `spec` is the value of [`CHILD_ENV`].
pub fn child_main(spec: &str) -> BenchResult<()> {
    let mut parts = spec.split(':');
    let (Some(name), Some(conns), Some(streams)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad {CHILD_ENV}: {spec}").into());
    };
    let conns: usize = conns.parse()?;
    let streams: usize = streams.parse()?;
    let security = match parts.next() {
        None => Security::Noise,
        Some("quic") => Security::Quic,
        Some(other) => return Err(format!("bad {CHILD_ENV} transport {other}").into()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        match name {
            "weft" => child::<Weft>(security, conns, streams).await,
            "rust-libp2p" => child::<Libp2p>(security, conns, streams).await,
            other => Err(format!("unknown implementation {other}").into()),
        }
    })?;
    println!("{REPORT} {} {} {}", report[0], report[1], report[2]);
    // Skip the orderly teardown of thousands of connections.
    std::process::exit(0);
}

async fn child<S: Stack>(
    security: Security,
    conns: usize,
    streams: usize,
) -> BenchResult<[u64; 3]> {
    let (_server, target) = S::server(security).await?;
    let client = S::client(security).await?;
    // Over QUIC, a client node per QUIC_PER_CLIENT connections, all made (and so not
    // counted) before the base line: only the connections are.
    let (tasks_wanted, clients) = match security {
        Security::Quic => {
            let nodes = conns.div_ceil(QUIC_PER_CLIENT);
            let mut clients = vec![client.clone()];
            for _ in 1..nodes {
                clients.push(S::client(security).await?);
            }
            (nodes, clients)
        }
        _ => (DIAL_CONCURRENCY, vec![client.clone()]),
    };
    // Warm up allocator and code paths with one connection and stream.
    let warm = client.dial(target).await?;
    let mut stream = client.open(&warm, ECHO).await?;
    wire::echo_once(&mut stream).await?;
    drop(stream);
    settle().await;
    let base = rss_kib()?;

    let per_task = conns.div_ceil(tasks_wanted);
    let mut tasks = Vec::new();
    for i in 0..tasks_wanted {
        let client = clients[i % clients.len()].clone();
        let n = per_task.min(conns.saturating_sub(i * per_task));
        tasks.push(tokio::spawn(async move {
            let mut opened = Vec::with_capacity(n);
            for _ in 0..n {
                opened.push(client.dial(target).await?);
            }
            Ok::<_, crate::stack::BenchError>((client, opened))
        }));
    }
    let mut all = Vec::with_capacity(conns);
    let mut last_client = client.clone();
    for task in tasks {
        let (node, opened) = task.await??;
        if !opened.is_empty() {
            last_client = node;
        }
        all.extend(opened);
    }
    settle().await;
    let with_conns = rss_kib()?;

    // Streams on the newest connection (weft opens on the newest one to the peer).
    let client = last_client;
    let last = all.last().ok_or("no connections")?.clone();
    let mut open = Vec::with_capacity(streams);
    for _ in 0..streams {
        let mut stream = client.open(&last, ECHO).await?;
        wire::echo_byte(&mut stream).await?;
        open.push(stream);
    }
    settle().await;
    let with_streams = rss_kib()?;
    drop(open);
    drop(all);
    Ok([base, with_conns, with_streams])
}

/// Lets background work (identify exchanges, stream bookkeeping) finish.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}
