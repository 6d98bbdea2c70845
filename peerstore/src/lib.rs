//! Peer metadata for weft: what we know about other libp2p peers.
//!
//! One trait, [`PeerStore`], holds for each peer
//!
//! - an **address book** with TTLs (the go-libp2p constants: [`TEMP_ADDR_TTL`],
//!   [`RECENTLY_CONNECTED_ADDR_TTL`], [`OWN_OBSERVED_ADDR_TTL`], [`DEFAULT_ADDR_TTL`],
//!   [`PROVIDER_ADDR_TTL`], [`PERMANENT_ADDR_TTL`], [`CONNECTED_ADDR_TTL`]); expired
//!   addresses are never returned and [`PeerStore::gc`] deletes them;
//! - a **key book**: public keys, checked against the peer id;
//! - a **protocol book**: which protocol ids the peer supports;
//! - **metadata**: agent version, protocol version, small byte values by key;
//! - a **latency** moving average.
//!
//! Two backends: [`MemoryPeerStore`] (default) and, with the `redb` feature,
//! `RedbPeerStore`, a crash-safe file on the pure-Rust `redb` database. Every size is
//! bounded by [`Limits`]; time comes from a [`Clock`] ([`ManualClock`] in tests);
//! changes are announced to [`PeerStore::subscribe`]rs.
//!
//! All methods are synchronous: the memory backend takes short in-memory locks, the redb
//! backend does local file I/O.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use libp2p_identity::Keypair;
//! use weft_peerstore::{MemoryPeerStore, PeerStore, CONNECTED_ADDR_TTL};
//!
//! let store: Arc<dyn PeerStore> = Arc::new(MemoryPeerStore::new());
//! let key = Keypair::generate_ed25519().public();
//! let peer = key.to_peer_id();
//! store.add_pubkey(&peer, &key)?;
//! store.add_addrs(&peer, &["/ip4/10.0.0.1/tcp/4001".parse()?], CONNECTED_ADDR_TTL)?;
//! store.set_protocols(&peer, &["/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"])?;
//! assert_eq!(
//!     store.first_supported_protocol(&peer, &["/meshsub/1.1.0", "/ipfs/ping/1.0.0"])?,
//!     Some("/ipfs/ping/1.0.0".to_owned())
//! );
//! store.record_latency(&peer, Duration::from_millis(20))?;
//! store.on_disconnected(&peer)?; // its addresses now expire in 15 minutes
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod backend;
mod batch;
mod clock;
mod error;
mod event;
mod limits;
mod memory;
mod record;
#[cfg(feature = "redb")]
mod redb_backend;
mod store;
mod ttl;

pub use batch::PeerStoreOp;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{PeerStoreError, Result};
pub use event::PeerStoreEvent;
pub use limits::Limits;
pub use memory::MemoryPeerStore;
#[cfg(feature = "redb")]
pub use redb_backend::{RedbOptions, RedbPeerStore, FORMAT_VERSION};
pub use store::{PeerStore, AGENT_VERSION_KEY, PROTOCOL_VERSION_KEY};
pub use ttl::{
    CONNECTED_ADDR_TTL, DEFAULT_ADDR_TTL, OWN_OBSERVED_ADDR_TTL, PERMANENT_ADDR_TTL,
    PROVIDER_ADDR_TTL, RECENTLY_CONNECTED_ADDR_TTL, TEMP_ADDR_TTL,
};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
