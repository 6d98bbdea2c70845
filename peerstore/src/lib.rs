//! libp2p peer metadata for weft: addresses with TTLs, keys, protocols, metadata; memory and redb backends.
//!
//! Not built yet: this crate will hold what the line above says.
