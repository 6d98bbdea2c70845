//! multistream-select 1.0.0 for libp2p: dialer and listener roles, `na`, lazy (0-RTT)
//! proposals, and the (deprecated, opt-in) simultaneous-open extension.
//!
//! Every message is `uvarint(len) ‖ UTF-8 text ‖ '\n'` ([`codec`]). The dialer sends
//! the header `/multistream/1.0.0` and its first proposal in one write; the listener
//! echoes an id it accepts or answers `na`. Once an id is echoed the stream belongs to
//! that protocol: [`Negotiated`] wraps it and first returns any bytes that arrived with
//! the last negotiation message.
//!
//! ```no_run
//! # async fn demo(
//! #     a: impl futures::io::AsyncRead + futures::io::AsyncWrite + Unpin,
//! #     b: impl futures::io::AsyncRead + futures::io::AsyncWrite + Unpin,
//! # ) -> Result<(), weft_mss::NegotiationError> {
//! use weft_mss::{dialer_select, listener_select, Protocols, Version};
//!
//! // On the dialing side:
//! let (protocol, stream) = dialer_select(a, ["/noise", "/tls/1.0.0"], Version::V1).await?;
//! // On the listening side:
//! let supported = Protocols::new().with_exact("/noise");
//! let (protocol, stream) = listener_select(b, &supported).await?;
//! # Ok(()) }
//! ```
//!
//! Bounds: messages longer than [`Config::max_message_len`] (default 1024, the limit of
//! go-libp2p) are rejected from their length prefix before the body is read, and at
//! most [`Config::max_na_rounds`] proposals are refused per negotiation. No function
//! here applies a timeout: wrap each negotiation in your runtime's timeout (dropping
//! the future releases everything).

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod codec;
mod config;
mod dialer;
mod error;
mod listener;
mod matcher;
mod message_io;
mod negotiated;
mod simopen;

pub use config::{Config, Version, DEFAULT_MAX_MESSAGE_LEN, DEFAULT_MAX_NA_ROUNDS};
pub use dialer::{dialer_select, dialer_select_with};
pub use error::NegotiationError;
pub use listener::{listener_select, listener_select_with};
pub use matcher::{ProtocolMatcher, Protocols};
pub use negotiated::Negotiated;
pub use simopen::{dialer_select_simopen, SimOpenRole};

/// The multistream-select protocol id, sent as the header of every negotiation.
pub const PROTOCOL_ID: &str = "/multistream/1.0.0";

/// The protocol id of the simultaneous-open extension.
pub const SIMULTANEOUS_CONNECT: &str = "/libp2p/simultaneous-connect";

// The README example is a doctest (compiled, and run where it needs only 127.0.0.1).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
