//! Fuzzes the Noise handshake payload decoder with arbitrary bytes: it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = weft_security_noise::payload::decode_payload(data);
});
