//! Fuzzes whole-certificate parsing and verification: never a panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_security_tls::{verification_algorithms, Libp2pCertificate};

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = Libp2pCertificate::parse(data) {
        let _ = cert.signature_scheme();
        let _ = cert.verify(weft_security_tls::UnixTime::now(), &verification_algorithms());
    }
});
