//! Listener memory under hostile peers, weft beside rust-libp2p in one run, and the
//! honest long-link throughput of the same weft build (issue 13, part 8).
//!
//! For N = 1, 4, 16: a fresh listener (`weft listen` with its shipped defaults, then
//! the rust-libp2p 0.57 interop peer's `listen`, which serves `/echo/1.0.0` with
//! `futures::io::copy`), a 60 ms RTT `DelayRelay` in front of it, and the
//! `rust-libp2p-attacker`: N connections, each from its own peer id, each with 64
//! `/echo/1.0.0` streams that are written into and never read. The figure is the
//! listener's peak resident memory (`VmRSS`, sampled every 50 ms) over its value
//! before the attack, once the attackers' writes have stalled for 2 s (or 30 s passed).
//!
//! Then `weft perf` against `weft listen --perf` (or plain `weft listen` while it
//! still serves perf by default), Noise, upload and download, on loopback and through
//! the 60 ms relay: whole processes, connection set-up included, and the rate inside
//! the perf exchange as `weft perf` reports it; medians of `--runs` runs.
//!
//! ```text
//! cargo bench -p weft-interop-tests --bench hostile                 # release build
//! cargo bench -p weft-interop-tests --bench hostile --profile dev   # no release build
//! ... -- --connections 1,4,16 --streams 64 --mib 256 --runs 3 --only memory,throughput
//! ```

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_interop_tests::procfs::{mib, rss_kib};
use weft_interop_tests::{
    run_weft, AttackPlan, Attacker, DelayRelay, Impl, ListeningPeer, Security, WeftListen,
};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const ONE_WAY: Duration = Duration::from_millis(30);

struct Options {
    connections: Vec<usize>,
    streams: usize,
    mib: u64,
    runs: usize,
    memory: bool,
    throughput: bool,
}

impl Options {
    fn parse() -> BenchResult<Self> {
        let mut options = Options {
            connections: vec![1, 4, 16],
            streams: 64,
            mib: 256,
            runs: 3,
            memory: true,
            throughput: true,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--connections" => {
                    options.connections = value()?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()?
                }
                "--streams" => options.streams = value()?.parse()?,
                "--mib" => options.mib = value()?.parse()?,
                "--runs" => options.runs = value()?.parse::<usize>()?.max(1),
                "--only" => {
                    let only = value()?;
                    options.memory = only.contains("memory");
                    options.throughput = only.contains("throughput");
                }
                // `cargo bench` passes `--bench`.
                _ => {}
            }
        }
        Ok(options)
    }
}

/// One attack's outcome.
struct Pinned {
    before_kib: u64,
    peak_kib: u64,
    written: u64,
    failed_streams: u64,
    settled: bool,
}

