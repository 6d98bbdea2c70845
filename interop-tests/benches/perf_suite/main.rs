//! weft against rust-libp2p (`libp2p` 0.57), side by side in one run, over TCP (Noise
//! and TLS with yamux) and QUIC: single-stream
//! throughput on loopback, through the delaying relay at 0 ms (the relay's own cost)
//! and at 60 ms RTT (QUIC also with 1% of the datagrams dropped each way), dials per second,
//! time from dial to the first response byte in round trips, streams per second, and
//! resident memory per idle connection and stream. Prints a markdown table with each
//! figure's median, its min–max spread, and the ratio weft / rust-libp2p, then the
//! goals, met or not.
//!
//! ```text
//! cargo bench -p weft-interop-tests --bench perf_suite               # ~10 min
//! cargo bench -p weft-interop-tests --bench perf_suite -- --quick    # ~2 min
//! ... -- --only loopback,relay0,relay,loss,dials,ttfb,streams,memory   # some sections
//! ... -- --transports quic     # only the QUIC rows (or tcp; default tcp,quic)
//! ... -- --weft-quic-window-mib 16   # weft's QUIC stream window and the most its connection and send windows grow to
//! ... -- --weft-quic-congestion bbr   # weft's QUIC congestion controller: cubic (default) or bbr
//! ... -- --weft-window-mib 64 --weft-split-kib 64          # weft yamux knobs
//! ... -- --weft-no-boost       # weft without its long-link window boost
//! ... -- --weft-boost-rate-gib 1000   # the boost's link rate (default 1.5 GiB/s)
//! ... -- --mib 256             # bytes per throughput transfer (default 1024, quick 64)
//! ... -- --weft-only           # the throughput sections measure weft alone (no rust-libp2p column)
//! RUST_LOG=weft_transport_quic=debug cargo bench ...   # logs to stderr (QUIC path stats at close)
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
const SECTIONS: [&str; 8] = [
    "loopback", "relay0", "relay", "loss", "dials", "ttfb", "streams", "memory",
];
/// The fraction of datagrams the `loss` section's relay drops, each way.
const LOSS: f64 = 0.01;
/// The most bytes of one `loss` transfer: at 1% loss and 60 ms, congestion control
/// allows about MSS / RTT x 1.22 / sqrt(p), some 0.25 MiB/s.
const LOSS_BYTES: u64 = 4 << 20;
const TRANSPORTS: [&str; 2] = ["tcp", "quic"];

/// Sizes and repetitions of a run.
#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    sections: Vec<String>,
    transports: Vec<String>,
    window_mib: Option<usize>,
    split_kib: Option<usize>,
    no_boost: bool,
    boost_rate_gib: Option<u64>,
    mib: Option<u64>,
    quic_window_mib: Option<u32>,
    quic_congestion: Option<weft_transport_quic::Congestion>,
    /// The throughput sections leave rust-libp2p out (to study weft alone, faster).
    weft_only: bool,
}

