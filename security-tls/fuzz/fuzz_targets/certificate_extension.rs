//! Fuzzes the DER decoder of the libp2p certificate extension (`SignedKey`): it must
//! never panic, and whatever it accepts must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_security_tls::SignedKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = SignedKey::decode(data) {
        assert_eq!(decoded.encode(), data);
    }
});
