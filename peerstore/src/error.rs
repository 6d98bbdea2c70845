//! The error type of every store operation.

use libp2p_identity::PeerId;

/// Why a store operation failed. A failed write changes nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerStoreError {
    /// The public key does not belong to the peer: `PeerId::from(key) != peer`.
    #[error("public key belongs to {key_peer}, not to {peer}")]
    KeyMismatch {
        /// The peer the key was offered for.
        peer: Box<PeerId>,
        /// The peer the key actually identifies.
        key_peer: Box<PeerId>,
    },
    /// The peer would have more addresses than [`crate::Limits::max_addrs_per_peer`].
    #[error("peer {peer} would have {count} addresses, the limit is {limit}")]
    TooManyAddresses {
        /// The peer.
        peer: PeerId,
        /// The count the write would reach.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An encoded multiaddr is longer than [`crate::Limits::max_addr_len`].
    #[error("multiaddr of {len} bytes, the limit is {limit}")]
    AddressTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The peer would have more protocols than [`crate::Limits::max_protocols_per_peer`].
    #[error("peer {peer} would have {count} protocols, the limit is {limit}")]
    TooManyProtocols {
        /// The peer.
        peer: PeerId,
        /// The count the write would reach.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A protocol id is empty or longer than [`crate::Limits::max_protocol_len`].
    #[error("protocol id of {len} bytes, allowed 1..={limit}")]
    InvalidProtocolId {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A metadata key is empty or longer than [`crate::Limits::max_metadata_key_len`].
    #[error("metadata key of {len} bytes, allowed 1..={limit}")]
    InvalidMetadataKey {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A metadata value is larger than [`crate::Limits::max_metadata_value_len`].
    #[error("metadata value of {len} bytes, the limit is {limit}")]
    MetadataValueTooLarge {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The peer would have more metadata entries than
    /// [`crate::Limits::max_metadata_entries_per_peer`].
    #[error("peer {peer} would have more than {limit} metadata entries")]
    TooManyMetadataEntries {
        /// The peer.
        peer: PeerId,
        /// The limit.
        limit: usize,
    },
    /// The store holds [`crate::Limits::max_peers`] peers and none can be evicted
    /// (all are connected).
    #[error("peer store full: {limit} peers, all connected")]
    StoreFull {
        /// The limit.
        limit: usize,
    },
    /// The store file is damaged or not a weft peer store; it was left untouched.
    #[error("peer store file is corrupt: {0}")]
    Corrupt(String),
    /// The store file was written in a format this version does not know (written by a
    /// newer weft, or not a weft peer store); it was left untouched.
    #[error("peer store file has format version {found}, this build reads up to {supported}")]
    UnsupportedFormat {
        /// The version found in the file.
        found: u64,
        /// The newest version this build reads and writes.
        supported: u64,
    },
    /// Another process (or another handle in this one) has the store file open.
    #[error("peer store file is already open elsewhere")]
    AlreadyOpen,
    /// A filesystem error.
    #[error("peer store I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// An error of the storage engine.
    #[error("peer store storage error: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Short for `Result<T, PeerStoreError>`.
pub type Result<T, E = PeerStoreError> = std::result::Result<T, E>;
