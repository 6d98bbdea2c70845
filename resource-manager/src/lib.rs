//! Hard resource budgets for weft: memory, file descriptors, connections and streams,
//! counted in scopes that form a DAG as in go-libp2p's resource manager.
//!
//! ```text
//! system ─┬─ transient            connections before set_peer, streams before set_protocol
//!         ├─ protocol ── protocol-peer
//!         └─ peer ── connection ── stream
//! allowlist system ── allowlist transient   (trusted addresses, when the normal scopes deny)
//! ```
//!
//! - [`ResourceManager::open_connection`] gives a [`ConnectionScope`];
//!   [`ConnectionScope::open_stream`] a [`StreamScope`]. Both are RAII guards: dropping
//!   one returns everything it holds to every scope on its path.
//! - Every charge goes to every scope on the path, all or nothing; a denial is a
//!   [`ResourceError`] naming the [`ScopeName`] and the [`Resource`], logged at debug
//!   level with the scope's usage.
//! - [`Limits::auto`] scales to the machine, [`Limits::scaled`] is the one knob (memory
//!   and fds), with per-protocol, per-protocol-peer and per-peer overrides and an
//!   [`Allowlist`].
//!
//! - [`ResourceManager::denials`] counts refusals by scope class and resource, for a
//!   `weft_resource_denied_total{scope, resource}` metric.
//!
//! No I/O (except reading machine facts in [`Limits::auto`]); synchronous; memory
//! reservations never allocate, so a muxer may ask per frame.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![allow(
    clippy::result_large_err,
    reason = "a denial names its peer by value (ScopeName::Peer(PeerId), the agreed API); \
              denials are the cold path and Ok carries nothing"
)]

mod allowlist;
mod connection;
mod denials;
mod error;
mod limits;
pub mod machine;
mod manager;
mod registry;
mod resource;
mod scope;
mod stats;
mod stream;

pub use allowlist::{Allowlist, AllowlistError};
pub use connection::ConnectionScope;
pub use denials::Denials;
pub use error::{ResourceError, ScopeName};
pub use limits::{Limits, ScopeLimit, AUTO_MIN_MEMORY};
pub use manager::ResourceManager;
pub use resource::{Direction, Resource};
pub use stats::{ScopeUsage, Stats};
pub use stream::StreamScope;

/// Re-exported so users name the same types as this crate's API.
pub use libp2p_identity::PeerId;
/// Re-exported so users name the same types as this crate's API.
pub use multiaddr::Multiaddr;

#[cfg(test)]
mod tests;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
