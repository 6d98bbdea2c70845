//! weft against rust-libp2p (`libp2p` 0.57), side by side in one run: single-stream
//! throughput on loopback, through the delaying relay at 0 ms (the relay's own cost)
//! and at 60 ms RTT, dials per second,
//! time from dial to the first response byte in round trips, streams per second, and
//! resident memory per idle connection and stream. Prints a markdown table with each
//! figure's median, its min–max spread, and the ratio weft / rust-libp2p, then the
//! goals, met or not.
//!
//! ```text
//! cargo bench -p weft-interop-tests --bench perf_suite               # ~10 min
//! cargo bench -p weft-interop-tests --bench perf_suite -- --quick    # ~2 min
//! ... -- --only loopback,relay0,relay,dials,ttfb,streams,memory   # some sections
//! ... -- --weft-window-mib 64 --weft-split-kib 64          # weft yamux knobs
//! ... -- --weft-no-boost       # weft without its long-link window boost
//! ... -- --weft-boost-rate-gib 1000   # the boost's link rate (default 1 GiB/s)
//! ... -- --mib 256             # bytes per throughput transfer (default 1024, quick 64)
//! ```

mod connections;
mod libp2p_side;
mod memory;
mod stack;
mod stats;
mod streams;
mod throughput;
mod weft_side;
mod wire;

use libp2p_side::Libp2p;
use stack::{BenchResult, Security, Stack};
use stats::{num, Row, Samples};
use std::time::{Duration, Instant};
use weft_side::Weft;

/// One-way delay of the relay: 30 ms each way, 60 ms round trip.
const ONE_WAY: Duration = Duration::from_millis(30);
const SECTIONS: [&str; 7] = [
    "loopback", "relay0", "relay", "dials", "ttfb", "streams", "memory",
];

/// Sizes and repetitions of a run.
#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    sections: Vec<String>,
    window_mib: Option<usize>,
    split_kib: Option<usize>,
    no_boost: bool,
    boost_rate_gib: Option<u64>,
    mib: Option<u64>,
}

impl Options {
    fn parse() -> BenchResult<Options> {
        let mut options = Options {
            quick: false,
            sections: SECTIONS.iter().map(|s| s.to_string()).collect(),
            window_mib: None,
            split_kib: None,
            no_boost: false,
            boost_rate_gib: None,
            mib: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--only" => {
                    let list = args.next().ok_or("--only needs a list")?;
                    options.sections = list.split(',').map(str::to_string).collect();
                    if let Some(bad) = options
                        .sections
                        .iter()
                        .find(|s| !SECTIONS.contains(&s.as_str()))
                    {
                        return Err(format!("unknown section {bad}; known: {SECTIONS:?}").into());
                    }
                }
                "--weft-window-mib" => {
                    options.window_mib = Some(args.next().ok_or("needs a value")?.parse()?)
                }
                "--weft-split-kib" => {
                    options.split_kib = Some(args.next().ok_or("needs a value")?.parse()?)
                }
                "--weft-no-boost" => options.no_boost = true,
                "--weft-boost-rate-gib" => {
                    options.boost_rate_gib = Some(args.next().ok_or("needs a value")?.parse()?)
                }
                "--mib" => {
                    let mib: u64 = args.next().ok_or("--mib needs a value")?.parse()?;
                    if mib == 0 || mib > 64 << 10 {
                        return Err(format!("--mib {mib}: must be 1..=65536").into());
                    }
                    options.mib = Some(mib);
                }
                // `cargo bench` passes `--bench`; filters are not used.
                _ => {}
            }
        }
        Ok(options)
    }

    fn wants(&self, section: &str) -> bool {
        self.sections.iter().any(|s| s == section)
    }

    fn runs(&self) -> usize {
        if self.quick {
            3
        } else {
            5
        }
    }

    /// Bytes per throughput transfer: 1 GiB by default, so that on the 60 ms relay
    /// the round trips every transfer needs (opening the stream, the window grant,
    /// the server's answer: about two) stay near a tenth of the time.
    fn bytes(&self) -> u64 {
        match self.mib {
            Some(mib) => mib << 20,
            None if self.quick => 64 << 20,
            None => 1 << 30,
        }
    }
}

