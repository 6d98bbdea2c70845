//! Noise benchmarks (being written).
fn main() {}