impl Options {
    fn parse() -> BenchResult<Options> {
        let mut options = Options {
            quick: false,
            sections: SECTIONS.iter().map(|s| s.to_string()).collect(),
            transports: TRANSPORTS.iter().map(|s| s.to_string()).collect(),
            window_mib: None,
            split_kib: None,
            no_boost: false,
            boost_rate_gib: None,
            mib: None,
            quic_window_mib: None,
            quic_congestion: None,
            weft_only: false,
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
                "--transports" => {
                    let list = args.next().ok_or("--transports needs a list")?;
                    options.transports = list.split(',').map(str::to_string).collect();
                    if let Some(bad) = options
                        .transports
                        .iter()
                        .find(|s| !TRANSPORTS.contains(&s.as_str()))
                    {
                        return Err(
                            format!("unknown transport {bad}; known: {TRANSPORTS:?}").into()
                        );
                    }
                }
                "--weft-window-mib" => {
                    options.window_mib = Some(args.next().ok_or("needs a value")?.parse()?)
                }
                "--weft-split-kib" => {
                    options.split_kib = Some(args.next().ok_or("needs a value")?.parse()?)
                }
                "--weft-no-boost" => options.no_boost = true,
                "--weft-only" => options.weft_only = true,
                "--weft-quic-window-mib" => {
                    let mib: u32 = args.next().ok_or("needs a value")?.parse()?;
                    if mib == 0 || mib > 1024 {
                        return Err(
                            format!("--weft-quic-window-mib {mib}: must be 1..=1024").into()
                        );
                    }
                    options.quic_window_mib = Some(mib);
                }
                "--weft-quic-congestion" => {
                    use weft_transport_quic::Congestion;
                    options.quic_congestion = Some(match args.next().as_deref() {
                        Some("cubic") => Congestion::Cubic,
                        Some("bbr") => Congestion::Bbr,
                        other => {
                            return Err(
                                format!("--weft-quic-congestion {other:?}: cubic or bbr").into()
                            )
                        }
                    });
                }
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

    fn tcp(&self) -> bool {
        self.transports.iter().any(|s| s == "tcp")
    }

    fn quic(&self) -> bool {
        self.transports.iter().any(|s| s == "quic")
    }

    /// The stacks of the throughput sections: TCP with each security, and QUIC.
    fn stacks(&self) -> Vec<Security> {
        let mut stacks = Vec::new();
        if self.tcp() {
            stacks.extend([Security::Noise, Security::Tls]);
        }
        if self.quic() {
            stacks.push(Security::Quic);
        }
        stacks
    }

    /// The stacks of the connection sections: TCP with Noise, and QUIC.
    fn connection_stacks(&self) -> Vec<Security> {
        let mut stacks = Vec::new();
        if self.tcp() {
            stacks.push(Security::Noise);
        }
        if self.quic() {
            stacks.push(Security::Quic);
        }
        stacks
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
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
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
    if options.quic_window_mib.is_some() || options.quic_congestion.is_some() {
        let mut config = weft_transport_quic::Config::default();
        if let Some(mib) = options.quic_window_mib {
            config = config
                .with_stream_window(mib << 20)
                .with_max_connection_window(mib << 20)
                .with_max_send_window(mib << 20);
        }
        if let Some(congestion) = options.quic_congestion {
            config = config.with_congestion(congestion);
        }
        println!("weft QUIC: {config:?}");
        weft_side::set_quic_config(config)?;
    }
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
        ("loopback", None, 0.0),
        ("relay0", Some(Duration::ZERO), 0.0),
        ("relay", Some(ONE_WAY), 0.0),
        ("loss", Some(ONE_WAY), LOSS),
    ];
    for (section, delay, loss) in paths {
        if !options.wants(section) {
            continue;
        }
        let path = match delay {
            None => "loopback".to_string(),
            Some(d) if loss > 0.0 => format!(
                "relay {} ms RTT, {}% loss each way",
                d.as_millis() * 2,
                loss * 100.0
            ),
            Some(d) => format!("relay {} ms RTT", d.as_millis() * 2),
        };
        for security in options.stacks() {
            // The TCP relay cannot drop bytes: the loss rows are QUIC's.
            if loss > 0.0 && security != Security::Quic {
                continue;
            }
            let bytes = if loss > 0.0 {
                bytes.min(LOSS_BYTES)
            } else {
                bytes
            };
            let mib = bytes >> 20;
            let w = throughput::measure::<Weft>(security, delay, loss, bytes, runs).await?;
            let l = if options.weft_only {
                throughput::Throughput::default()
            } else {
                throughput::measure::<Libp2p>(security, delay, loss, bytes, runs).await?
            };
            let name = |dir: &str| format!("{dir} {mib} MiB, {}, {path}", security.label());
            both(name("upload"), "MiB/s", w.upload, l.upload);
            both(name("download"), "MiB/s", w.download, l.download);
        }
        if let (Some(delay), true, 0.0) = (delay, options.tcp(), loss) {
            let tcp = throughput::plain_tcp(delay, bytes, runs).await?;
            let name = |dir: &str| format!("{dir} {mib} MiB, plain TCP (reference), {path}");
            both(name("upload"), "MiB/s", tcp.upload, Samples::default());
            both(name("download"), "MiB/s", tcp.download, Samples::default());
        }
    }

    for security in options.connection_stacks() {
        if !options.wants("dials") {
            break;
        }
        let label = security.label();
        let sequential = if options.quick { 100 } else { 300 };
        let w = connections::dials::<Weft>(security, 1, sequential, runs).await?;
        let l = connections::dials::<Libp2p>(security, 1, sequential, runs).await?;
        both(
            format!("dials, sequential ({sequential} per run), {label}, loopback"),
            "dials/s",
            w,
            l,
        );
        let per_client = if options.quick { 3 } else { 8 };
        let w = connections::dials::<Weft>(security, 64, per_client, runs).await?;
        let l = connections::dials::<Libp2p>(security, 64, per_client, runs).await?;
        both(
            format!("dials, 64 in parallel ({per_client} each per run), {label}, loopback"),
            "dials/s",
            w,
            l,
        );
    }

    for security in options.connection_stacks() {
        if !options.wants("ttfb") {
            break;
        }
        let label = security.label();
        let w = connections::first_byte::<Weft>(security, ONE_WAY, runs).await?;
        let l = connections::first_byte::<Libp2p>(security, ONE_WAY, runs).await?;
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
            format!("dial to first response byte, {label}, relay 60 ms RTT"),
            "ms",
            w,
            l.clone(),
        );
        let note = if security == Security::Quic {
            "the same in round trips (the UDP relay delays QUIC's whole handshake)"
        } else {
            "the same in round trips through the relay (TCP's own handshake is not delayed: add 1 for a real link)"
        };
        both(format!("  {note}, {label}"), "RTT", wr, lr.clone());
        if security == Security::Quic {
            // rust-libp2p never sends early data: its first-connection figure stands
            // beside weft's resumed one.
            let resumed = connections::first_byte_resumed(ONE_WAY, runs).await?;
            let resumed_rtts = in_rtts(&resumed);
            both(
                format!(
                    "dial to first response byte, resumed (0-RTT early stream; rust-libp2p: first connection), {label}, relay 60 ms RTT"
                ),
                "ms",
                resumed,
                l,
            );
            both(
                format!("  the same in round trips, resumed, {label}"),
                "RTT",
                resumed_rtts,
                lr,
            );
        }
    }

    if options.wants("streams") && options.tcp() {
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

    for security in options.connection_stacks() {
        if !options.wants("memory") {
            break;
        }
        // QUIC connections share their endpoint's socket (no file-descriptor cap), but
        // weft reserves a starting receive window per QUIC connection from the host's
        // memory budget (1/8 of the machine): 500 stay within it.
        let wanted = if options.quick { 1000 } else { 5000 };
        let conns = match security {
            Security::Quic => wanted.min(500),
            _ => max_connections(wanted),
        };
        let streams = if options.quick { 200 } else { 250 };
        let children = if options.quick { 1 } else { 3 };
        let w = memory::measure(Weft::NAME, security, conns, streams, children)?;
        let l = memory::measure(Libp2p::NAME, security, conns, streams, children)?;
        let label = security.label();
        both(
            format!("memory per idle connection, both ends ({conns} connections), {label}"),
            "KiB",
            w.per_connection,
            l.per_connection,
        );
        both(
            format!(
                "memory per idle stream, both ends ({streams} streams on one connection), {label}"
            ),
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

/// A goal against rust-libp2p whose column `--weft-only` left out.
const NOT_MEASURED: &str = "rust-libp2p not measured (--weft-only)";

/// A goal's verdict.
fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// Prints `goal` (weft at least `at_least` times rust-libp2p) for `row`, or that its
/// rust-libp2p column was not measured.
fn print_ratio_goal(goal: &str, row: &Row, at_least: f64) {
    if row.libp2p.is_empty() {
        println!("- {goal}, {}: {NOT_MEASURED}", row.figure);
    } else {
        println!(
            "- {goal}, {}: {}x → {}",
            row.figure,
            num(row.ratio()),
            verdict(row.ratio() >= at_least)
        );
    }
}

/// Prints each goal of the brief with the measured value.
fn print_goals(rows: &[Row]) {
    println!("### Goals");
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
        print_ratio_goal("long link ≥2x rust-libp2p", relay, 2.0);
    }
    for lo in find(rows, "yamux, loopback") {
        if lo.unit == "MiB/s" {
            print_ratio_goal("loopback ≥1.5x rust-libp2p", lo, 1.5);
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
    for r in find(rows, "the UDP relay delays QUIC's whole handshake") {
        println!(
            "- dial to first byte in 2 RTT on a first QUIC connection: weft {} RTT → {} \
             (rust-libp2p: {})",
            num(r.weft.median()),
            verdict(r.weft.median() < 2.5),
            num(r.libp2p.median())
        );
    }
    for r in find(rows, "the same in round trips, resumed") {
        println!(
            "- dial to first byte in 1 RTT on a resumed QUIC connection: weft {} RTT → {} \
             (rust-libp2p does not resume: {} on a first connection)",
            num(r.weft.median()),
            verdict(r.weft.median() < 1.5),
            num(r.libp2p.median())
        );
    }
    for r in rows
        .iter()
        .filter(|r| r.unit == "dials/s" || r.unit == "streams/s")
    {
        print_ratio_goal("≥1.2x rust-libp2p", r, 1.2);
    }
    // QUIC's long link: against the same build through the relay at 0 ms (the
    // relay's own cost factored out), and against rust-libp2p QUIC.
    for relay in find(rows, "QUIC, relay 60 ms RTT") {
        if relay.unit != "MiB/s" || relay.figure.contains("loss") {
            continue;
        }
        let base_name = relay.figure.replace("relay 60 ms RTT", "relay 0 ms RTT");
        if let Some(zero) = rows.iter().find(|r| r.figure == base_name) {
            let share = relay.weft.median() / zero.weft.median();
            println!(
                "- QUIC long link ≥0.8 of the relay at 0 ms, {}: {:.0}% → {}",
                relay.figure,
                share * 100.0,
                verdict(share >= 0.8)
            );
        }
        print_ratio_goal("QUIC long link ≥2x rust-libp2p QUIC", relay, 2.0);
    }
    for r in find(rows, "memory per idle connection") {
        println!(
            "- memory per idle connection ≤ half of rust-libp2p's: {}x → {}",
            num(r.ratio()),
            verdict(r.ratio() <= 0.5)
        );
    }
}
