//! The [`PeerStore`] trait: what the host uses, whatever the backend.

use std::fmt;
use std::time::Duration;

use libp2p_identity::{PeerId, PublicKey};
use multiaddr::Multiaddr;
use tokio::sync::broadcast;

use crate::batch::PeerStoreOp;
use crate::error::Result;
use crate::event::PeerStoreEvent;
use crate::ttl::{CONNECTED_ADDR_TTL, RECENTLY_CONNECTED_ADDR_TTL};

/// Metadata key of the agent version (the identify `agentVersion`), as in go-libp2p.
pub const AGENT_VERSION_KEY: &str = "AgentVersion";
/// Metadata key of the protocol version (the identify `protocolVersion`), as in go-libp2p.
pub const PROTOCOL_VERSION_KEY: &str = "ProtocolVersion";

/// Peer metadata: addresses with TTLs, public keys, protocols, metadata and latency.
///
/// Dyn-compatible: hold it as `Arc<dyn PeerStore>`. All methods are synchronous. The
/// memory backend only takes short in-memory locks; the redb backend does local file
/// I/O and, for writes with the default durability, an `fsync` per write (about a
/// millisecond on an SSD). That is fine from async code for occasional writes; a task
/// that writes in bulk to the persistent store should use `spawn_blocking`.
///
/// Reads never return expired addresses; [`PeerStore::gc`] also deletes them.
/// A failed write changes nothing. Many writes can be applied at once with
/// [`PeerStore::apply_batch`] (one transaction on the redb backend).
pub trait PeerStore: Send + Sync + fmt::Debug {
    // ----- addresses -----

    /// Adds addresses with `ttl`. An address already stored keeps the longer of the old
    /// and new TTL and expiry (go-libp2p `AddAddrs`); a zero `ttl` does nothing.
    fn add_addrs(&self, peer: &PeerId, addrs: &[Multiaddr], ttl: Duration) -> Result<()>;

    /// Stores addresses with exactly `ttl`, overriding stored TTLs (go-libp2p `SetAddrs`);
    /// a zero `ttl` removes them.
    fn set_addrs(&self, peer: &PeerId, addrs: &[Multiaddr], ttl: Duration) -> Result<()>;

    /// Gives every address of `peer` stored with `old_ttl` the TTL `new_ttl`, counted
    /// from now; a zero `new_ttl` removes them (go-libp2p `UpdateAddrs`).
    fn update_addrs(&self, peer: &PeerId, old_ttl: Duration, new_ttl: Duration) -> Result<()>;

    /// Removes the given addresses of `peer`.
    fn remove_addrs(&self, peer: &PeerId, addrs: &[Multiaddr]) -> Result<()>;

    /// Removes every address of `peer`.
    fn clear_addrs(&self, peer: &PeerId) -> Result<()>;

    /// The unexpired addresses of `peer`, in insertion order.
    fn addrs(&self, peer: &PeerId) -> Result<Vec<Multiaddr>>;

    /// Deletes every expired address (and peers left with nothing); returns how many
    /// addresses were deleted.
    fn gc(&self) -> Result<usize>;

    /// Call when the last connection to `peer` closes: its [`CONNECTED_ADDR_TTL`]
    /// addresses become [`RECENTLY_CONNECTED_ADDR_TTL`] addresses.
    fn on_disconnected(&self, peer: &PeerId) -> Result<()> {
        self.update_addrs(peer, CONNECTED_ADDR_TTL, RECENTLY_CONNECTED_ADDR_TTL)
    }

    // ----- keys -----

    /// Stores the public key of `peer`. Fails with
    /// [`crate::PeerStoreError::KeyMismatch`] unless `PeerId::from(key) == peer`.
    fn add_pubkey(&self, peer: &PeerId, key: &PublicKey) -> Result<()>;

    /// The public key of `peer`: the stored one, or the one inlined in the peer id
    /// (Ed25519 and secp256k1 ids carry their key).
    fn pubkey(&self, peer: &PeerId) -> Result<Option<PublicKey>>;

    // ----- protocols -----

    /// Replaces the protocols of `peer`.
    fn set_protocols(&self, peer: &PeerId, protocols: &[&str]) -> Result<()>;

    /// Adds protocols to those of `peer`.
    fn add_protocols(&self, peer: &PeerId, protocols: &[&str]) -> Result<()>;

