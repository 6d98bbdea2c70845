//! Direct Connection Upgrade through Relay (DCUtR, `/libp2p/dcutr`) for weft.
//!
//! Two peers connected through a relay synchronise over that connection and open a
//! direct one at the same moment, so that both NATs on the way see outbound traffic
//! first and let the other's packets in (hole punching). The peer that accepted the
//! relayed connection, the [`Side::Initiator`] (the spec's B), sends CONNECT with
//! its observed and predicted addresses and measures the RTT until the other's
//! CONNECT; it sends SYNC and punches half an RTT later, when the SYNC has reached
//! the [`Side::Responder`] (the spec's A), which dials at once. Up to three attempts,
//! each with a fresh exchange.
//!
//! - [`Initiator`] and [`Responder`]: the protocol as state machines fed with
//!   messages and instants, no I/O; tested with a clock the tests control.
//! - [`initiate`] and [`respond`]: one exchange on a negotiated stream, each message
//!   bounded to [`MAX_MESSAGE_LEN`] and each read by [`Config::exchange_timeout`].
//! - The addresses ([`encode_ours`], [`decode_theirs`], [`PunchTransport`]): direct
//!   TCP and QUIC only, a bounded number; [`looks_symmetric`] spots a symmetric NAT
//!   from its observed addresses.
//! - Every way it can fail has a reason: [`Failure`].
//!
//! How to punch is the host's business: over TCP both sides dial (a simultaneous
//! open) with the security roles of [`Side::security_role`]; over QUIC the
//! responder dials and the initiator's listening socket sends random packets at
//! [`quic_punch_interval`]s towards it.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod addrs;
pub mod codec;
mod config;
mod error;
mod exchange;
mod machine;
pub mod proto;

pub use addrs::{
    decode_theirs, encode_ours, looks_symmetric, PunchTransport, MAX_ADDRS, SYMMETRIC_PORTS,
};
pub use codec::MAX_MESSAGE_LEN;
pub use config::Config;
pub use error::{AttemptFailure, ExchangeError, Failure};
pub use exchange::{initiate, respond, respond_with};
pub use machine::{
    quic_punch_interval, Initiator, Next, PunchPlan, Responder, ResponderStep, Success,
};

/// The protocol id.
pub const PROTOCOL: &str = "/libp2p/dcutr";

/// Which side of a hole punch we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// We accepted the relayed connection (the spec's B): we start the exchange, and
    /// are the server of the direct connection.
    Initiator,
    /// We dialed through the relay (the spec's A): we answer, dial on SYNC, and are
    /// the client of the direct connection.
    Responder,
}

impl Side {
    /// The security role this side takes on the direct connection, whoever's TCP
    /// SYN lands first: the responder (A) is the client, the initiator (B) the
    /// server.
    pub fn security_role(self) -> weft_upgrader::Role {
        match self {
            Side::Initiator => weft_upgrader::Role::Responder,
            Side::Responder => weft_upgrader::Role::Initiator,
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Initiator => "initiator",
            Side::Responder => "responder",
        })
    }
}

// The README example is a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
