//! Identify (`/ipfs/id/1.0.0`) and identify push (`/ipfs/id/push/1.0.0`).
//!
//! The host asks every new connection's peer who it is, answers the same question,
//! and pushes its protocols and addresses to every connected peer when they change.
//! What a peer says goes to the peerstore and out as
//! [`Event::PeerIdentified`](crate::Event::PeerIdentified) and
//! [`Event::PeerProtocolsChanged`](crate::Event::PeerProtocolsChanged).

mod service;
pub(crate) mod wire;

/// The identify protocol id.
pub const PROTOCOL: &str = "/ipfs/id/1.0.0";
/// The identify push protocol id.
pub const PUSH_PROTOCOL: &str = "/ipfs/id/push/1.0.0";
