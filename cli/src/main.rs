//! The `weft` command: demo, listen, dial, perf.
//!
//! Not built yet: this crate will hold the `weft` binary.

fn main() {
    eprintln!("weft: the command-line tool is not built yet");
    std::process::exit(2);
}
