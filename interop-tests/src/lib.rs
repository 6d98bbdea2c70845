//! Interop harness for weft: reference libp2p peers (go-libp2p, js-libp2p,
//! rust-libp2p) behind one command-line contract, and a delaying TCP relay.
//!
//! # The peer contract
//!
//! Every participant is a program that understands:
//!
//! ```text
//! PEER listen --security noise|tls [--ip 127.0.0.1] [--port 0] [--transport tcp|quic]
//!     prints exactly one stdout line, the listen multiaddr ending in /p2p/<peer id>,
//!     then serves /ipfs/ping/1.0.0, /ipfs/id/1.0.0 (agentVersion "<impl>-interop-peer")
//!     and /echo/1.0.0 until killed; logs go to stderr.
//! PEER dial MULTIADDR --security noise|tls [--echo-bytes N] [--timeout-secs S]
//!     connects (over TCP or QUIC, as the address says), waits for identify, pings
//!     once, echoes N random bytes through /echo/1.0.0 and prints one JSON line (see
//!     [`DialResult`]); exit 0 on success.
//! ```
//!
//! The reference peers live in `interop-tests/peers/{go,js,rust}`; [`prepare`] builds
//! them once per build. [`ListeningPeer`] and [`run_dialer`] run them; the `*_command`
//! variants run any other program that follows the contract (such as weft's CLI).
//!
//! ```no_run
//! # async fn demo() -> weft_interop_tests::Result<()> {
//! use weft_interop_tests::{require_impls, run_dialer, Impl, ListeningPeer, Security};
//!
//! if !require_impls(&[Impl::Go, Impl::Rust]) {
//!     return Ok(()); // prints "skipped: ..." (fails instead under CI=true)
//! }
//! let listener = ListeningPeer::spawn(Impl::Rust, Security::Noise).await?;
//! let report = run_dialer(Impl::Go, listener.addr(), Security::Noise, 1 << 20).await?;
//! assert_eq!(report.remote_peer, listener.peer_id());
//! # Ok(()) }
//! ```
//!
//! [`DelayRelay`] adds a fixed one-way delay to a TCP path (also as the `delay-relay`
//! binary) and can play a dead link ([`DelayRelay::stall`]); [`UdpRelay`] does the
//! same for UDP (QUIC), and can drop or reorder a seeded fraction of the datagrams.
//!
//! # Hostile peers
//!
//! The `hostile_*` tests attack `weft listen` (run with [`WeftListen`]) and hold it to
//! its budgets: [`Attacker`] runs rust-libp2p peers that pin memory, [`procfs`] reads the
//! listener's resident memory and open fds, [`run_weft`] runs an honest `weft dial`.
//!
//! # The NAT lab
//!
//! `nat` (Linux, as root) builds network namespaces with NAT routers of four kinds
//! (full cone, address-restricted, port-restricted, symmetric) out of nftables rules,
//! and runs peers behind them.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod attacker;
mod closed_port;
mod command;
mod dialer;
mod error;
mod listener;
#[cfg(target_os = "linux")]
pub mod nat;
mod output;
mod participant;
pub mod paths;
mod prepare;
pub mod procfs;
mod relay;
mod report;
mod tools;
pub mod transport_interop;
pub mod udp_relay;
mod weft_cli;

pub use attacker::{AttackPlan, AttackProgress, Attacker};
pub use closed_port::ClosedTcpPort;
pub use command::PeerCommand;
pub use dialer::{run_dialer, run_dialer_command, DialOptions, DEFAULT_ECHO_BYTES};
pub use error::{HarnessError, Result};
pub use listener::{quic_socket_addr_of, socket_addr_of, ListeningPeer, LISTEN_TIMEOUT};
pub use participant::{Impl, Security, Transport, UnknownSecurity, UnknownTransport};
pub use prepare::{
    prepare, prepare_async, prepare_attacker, prepare_rust_dcutr, prepare_rust_relay,
    prepare_rust_relay_client, prepare_weft_cli,
};
pub use relay::DelayRelay;
pub use report::{DialReport, DialResult, ReportError};
pub use tools::{missing_tools, require_impls, running_in_ci, tool_available};
pub use udp_relay::{UdpRelay, UdpRelayConfig};
pub use weft_cli::{run_weft, weft_binary, WeftListen, WeftRun};