/// Attacks `listener` through a fresh relay with `connections` x `streams`.
async fn pin(listener: &ListeningPeer, connections: usize, streams: usize) -> BenchResult<Pinned> {
    let pid = listener.pid().ok_or("listener has no pid")?;
    let relay = DelayRelay::start(listener.socket_addr(), ONE_WAY).await?;
    let addr = listener.addr_via(relay.local_addr());
    // Warm up with one honest exchange through the same relay.
    let warm = run_weft(
        &[
            "dial".into(),
            addr.to_string(),
            "--security".into(),
            "noise".into(),
            "--echo".into(),
            (1 << 20).to_string(),
            "--timeout-secs".into(),
            "30".into(),
        ],
        Duration::from_secs(45),
    )
    .await?;
    if !warm.success() {
        return Err(format!("warm-up dial failed: {}", warm.stderr).into());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_kib = rss_kib(pid)?;
    let peak = Arc::new(AtomicU64::new(before_kib));
    let sampler = tokio::spawn({
        let peak = Arc::clone(&peak);
        async move {
            while let Ok(kib) = rss_kib(pid) {
                peak.fetch_max(kib, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let plan = AttackPlan {
        connections,
        streams,
    };
    let mut attacker = Attacker::spawn(&addr, &plan).await?;
    attacker.ready(Duration::from_secs(60)).await?;
    let (progress, settled) = attacker
        .settled(Duration::from_secs(2), Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    sampler.abort();
    drop(attacker);
    Ok(Pinned {
        before_kib,
        peak_kib: peak.load(Ordering::Relaxed),
        written: progress.written,
        failed_streams: progress.failed_streams,
        settled,
    })
}

async fn memory(options: &Options) -> BenchResult<Vec<String>> {
    let mut rows = vec![
        "| listener | hostile connections x streams | RSS before | peak RSS | growth | attackers wrote | streams reset | writes stalled |".to_owned(),
        "|---|---|---|---|---|---|---|---|".to_owned(),
    ];
    for &n in &options.connections {
        for name in ["weft listen", "rust-libp2p 0.57"] {
            let listener = match name {
                "weft listen" => WeftListen::defaults().spawn().await?,
                _ => ListeningPeer::spawn(Impl::Rust, Security::Noise).await?,
            };
            let p = pin(&listener, n, options.streams).await?;
            let row = format!(
                "| {name} | {n} x {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.0} MiB | {} | {} |",
                options.streams,
                mib(p.before_kib),
                mib(p.peak_kib),
                mib(p.peak_kib.saturating_sub(p.before_kib)),
                p.written as f64 / (1 << 20) as f64,
                p.failed_streams,
                if p.settled { "yes" } else { "no (30 s)" },
            );
            eprintln!("{row}");
            rows.push(row);
        }
    }
    Ok(rows)
}

/// `weft listen --perf`, or plain `weft listen` if this build has no `--perf` flag
/// (perf on by default).
async fn perf_listener() -> BenchResult<ListeningPeer> {
    match WeftListen::defaults().arg("--perf").spawn().await {
        Ok(listener) => Ok(listener),
        Err(e) => {
            eprintln!("weft listen --perf failed ({e}); using plain weft listen");
            Ok(WeftListen::defaults().spawn().await?)
        }
    }
}

/// One `weft perf` run: (whole-process MiB/s, in-exchange MiB/s).
async fn perf_once(addr: &str, upload: u64, download: u64) -> BenchResult<(f64, f64)> {
    let bytes = upload + download;
    let run = run_weft(
        &[
            "--json".into(),
            "perf".into(),
            addr.to_owned(),
            "--security".into(),
            "noise".into(),
            "--upload".into(),
            upload.to_string(),
            "--download".into(),
            download.to_string(),
        ],
        Duration::from_secs(600),
    )
    .await?;
    if !run.success() {
        return Err(format!("weft perf failed: {} {}", run.stdout, run.stderr).into());
    }
    let line = run.stdout.lines().last().unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(line)?;
    let seconds = |key: &str| report.get(key).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let inside = if upload > 0 {
        seconds("upload_s")
    } else {
        seconds("download_s")
    };
    let rate = |s: f64| bytes as f64 / (1 << 20) as f64 / s;
    Ok((rate(run.elapsed.as_secs_f64()), rate(inside)))
}

async fn throughput(options: &Options) -> BenchResult<Vec<String>> {
    let listener = perf_listener().await?;
    let relay = DelayRelay::start(listener.socket_addr(), ONE_WAY).await?;
    let bytes = options.mib << 20;
    let mut rows = vec![
        format!(
            "| weft perf, Noise, {} MiB, median of {} | loopback | relay 60 ms RTT | relay / loopback |",
            options.mib, options.runs
        ),
        "|---|---|---|---|".to_owned(),
    ];
    for (direction, up, down) in [("upload", bytes, 0), ("download", 0, bytes)] {
        let direct = listener.addr().to_string();
        let via = listener.addr_via(relay.local_addr()).to_string();
        let (mut lo, mut re) = (Vec::new(), Vec::new());
        // Alternate, so that a noisy moment hits both paths alike.
        for _ in 0..options.runs {
            lo.push(perf_once(&direct, up, down).await?);
            re.push(perf_once(&via, up, down).await?);
        }
        let (lo, re) = (medians(lo), medians(re));
        for (what, l, r) in [
            ("in the exchange", lo.1, re.1),
            ("whole process", lo.0, re.0),
        ] {
            let row = format!(
                "| {direction}, {what} | {l:.0} MiB/s | {r:.0} MiB/s | {:.2} |",
                r / l
            );
            eprintln!("{row}");
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The medians of both members of the pairs.
fn medians(pairs: Vec<(f64, f64)>) -> (f64, f64) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (a, b): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
    (median(a), median(b))
}

fn main() -> BenchResult<()> {
    let options = Options::parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let (memory_rows, throughput_rows) = runtime.block_on(async {
        let memory_rows = if options.memory {
            memory(&options).await?
        } else {
            Vec::new()
        };
        let throughput_rows = if options.throughput {
            throughput(&options).await?
        } else {
            Vec::new()
        };
        Ok::<_, Box<dyn Error + Send + Sync>>((memory_rows, throughput_rows))
    })?;
    println!(
        "## hostile bench ({:.0} s, profile of {})",
        started.elapsed().as_secs_f64(),
        weft_interop_tests::paths::profile_dir().display()
    );
    println!();
    for row in memory_rows {
        println!("{row}");
    }
    println!();
    for row in throughput_rows {
        println!("{row}");
    }
    Ok(())
}
