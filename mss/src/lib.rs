//! multistream-select 1.0.0 for libp2p: dialer and listener roles, `na`, lazy (0-RTT) proposals.
//!
//! Not built yet: this crate will hold what the line above says.