    /// Removes protocols from those of `peer`.
    fn remove_protocols(&self, peer: &PeerId, protocols: &[&str]) -> Result<()>;

    /// The protocols of `peer`, in the order they were added.
    fn protocols(&self, peer: &PeerId) -> Result<Vec<String>>;

    /// The subset of `protocols` that `peer` supports, in the order of `protocols`.
    fn supports_protocols(&self, peer: &PeerId, protocols: &[&str]) -> Result<Vec<String>>;

    /// The first of `protocols` that `peer` supports.
    fn first_supported_protocol(&self, peer: &PeerId, protocols: &[&str])
        -> Result<Option<String>>;

    // ----- metadata -----

    /// Sets a small metadata value of `peer`.
    fn put_metadata(&self, peer: &PeerId, key: &str, value: &[u8]) -> Result<()>;

    /// A metadata value of `peer`.
    fn metadata(&self, peer: &PeerId, key: &str) -> Result<Option<Vec<u8>>>;

    /// Removes a metadata value of `peer`.
    fn remove_metadata(&self, peer: &PeerId, key: &str) -> Result<()>;

    /// Stores the agent version of `peer` (metadata key [`AGENT_VERSION_KEY`]).
    fn set_agent_version(&self, peer: &PeerId, version: &str) -> Result<()> {
        self.put_metadata(peer, AGENT_VERSION_KEY, version.as_bytes())
    }

    /// The agent version of `peer`, if stored and valid UTF-8.
    fn agent_version(&self, peer: &PeerId) -> Result<Option<String>> {
        Ok(self
            .metadata(peer, AGENT_VERSION_KEY)?
            .and_then(|v| String::from_utf8(v).ok()))
    }

    /// Stores the protocol version of `peer` (metadata key [`PROTOCOL_VERSION_KEY`]).
    fn set_protocol_version(&self, peer: &PeerId, version: &str) -> Result<()> {
        self.put_metadata(peer, PROTOCOL_VERSION_KEY, version.as_bytes())
    }

    /// The protocol version of `peer`, if stored and valid UTF-8.
    fn protocol_version(&self, peer: &PeerId) -> Result<Option<String>> {
        Ok(self
            .metadata(peer, PROTOCOL_VERSION_KEY)?
            .and_then(|v| String::from_utf8(v).ok()))
    }

    // ----- latency -----

    /// Folds a round-trip time into the peer's moving average (weight 0.1 for the new
    /// sample, as go-libp2p; the first sample is taken as is). The redb backend commits
    /// latency without `fsync`: it survives a restart only if a later write is durable.
    fn record_latency(&self, peer: &PeerId, rtt: Duration) -> Result<()>;

    /// The moving average of round-trip times of `peer`.
    fn latency(&self, peer: &PeerId) -> Result<Option<Duration>>;

    // ----- peers -----

    /// Every peer the store holds anything about (expired addresses not counted until
    /// [`PeerStore::gc`] runs).
    fn peers(&self) -> Result<Vec<PeerId>>;

    /// Number of peers held.
    fn peer_count(&self) -> Result<usize>;

    /// Removes `peer` and everything about it.
    fn remove_peer(&self, peer: &PeerId) -> Result<()>;

    // ----- batches -----

    /// Applies `ops` in order, as the calls they name would, and returns each one's
    /// result; a failed op changes nothing and the others still apply. A later op
    /// sees the effect of the earlier ones.
    ///
    /// The outer error means that nothing of the batch was stored (a transactional
    /// backend could not commit). The provided implementation applies the ops one by
    /// one and never fails as a whole; the redb backend overrides it to commit the
    /// whole batch in one write transaction (one `fsync`, durable if any op is), with
    /// the change events sent after the commit.
    fn apply_batch(&self, ops: &[PeerStoreOp]) -> Result<Vec<Result<()>>> {
        Ok(ops.iter().map(|op| op.apply_to(self)).collect())
    }

    /// A receiver of change events. It is bounded: a subscriber that falls behind by
    /// more than [`crate::Limits::event_capacity`] events gets `RecvError::Lagged` and
    /// loses the oldest ones; writers never wait for subscribers.
    fn subscribe(&self) -> broadcast::Receiver<PeerStoreEvent>;
}
