//! Fuzzes what a peer's bytes go through in a hole punch: the frame prefix, the
//! protobuf decoder, the reading of the addresses in a CONNECT, and both state
//! machines fed the decoded messages in the order they arrive. Arbitrary bytes must
//! never panic, a frame never claims more than the bound, and no more addresses are
//! kept than the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multiaddr::Multiaddr;
use prost::Message as _;
use std::time::Instant;
use weft_dcutr::codec::decode_prefix;
use weft_dcutr::proto::HolePunch;
use weft_dcutr::{
    decode_theirs, looks_symmetric, Config, Initiator, Responder, MAX_ADDRS, MAX_MESSAGE_LEN,
};

/// Splits `data` into the messages a reader would take from it, one frame after
/// another, stopping at the first bad or unfinished frame.
fn messages(mut data: &[u8]) -> Vec<HolePunch> {
    let mut out = Vec::new();
    while let Ok(Some((header, len))) = decode_prefix(data) {
        assert!(len <= MAX_MESSAGE_LEN);
        let Some(body) = data.get(header..header + len) else {
            break;
        };
        match HolePunch::decode(body) {
            Ok(msg) => out.push(msg),
            Err(_) => break,
        }
        data = &data[header + len..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let ours: Vec<Multiaddr> = vec!["/ip4/203.0.113.7/tcp/4001".parse().expect("valid")];
    let now = Instant::now();
    let msgs = messages(data);
    for msg in &msgs {
        let theirs = decode_theirs(&msg.obs_addrs, None);
        assert!(theirs.len() <= MAX_ADDRS);
        let _ = looks_symmetric(&theirs);
    }

    let mut responder = Responder::new(Config::default(), None, now);
    for msg in &msgs {
        if responder.on_message(msg, &ours, now).is_err() {
            break;
        }
    }

    let mut initiator = Initiator::new(Config::default(), None, now);
    if initiator.connect(&ours, now).is_ok() {
        for msg in &msgs {
            if initiator.on_message(msg, now).is_err() {
                break;
            }
        }
    }
});
