//! The yamux stream multiplexer (`/yamux/1.0.0`) behind weft's muxer trait.
//!
//! Not built yet: this crate will hold what the line above says.
