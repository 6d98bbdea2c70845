//! Fuzzes what a peer's bytes go through: the frame prefix, the protobuf decoder, the
//! client's reading of a server message and the server's address selection. Arbitrary
//! bytes must never panic, and a frame never claims more than the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use weft_autonat::codec::{decode_prefix, MAX_MESSAGE_LEN};
use weft_autonat::proto::{message::Msg, DialBack, Message};

fuzz_target!(|data: &[u8]| {
    let Ok(Some((header, len))) = decode_prefix(data) else {
        return;
    };
    assert!(len <= MAX_MESSAGE_LEN);
    let body = &data[header.min(data.len())..];
    let body = &body[..len.min(body.len())];
    if let Ok(msg) = Message::decode(body) {
        let _ = weft_autonat::client::interpret(&msg, 100_000, false);
        if let Some(Msg::DialRequest(request)) = &msg.msg {
            let observed = "1.2.3.4".parse().ok();
            let _ = weft_autonat::server::select::select(&request.addrs, observed, |_| true);
        }
    }
    let _ = DialBack::decode(body);
});
