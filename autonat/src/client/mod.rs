//! The AutoNAT v2 client.
//!
//! - [`Tracker`]: the addresses under test, the confidence rule and the schedule
//!   (pure, clock passed in).
//! - [`probe`]: one exchange with one server about one address; [`interpret`] and
//!   [`conclude`] are its pure decisions.
//! - [`Verdict`]: what the client concluded, and why.
//!
//! The host runs the loop: it tells the tracker the addresses and the servers (its
//! connected peers that speak the protocol), runs the probes it asks for, and routes
//! dial-back streams to the pending probe by nonce.

mod probe;
mod tracker;
mod verdict;

pub use probe::{conclude, interpret, probe, same_transport, ProbeConfig, Reply};
pub use tracker::{Change, Evidence, Probe, Tracker, TrackerConfig};
pub use verdict::{Reachability, Reason, Verdict};
