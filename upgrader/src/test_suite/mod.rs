//! Conformance tests any [`SecurityUpgrade`](crate::SecurityUpgrade) or
//! [`StreamMuxer`](crate::StreamMuxer) implementation can run (feature `test-suite`).
//!
//! The traits of this crate are small, so many behaviours they promise are not
//! visible in their signatures: that a handshake proves the right peer, that a
//! half-closed channel still reads, that a muxer applies backpressure, that a reset
//! reaches the remote. The functions here check those behaviours against real TCP
//! sockets on `127.0.0.1` (and in-memory pipes), so our own implementations and any
//! third party's are held to the same bar.
//!
//! Each check is a public `async fn` that **panics with a message naming the broken
//! promise** when the implementation under test misbehaves, and every wait is bounded
//! by a timeout, so a hang becomes a failure. They spawn tasks on, and need, a
//! multi-threaded or current-thread **tokio** runtime, as `#[tokio::test]` provides.
//!
//! The implementation under test is passed as a factory, so the suite can build as
//! many instances (and identities) as it needs:
//!
//! ```ignore
//! use std::sync::Arc;
//! use weft_upgrader::test_suite;
//!
//! #[tokio::test]
//! async fn noise_conformance() {
//!     test_suite::security::run_all(|keypair| Arc::new(MyNoise::new(keypair)) as _).await;
//! }
//!
//! #[tokio::test]
//! async fn yamux_conformance() {
//!     test_suite::muxer::run_all(|| Arc::new(MyYamux::default()) as _).await;
//! }
//! ```
//!
//! Run one check at a time (each is public) to get one test per behaviour.

pub mod muxer;
pub mod security;

mod support;

pub use support::CountingBudget;
