//! libp2p Noise (`/noise`, Noise_XX_25519_ChaChaPoly_SHA256) for weft.
//!
//! Not built yet: this crate will hold what the line above says.
