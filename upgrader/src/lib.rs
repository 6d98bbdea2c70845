//! The small traits of weft and the upgrade of a raw connection.
//!
//! A libp2p connection starts as a raw byte stream (TCP) and is *upgraded*: first
//! multistream-select picks a security protocol and its handshake proves the remote
//! [`PeerId`](libp2p_identity::PeerId) and encrypts the channel, then a stream
//! multiplexer is chosen (inside the handshake when both sides support inlined
//! negotiation, otherwise by multistream-select over the secure channel).
//!
//! This crate holds the two traits implementations plug into:
//!
//! - [`SecurityUpgrade`]: a security protocol such as `/noise` or `/tls/1.0.0`;
//! - [`StreamMuxer`]: a stream multiplexer such as `/yamux/1.0.0`;
//!
//! and the types they pass around. Both traits are dyn-compatible, so a list of
//! implementations can be chosen at run time.
//!
//! The [`Upgrader`] runs the pipeline (security negotiation, handshake, muxer
//! negotiation unless the handshake agreed one, muxer) and yields a [`Connection`],
//! the type every transport hands to the host. With the `test-suite` feature,
//! `test_suite` holds the conformance checks every
//! implementation of the traits must pass.
//!
//! # Conformance suite
//!
//! Enable the `test-suite` feature for `weft_upgrader::test_suite`: public async
//! checks (TCP on 127.0.0.1, in-memory pipes) for any `SecurityUpgrade` or
//! `StreamMuxer`.
//!
//! # Framing
//!
//! With the `framing` feature, `framing` holds the bounded, length-prefixed protobuf
//! framing that the relay, AutoNAT and DCUtR crates share.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod budget;
mod builder;
mod connection;
mod error;
#[cfg(feature = "framing")]
pub mod framing;
mod io;
mod muxer;
mod role;
mod security;
mod step;
#[cfg(feature = "test-suite")]
pub mod test_suite;
mod upgrader;

pub use budget::{Budget, BudgetDenied, MemoryBudget, Priority, Reservation};
pub use builder::{UpgraderBuilder, DEFAULT_UPGRADE_TIMEOUT};
pub use connection::Connection;
pub use error::{UpgradeError, UpgradeStep};
pub use io::{BoxFuture, BoxedIo, Io};
pub use muxer::{
    BoxedStream, EarlyData, Muxed, MuxedConnection, MuxedStream, MuxerError, SessionInfo,
    StreamMuxer,
};
pub use role::Role;
pub use security::{SecuredConnection, SecurityError, SecurityUpgrade};
pub use upgrader::Upgrader;
pub use weft_mss::NegotiationError;

// The README example is a doctest (compiled, and run where it needs only 127.0.0.1).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
