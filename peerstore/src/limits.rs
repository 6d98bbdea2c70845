//! Bounds that keep a store's size under control whatever peers tell us.

/// Size bounds of a peer store. Every write that would cross one fails with a
/// [`crate::PeerStoreError`] and changes nothing, except [`Limits::max_peers`], which
/// evicts old peers (see its documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Unexpired addresses kept per peer. Default 64.
    pub max_addrs_per_peer: usize,
    /// Length in bytes of one encoded multiaddr. Default 1024.
    pub max_addr_len: usize,
    /// Protocols kept per peer. Default 256.
    pub max_protocols_per_peer: usize,
    /// Length in bytes of one protocol id. Default 512 (a multistream-select message,
    /// id and framing included, must stay within 1024 bytes).
    pub max_protocol_len: usize,
    /// Metadata entries per peer. Default 32.
    pub max_metadata_entries_per_peer: usize,
    /// Length in bytes of a metadata key. Default 128.
    pub max_metadata_key_len: usize,
    /// Size in bytes of one metadata value. Default 4096.
    pub max_metadata_value_len: usize,
    /// Peers kept in the store. Default 100,000.
    ///
    /// When a write would add a peer to a full store, the store first evicts the peers
    /// with the oldest last update that are not connected (a peer is connected while it
    /// has an address with [`crate::CONNECTED_ADDR_TTL`]): one peer, or 1/64 of the
    /// limit when the limit is large, so the eviction scan is paid once per many inserts.
    /// If every peer is connected the write fails with
    /// [`crate::PeerStoreError::StoreFull`]. The memory backend may briefly hold a few
    /// more peers than the limit while several threads insert at once.
    pub max_peers: usize,
    /// Events buffered per subscriber before a slow one starts losing them. Default 1024.
    pub event_capacity: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_addrs_per_peer: 64,
            max_addr_len: 1024,
            max_protocols_per_peer: 256,
            max_protocol_len: 512,
            max_metadata_entries_per_peer: 32,
            max_metadata_key_len: 128,
            max_metadata_value_len: 4096,
            max_peers: 100_000,
            event_capacity: 1024,
        }
    }
}

impl Limits {
    /// How many peers one eviction pass removes.
    pub(crate) fn eviction_batch(&self) -> usize {
        (self.max_peers / 64).max(1)
    }
}
