//! Fuzzes the message decoder: arbitrary bytes must never panic, and a decoded message
//! never claims more bytes than it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((_, used))) = weft_mss::codec::decode(rest, 1024) {
        assert!(used > 0 && used <= rest.len());
        rest = &rest[used..];
    }
});