fn main() -> BenchResult<()> {
    if let Ok(spec) = std::env::var(memory::CHILD_ENV) {
        return memory::child_main(&spec);
    }
    let options = Options::parse()?;
    let mut yamux = weft_muxer_yamux::YamuxConfig::default();
    if let Some(mib) = options.window_mib {
        yamux = yamux.with_max_receive_window(mib << 20);
    }
    if let Some(kib) = options.split_kib {
        yamux = yamux.with_split_send_size(kib << 10);
    }
    if options.no_boost {
        yamux = yamux.with_window_boost(None);
    } else if let Some(gib) = options.boost_rate_gib {
        let boost = weft_muxer_yamux::WindowBoost {
            link_rate: gib.saturating_mul(1 << 30),
            ..Default::default()
        };
        yamux = yamux.with_window_boost(Some(boost));
    }
    println!("weft yamux: {yamux:?}");
    weft_side::set_yamux_config(yamux)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let rows = runtime.block_on(run(&options))?;
    println!(
        "## perf_suite ({} run, {:.0} s)",
        if options.quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64()
    );
    stats::print_table(&rows);
    print_goals(&rows);
    Ok(())
}

/// Both implementations, one after the other, for each figure.
async fn run(options: &Options) -> BenchResult<Vec<Row>> {
    let runs = options.runs();
    let bytes = options.bytes();
    let mib = bytes >> 20;
    let mut rows = Vec::new();
    let mut both = |figure: String, unit: &'static str, weft: Samples, libp2p: Samples| {
        let row = Row {
            figure,
            unit,
            weft,
            libp2p,
        };
        eprintln!(
            "{}: weft {} / rust-libp2p {} {}",
            row.figure,
            row.weft.display(),
            row.libp2p.display(),
            row.unit
        );
        rows.push(row);
    };

    // The relay at 0 ms: what the user-space relay itself costs (its copies share
    // the machine's cores with both ends), so the long link can be compared with
    // the same path without its delay.
    let paths = [
        ("loopback", None),
        ("relay0", Some(Duration::ZERO)),
        ("relay", Some(ONE_WAY)),
    ];
    for (section, delay) in paths {
        if !options.wants(section) {
            continue;
        }
        let path = match delay {
            None => "loopback".to_string(),
            Some(d) => format!("relay {} ms RTT", d.as_millis() * 2),
        };
        for security in [Security::Noise, Security::Tls] {
            let w = throughput::measure::<Weft>(security, delay, bytes, runs).await?;
            let l = throughput::measure::<Libp2p>(security, delay, bytes, runs).await?;
            let name = |dir: &str| format!("{dir} {mib} MiB, {}+yamux, {path}", security.label());
            both(name("upload"), "MiB/s", w.upload, l.upload);
            both(name("download"), "MiB/s", w.download, l.download);
        }
        if let Some(delay) = delay {
            let tcp = throughput::plain_tcp(delay, bytes, runs).await?;
            let name = |dir: &str| format!("{dir} {mib} MiB, plain TCP (reference), {path}");
            both(name("upload"), "MiB/s", tcp.upload, Samples::default());
            both(name("download"), "MiB/s", tcp.download, Samples::default());
        }
    }

    if options.wants("dials") {
        let sequential = if options.quick { 100 } else { 300 };
        let w = connections::dials::<Weft>(1, sequential, runs).await?;
        let l = connections::dials::<Libp2p>(1, sequential, runs).await?;
        both(
            format!("dials, sequential ({sequential} per run), Noise+yamux, loopback"),
            "dials/s",
            w,
            l,
        );
        let per_client = if options.quick { 3 } else { 8 };
        let w = connections::dials::<Weft>(64, per_client, runs).await?;
        let l = connections::dials::<Libp2p>(64, per_client, runs).await?;
        both(
            format!("dials, 64 in parallel ({per_client} each per run), Noise+yamux, loopback"),
            "dials/s",
            w,
            l,
        );
    }

    if options.wants("ttfb") {
        let w = connections::first_byte::<Weft>(ONE_WAY, runs).await?;
        let l = connections::first_byte::<Libp2p>(ONE_WAY, runs).await?;
        let rtt_ms = ONE_WAY.as_secs_f64() * 2000.0;
        let in_rtts = |s: &Samples| {
            let mut out = Samples::default();
            for v in [s.median(), s.min(), s.max()] {
                out.push(v / rtt_ms);
            }
            out
        };
        let (wr, lr) = (in_rtts(&w), in_rtts(&l));
        both(
            "dial to first response byte, Noise+yamux, relay 60 ms RTT".into(),
            "ms",
            w,
            l,
        );
        both(
            "  the same in round trips through the relay (TCP's own handshake is not delayed: add 1 for a real link)".into(),
            "RTT",
            wr,
            lr,
        );
    }

    if options.wants("streams") {
        let count = if options.quick { 500 } else { 2000 };
        let w = streams::streams::<Weft>(count, runs).await?;
        let l = streams::streams::<Libp2p>(count, runs).await?;
        both(
            format!("streams: open + negotiate + 1-byte echo, sequential ({count} per run)"),
            "streams/s",
            w,
            l,
        );
    }

    if options.wants("memory") {
        let conns = max_connections(if options.quick { 1000 } else { 5000 });
        let streams = if options.quick { 200 } else { 250 };
        let children = if options.quick { 1 } else { 3 };
        let w = memory::measure(Weft::NAME, conns, streams, children)?;
        let l = memory::measure(Libp2p::NAME, conns, streams, children)?;
        both(
            format!("memory per idle connection, both ends ({conns} connections)"),
            "KiB",
            w.per_connection,
            l.per_connection,
        );
        both(
            format!("memory per idle stream, both ends ({streams} streams on one connection)"),
            "KiB",
            w.per_stream,
            l.per_stream,
        );
    }
    Ok(rows)
}

