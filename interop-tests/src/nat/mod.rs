//! A NAT lab of real network namespaces: a public namespace and peers behind NAT
//! routers of four kinds, with nftables rules in the kernel (see [`NatKind`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft_interop_tests::nat::LabError> {
//! use weft_interop_tests::nat::{require_lab, Lab, NatKind};
//!
//! if !require_lab() {
//!     return Ok(()); // "skipped: ..." (a failure under CI=true)
//! }
//! let lab = Lab::new(&[NatKind::FullCone, NatKind::Symmetric])?;
//! // A server in the public namespace, a client behind the full-cone NAT.
//! let server = lab.public().udp_socket(lab.public_addr(0, 4000))?;
//! let client = lab.peer(0).inside().udp_socket("0.0.0.0:5000".parse().unwrap())?;
//! client.send_to(b"hi", lab.public_addr(0, 4000)).await?;
//! let mut buf = [0u8; 2];
//! let (_, from) = server.recv_from(&mut buf).await?;
//! assert_eq!(from.ip(), lab.peer(0).wan_ip());
//! // Programs run inside with `ip netns exec`.
//! let limit = std::time::Duration::from_secs(5);
//! let addrs = lab.peer(1).inside().output("ip", ["-4", "addr"], limit).await?;
//! assert!(String::from_utf8_lossy(&addrs.stdout).contains("10.2.0.2"));
//! # Ok(()) }
//! ```
//!
//! Building a lab needs root (creating namespaces, `setns`), `ip` (iproute2) and
//! `nft` (nftables). [`require_lab`] says whether they are there: locally a test
//! without them prints `skipped: ...`; under `CI=true` it fails.
//!
//! [`LabProcess`] runs a long-lived program (a relay, a listening peer) inside a
//! namespace; [`NetNs::output`] runs one to completion. [`matrix`] keeps the trials
//! per NAT pair and transport and reports success rates; [`cross`] runs it across
//! implementations.

pub mod cross;
mod kind;
mod lab;
pub mod matrix;
mod netns;
mod process;

use std::io;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub use kind::{Filtering, Mapping, NatKind};
pub use lab::{Lab, NatPeer, MAX_PEERS, PUBLIC_HOSTS};
pub use netns::NetNs;
pub use process::LabProcess;

use crate::tools::running_in_ci;

/// What went wrong while building or using the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A tool (`ip`, `nft`, a peer) could not be started or waited for.
    #[error("running `{program}` failed: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: io::Error,
    },
    /// A command exited with an error.
    #[error("`{command}` failed: {output}")]
    Command {
        /// The command line.
        command: String,
        /// What it wrote on stderr.
        output: String,
    },
    /// A setup step inside a namespace failed.
    #[error("{what} failed: {source}")]
    Setup {
        /// The step.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// A program inside the lab ran past its time.
    #[error("{what} did not finish within {limit:?}")]
    Timeout {
        /// The program and where it ran.
        what: String,
        /// The limit.
        limit: Duration,
    },
    /// The lab or its inputs do not fit what a run needs.
    #[error("the lab does not fit the run: {0}")]
    Plan(String),
    /// More peers than the address plan has room for.
    #[error("{0} peers asked for, a lab holds at most {MAX_PEERS}")]
    TooManyPeers(usize),
    /// Socket I/O inside the lab failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Why this machine cannot build a lab, or `None` when it can: root, `ip` and `nft`.
pub fn lab_unsupported() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON
        .get_or_init(|| {
            if !cfg!(target_os = "linux") {
                return Some("network namespaces are a Linux feature".into());
            }
            if !is_root() {
                return Some("making network namespaces needs root".into());
            }
            let runs = |program: &str, arg: &str| {
                Command::new(program)
                    .arg(arg)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            let missing: Vec<&str> = [("ip", "-V", "iproute2"), ("nft", "--version", "nftables")]
                .into_iter()
                .filter(|(program, arg, _)| !runs(program, arg))
                .map(|(_, _, package)| package)
                .collect();
            if missing.is_empty() {
                None
            } else {
                Some(format!("{} not installed", missing.join(" and ")))
            }
        })
        .clone()
}

/// Whether a lab can be built here. Returns `true` when the test can go ahead;
/// otherwise prints `skipped: <reason>` and returns `false`, except under CI
/// (`CI=true`), where it panics so the test fails with the reason.
///
/// # Panics
///
/// Under CI, when the lab cannot be built.
pub fn require_lab() -> bool {
    let Some(reason) = lab_unsupported() else {
        return true;
    };
    if running_in_ci() {
        panic!("CI=true and the NAT lab cannot be built: {reason} (CI runs as root with iproute2 and nftables)");
    }
    eprintln!("skipped: the NAT lab needs root, iproute2 and nftables: {reason}");
    false
}

/// Whether the effective user is root (from `/proc/self/status`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
