//! The rust-libp2p interop peer (being written).
fn main() {}
