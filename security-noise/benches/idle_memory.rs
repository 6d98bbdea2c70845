//! Resident memory of idle Noise connections: weft-noise vs libp2p-noise in one run.
//!
//! Each implementation runs in its own child process (this binary, re-executed), so
//! one measurement's freed heap never hides another's growth. A child opens
//! `IDLE_CONNECTIONS` (default 1000) Noise connections over in-memory duplex pairs,
//! sends one small message each way on every connection, then reads `VmRSS` from
//! `/proc/self/status`. A `duplex-only` child does the same without Noise: its figure is
//! the cost of the duplex pair and the test harness, subtracted to give the Noise cost.
//!
//! `cargo bench -p weft-security-noise --bench idle_memory`

mod support;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::Keypair;
use std::process::Command;
use support::{duplex, libp2p, libp2p_pair, weft_pair, Pair};
use weft_security_noise::Noise;

const CHILD_ENV: &str = "WEFT_IDLE_MEMORY_CHILD";
const DUPLEX_BUFFER: usize = 64 << 10;
const KINDS: [&str; 3] = ["duplex-only", "weft-noise", "libp2p-noise"];

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// Each implementation's two sides, each configured once (rust-libp2p's transport
/// clones one `libp2p_noise::Config` per connection, as weft shares one `Noise`).
struct Sides {
    weft: (Noise, Noise),
    libp2p: (libp2p_noise::Config, libp2p_noise::Config),
}

async fn open(kind: &str, sides: &Sides) -> Pair {
    let ends = duplex(DUPLEX_BUFFER);
    match kind {
        "duplex-only" => (Box::new(ends.0), Box::new(ends.1)),
        "weft-noise" => weft_pair(&sides.weft.0, &sides.weft.1, ends).await,
        "libp2p-noise" => libp2p_pair(&sides.libp2p.0, &sides.libp2p.1, ends).await,
        other => panic!("unknown kind {other}"),
    }
}

/// One small message each way, so both ends have used their read and write paths.
async fn ping_pong(pair: &mut Pair) {
    let mut buf = [0u8; 4];
    pair.0.write_all(b"ping").await.unwrap();
    pair.0.flush().await.unwrap();
    pair.1.read_exact(&mut buf).await.unwrap();
    pair.1.write_all(b"pong").await.unwrap();
    pair.1.flush().await.unwrap();
    pair.0.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}

fn child(kind: &str, connections: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sides = Sides {
            weft: (
                Noise::new(&Keypair::generate_ed25519()).unwrap(),
                Noise::new(&Keypair::generate_ed25519()).unwrap(),
            ),
            libp2p: (libp2p(), libp2p()),
        };
        // Warm up: lazily initialised state of the runtime and the crypto libraries.
        for _ in 0..8 {
            let mut pair = open(kind, &sides).await;
            ping_pong(&mut pair).await;
        }
        let before = rss_bytes();
        let mut idle = Vec::with_capacity(connections);
        for _ in 0..connections {
            let mut pair = open(kind, &sides).await;
            ping_pong(&mut pair).await;
            idle.push(pair);
        }
        let after = rss_bytes();
        println!("{}", (after.saturating_sub(before)) / (2 * connections));
        drop(idle);
    });
}

fn main() {
    let connections: usize = std::env::var("IDLE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    if let Ok(kind) = std::env::var(CHILD_ENV) {
        child(&kind, connections);
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut per_end = Vec::new();
    for kind in KINDS {
        let output = Command::new(&exe).env(CHILD_ENV, kind).output().unwrap();
        assert!(output.status.success(), "{kind} child failed: {output:?}");
        let bytes: usize = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap();
        per_end.push(bytes);
    }
    let base = per_end[0];
    println!("== resident memory per idle connection end ({connections} connections) ==");
    for (kind, bytes) in KINDS.iter().zip(&per_end) {
        println!(
            "{kind:<13} {:>8.1} KiB per end   ({:>7.1} KiB above duplex-only)",
            *bytes as f64 / 1024.0,
            bytes.saturating_sub(base) as f64 / 1024.0,
        );
    }
    let ours = per_end[1].saturating_sub(base) as f64;
    let theirs = per_end[2].saturating_sub(base) as f64;
    println!(
        "weft-noise / libp2p-noise (above duplex-only): {:.2}",
        ours / theirs
    );
}
