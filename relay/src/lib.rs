//! Circuit relay v2 for weft.
//!
//! A peer behind a NAT reserves a slot in a relay; others then reach it through the
//! relay at `/<relay addr>/p2p/<relay>/p2p-circuit/p2p/<peer>`. The relayed
//! connection is a plain byte stream ([`Circuit`]) that both ends upgrade with
//! security and a muxer, exactly like a TCP socket.
//!
//! - [`proto`] and [`codec`]: the messages of `/libp2p/circuit/relay/0.2.0/hop` and
//!   `/libp2p/circuit/relay/0.2.0/stop`, framed with an unsigned-varint length and
//!   read within [`codec::MAX_MESSAGE_LEN`], never past the message.
//! - [`Relay`] (the hop side): a [`ReservationTable`] of reservations and circuit
//!   counts kept apart from I/O, and [`Relay::serve_hop`], which answers a hop
//!   stream, opens the stop stream through the host's [`StopOpener`] and splices
//!   the circuit within its data and duration limits, one bounded buffer per
//!   direction reserved from a [`Budget`](weft_upgrader::Budget).
//! - The client side: [`reserve`] (and [`renewal_delay`]), [`connect`], and
//!   [`read_stop`] with [`StopRequest::accept`] for the target.
//! - [`voucher`]: the signed reservation vouchers.
//!
//! This crate opens no connection and negotiates no protocol: the host hands it
//! streams already negotiated to `hop` or `stop`.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod circuit;
mod client;
pub mod codec;
mod config;
mod error;
pub mod proto;
mod server;
mod splice;
mod table;
#[cfg(test)]
mod test_support;
pub mod voucher;

pub use circuit::Circuit;
pub use client::{connect, read_stop, renewal_delay, reserve, ReservationInfo, StopRequest};
pub use config::RelayConfig;
pub use error::{ClientError, HopError, Step};
pub use proto::{Limit, Status};
pub use server::{HopOutcome, HopSource, Relay, StopOpener};
pub use splice::{splice, splice_until, SpliceEnd, SpliceReport};
pub use table::{CircuitId, CircuitSlot, Granted, Refusal, ReservationTable};

/// The protocol id of the hop protocol (client <-> relay).
pub const HOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/hop";
/// The protocol id of the stop protocol (relay -> target).
pub const STOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/stop";

// The README example is a doctest (compiled, and run where it needs only 127.0.0.1).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
