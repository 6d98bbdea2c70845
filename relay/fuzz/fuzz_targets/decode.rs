//! Fuzzes what a peer's bytes go through at a relay and its clients: the frame
//! decoder, the HOP and STOP protobuf decoders, and the reservation voucher's
//! verification (a signed envelope from the relay). Arbitrary bytes must never
//! panic, a complete frame never claims more than the bound, and no forged voucher
//! verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use libp2p_identity::PeerId;
use prost::Message as _;
use weft_relay::codec::{decode_frame, Frame, MAX_MESSAGE_LEN};
use weft_relay::proto::{HopMessage, StopMessage};
use weft_relay::voucher;

fuzz_target!(|data: &[u8]| {
    let body = match decode_frame(data) {
        Ok(Frame::Complete { header, len }) => {
            assert!(len <= MAX_MESSAGE_LEN);
            assert!(header + len <= data.len());
            &data[header..header + len]
        }
        Ok(Frame::NeedMore) | Err(_) => data,
    };
    let _ = HopMessage::decode(body);
    let _ = StopMessage::decode(body);
    // No key signed these bytes, so a voucher must never verify against random ids.
    let (relay, peer) = (PeerId::random(), PeerId::random());
    assert!(voucher::verify(body, relay, peer).is_err());
});