/// `wanted`, or fewer if the open-files limit cannot hold two sockets per connection.
fn max_connections(wanted: usize) -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|soft| soft.parse::<usize>().ok());
    match limit {
        Some(limit) if limit < 2 * wanted + 200 => {
            let fits = limit.saturating_sub(200) / 2;
            eprintln!("open-files limit {limit}: measuring memory at {fits} connections");
            fits
        }
        _ => wanted,
    }
}

fn find<'a>(rows: &'a [Row], pattern: &str) -> Vec<&'a Row> {
    rows.iter().filter(|r| r.figure.contains(pattern)).collect()
}

/// Prints each goal of the brief with the measured value.
fn print_goals(rows: &[Row]) {
    println!("### Goals");
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    // Long link against weft's own loopback figure, and against rust-libp2p.
    for relay in find(rows, "yamux, relay 60 ms RTT") {
        if relay.unit != "MiB/s" {
            continue;
        }
        for (base, label) in [
            ("loopback", "loopback"),
            ("relay 0 ms RTT", "the relay at 0 ms"),
        ] {
            let base_name = relay.figure.replace("relay 60 ms RTT", base);
            if let Some(lo) = rows.iter().find(|r| r.figure == base_name) {
                let share = relay.weft.median() / lo.weft.median();
                println!(
                    "- long link ≥90% of {label}, {}: {:.0}% → {}",
                    relay.figure,
                    share * 100.0,
                    verdict(share >= 0.9)
                );
            }
        }
        println!(
            "- long link ≥2x rust-libp2p, {}: {}x → {}",
            relay.figure,
            num(relay.ratio()),
            verdict(relay.ratio() >= 2.0)
        );
    }
    for lo in find(rows, "yamux, loopback") {
        if lo.unit == "MiB/s" {
            println!(
                "- loopback ≥1.5x rust-libp2p, {}: {}x → {}",
                lo.figure,
                num(lo.ratio()),
                verdict(lo.ratio() >= 1.5)
            );
        }
    }
    for r in find(rows, "round trips through the relay") {
        let real = r.weft.median() + 1.0;
        println!(
            "- dial to first byte in 3 RTT over TCP: weft {} relay RTTs + 1 TCP = {} → {} (rust-libp2p: {} + 1)",
            num(r.weft.median()),
            num(real),
            verdict(real < 3.5),
            num(r.libp2p.median())
        );
    }
    for r in rows
        .iter()
        .filter(|r| r.unit == "dials/s" || r.unit == "streams/s")
    {
        println!(
            "- ≥1.2x rust-libp2p, {}: {}x → {}",
            r.figure,
            num(r.ratio()),
            verdict(r.ratio() >= 1.2)
        );
    }
    for r in find(rows, "memory per idle connection") {
        println!(
            "- memory per idle connection ≤ half of rust-libp2p's: {}x → {}",
            num(r.ratio()),
            verdict(r.ratio() <= 0.5)
        );
    }
}
