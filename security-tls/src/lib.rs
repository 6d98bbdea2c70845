//! libp2p TLS 1.3 (`/tls/1.0.0`) for weft, with rustls and rcgen.
//!
//! Not built yet: this crate will hold what the line above says.
