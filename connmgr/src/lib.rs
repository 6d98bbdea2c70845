//! Connection limits and a trimming connection manager for weft.
//!
//! The host asks one trait, [`ConnectionPolicy`], before and after each handshake and
//! when it wants to shed load; the policy answers and the host acts. This crate does no
//! I/O of its own.
//!
//! - [`ConnectionManager`] enforces hard [`ConnectionLimits`] (refusals are typed
//!   [`LimitError`]s) and trims established connections between low and high
//!   [`Watermarks`], ranked by protection, grace period, tag values (plain and
//!   decaying, see [`DecayFn`]), open streams and direction. Time comes from a
//!   [`Clock`]; tests use a [`ManualClock`].
//! - [`NoLimits`] accepts everything and never trims.
//! - A user's own type can implement [`ConnectionPolicy`] (see the README).
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod clock;
mod decay;
mod error;
mod id;
mod limits;
mod manager;
mod permit;
mod policy;
mod state;
mod trim;

pub use clock::{Clock, ManualClock, SystemClock};
pub use decay::DecayFn;
pub use error::{ConfigError, LimitError, LimitKind};
pub use id::{ConnectionId, Direction};
pub use limits::{ip_group, ConnectionLimits, DEFAULT_IPV6_PREFIX_LEN};
pub use manager::{
    ConnectionManager, ConnectionManagerConfig, ConnectionStats, DecayingTag, Watermarks,
};
pub use permit::PendingPermit;
pub use policy::{Admission, ConnectionPolicy, NoLimits};

/// Re-exported so users name the same types as this crate's API.
pub use libp2p_identity::PeerId;
/// Re-exported so users name the same types as this crate's API.
pub use multiaddr::Multiaddr;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
