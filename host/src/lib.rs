//! A thin libp2p host: transports, upgrader, stream handlers, lifecycle events, identify and ping.
//!
//! Not built yet: this crate will hold what the line above says.
