//! Cross-crate tests of weft and tests against rust-libp2p, go-libp2p and js-libp2p.
//!
//! Not built yet: this crate will hold what the line above says.
