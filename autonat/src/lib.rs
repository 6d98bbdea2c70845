//! AutoNAT v2 for weft.
//!
//! A node asks other nodes (servers) to dial one of its addresses and send back a
//! nonce; an address is reachable when enough servers manage to. Each probe tests
//! one address, so every address gets its own verdict.
//!
//! - [`proto`] and [`codec`]: the messages of `/libp2p/autonat/2/dial-request` and
//!   `/libp2p/autonat/2/dial-back`, framed with an unsigned-varint length and read
//!   within [`codec::MAX_MESSAGE_LEN`].
//! - [`server`]: [`Server::serve`] answers a dial request: rate limits
//!   ([`RateLimiter`], per peer and in total, requests in progress too), the
//!   address selection and the amplification guard (dial data before dialing an IP
//!   that is not the client's, counted in chunks of at most
//!   [`MAX_DIAL_DATA_CHUNK`] bytes), and the dial-back through the host's
//!   [`DialBacker`] from a connection of its own.
//! - [`client`]: [`probe`] runs one probe; the [`Tracker`] holds the confidence rule
//!   (several servers must agree, one server never counts twice) and says what to
//!   probe next, re-probing on a timer and when the addresses change; non-public
//!   addresses are never confirmed.
//! - [`dial_back`]: both sides of the dial-back stream.
//!
//! This crate opens no connection and negotiates no protocol: the host hands it
//! negotiated streams and does the dialing.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod client;
pub mod codec;
pub mod dial_back;
mod error;
#[cfg(test)]
mod exchange_tests;
pub mod proto;
pub mod server;
#[cfg(test)]
mod test_support;

pub use client::{
    probe, Change, Evidence, Probe, ProbeConfig, Reachability, Reason, Tracker, TrackerConfig,
    Verdict,
};
pub use error::{ProbeError, ServerError, Step};
pub use proto::DialStatus;
pub use server::{
    DialBackResult, DialBacker, RateLimiter, Rejection, RequestSource, ServeOutcome, Server,
    ServerConfig,
};

/// The protocol id of the dial request (client -> server).
pub const DIAL_REQUEST_PROTOCOL: &str = "/libp2p/autonat/2/dial-request";
/// The protocol id of the dial-back (server -> client).
pub const DIAL_BACK_PROTOCOL: &str = "/libp2p/autonat/2/dial-back";
/// The largest `data` of one DialDataResponse.
pub const MAX_DIAL_DATA_CHUNK: usize = 4096;

// The README example is a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
