//! The AutoNAT v2 server: serves `/libp2p/autonat/2/dial-request` streams.
//!
//! - [`select`]: which address to dial, and the amplification guard's count of
//!   dial data (pure).
//! - [`RateLimiter`]: requests per minute and in progress (pure, clock passed in).
//! - [`Server::serve`]: one exchange, each step within a timeout; the dial itself
//!   goes through the host's [`DialBacker`], which must dial from a connection of
//!   its own (see its docs).

mod config;
mod limiter;
pub mod select;
mod serve;

pub use config::ServerConfig;
pub use limiter::{RateLimiter, Rejection, RequestSlot};
pub use serve::{DialBackResult, DialBacker, RequestSource, ServeOutcome, Server};
