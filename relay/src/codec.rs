//! Framing: each message is an unsigned-varint length and that many bytes of
//! protobuf, at most [`MAX_MESSAGE_LEN`] (go-libp2p and rust-libp2p read 4096), with
//! the bounded framing of [`weft_upgrader::framing`].
//!
//! [`decode_frame`] is the pure decoder: given the bytes received so far it says
//! "a message of this length", "need more" or "rejected", never allocating. The async
//! reader feeds it one prefix byte at a time and then reads exactly the body, so
//! nothing past the message is consumed: after the last message the stream carries
//! the relayed connection, whose first bytes must stay in the stream.

use futures::io::{AsyncRead, AsyncWrite};
use prost::Message;
use weft_upgrader::framing::Framing;
pub use weft_upgrader::framing::{CodecError, Frame, FrameError};

/// The largest message read or written.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// The circuit relay's framing.
const FRAMING: Framing = Framing::new("relay", MAX_MESSAGE_LEN);

/// Decodes the frame at the start of `buf`.
///
/// # Errors
///
/// [`FrameError`] when the prefix is malformed or declares more than
/// [`MAX_MESSAGE_LEN`] bytes; decided as soon as the prefix says so, before any body.
pub fn decode_frame(buf: &[u8]) -> Result<Frame, FrameError> {
    FRAMING.decode_frame(buf)
}

/// Encodes a message with its length prefix.
///
/// # Errors
///
/// [`FrameError::TooLarge`] when the message is above [`MAX_MESSAGE_LEN`].
pub fn encode_frame(message: &impl Message) -> Result<Vec<u8>, FrameError> {
    FRAMING.encode(message)
}

/// Reads one message, consuming exactly its frame.
///
/// # Errors
///
/// [`CodecError`]: the stream failed or ended early, the frame was rejected, or the
/// body did not decode.
pub async fn read_message<M, R>(io: &mut R) -> Result<M, CodecError>
where
    M: Message + Default,
    R: AsyncRead + Unpin,
{
    FRAMING.read(io, &mut Vec::new()).await
}

/// Writes one message with its length prefix and flushes.
///
/// # Errors
///
/// [`CodecError`]: the message is too large or the stream failed.
pub async fn write_message<W>(io: &mut W, message: &impl Message) -> Result<(), CodecError>
where
    W: AsyncWrite + Unpin,
{
    FRAMING.write(io, message).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{HopMessage, HopType, Limit, Peer, Reservation, Status};
    use futures::io::AsyncReadExt;
    use proptest::prelude::*;

    #[test]
    fn the_limit_is_the_specs_4096() {
        // 4096 = 0x80 0x20: allowed; 4097 is not, decided from the prefix alone.
        assert_eq!(decode_frame(&[0x80, 0x20]), Ok(Frame::NeedMore));
        assert_eq!(
            decode_frame(&[0x81, 0x20]).unwrap_err().to_string(),
            "relay message of 4097 bytes exceeds the limit of 4096"
        );
    }

    #[test]
    fn a_reserve_and_its_answer_are_byte_exact() {
        let reserve = HopMessage {
            r#type: Some(HopType::Reserve as i32),
            ..Default::default()
        };
        assert_eq!(encode_frame(&reserve).unwrap(), [2, 0x08, 0x00]);
        let status = HopMessage {
            r#type: Some(HopType::Status as i32),
            reservation: Some(Reservation {
                expire: Some(1000),
                addrs: vec![vec![0x04, 127, 0, 0, 1]],
                voucher: None,
            }),
            limit: Some(Limit {
                duration: Some(120),
                data: Some(131072),
            }),
            status: Some(Status::Ok as i32),
            peer: None,
        };
        let expected = [
            24, // length
            0x08, 0x02, // type = STATUS
            0x1a, 0x0a, // reservation, 10 bytes
            0x08, 0xe8, 0x07, // expire = 1000
            0x12, 0x05, 0x04, 127, 0, 0, 1, // addrs[0]
            0x22, 0x06, // limit, 6 bytes
            0x08, 0x78, // duration = 120
            0x10, 0x80, 0x80, 0x08, // data = 131072
            0x28, 0x64, // status = OK (100)
        ];
        assert_eq!(encode_frame(&status).unwrap(), expected);
        let back: HopMessage = HopMessage::decode(&expected[1..]).unwrap();
        assert_eq!(back, status);
        let connect = HopMessage {
            r#type: Some(HopType::Connect as i32),
            peer: Some(Peer {
                id: Some(vec![1, 2, 3]),
                addrs: vec![],
            }),
            ..Default::default()
        };
        assert_eq!(
            encode_frame(&connect).unwrap(),
            [9, 0x08, 0x01, 0x12, 0x05, 0x0a, 0x03, 1, 2, 3]
        );
    }

    #[test]
    fn an_oversized_message_is_not_encoded() {
        let big = HopMessage {
            peer: Some(Peer {
                id: Some(vec![0; MAX_MESSAGE_LEN]),
                addrs: vec![],
            }),
            ..Default::default()
        };
        assert!(matches!(
            encode_frame(&big),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn the_reader_consumes_exactly_one_frame() {
        let msg = HopMessage {
            r#type: Some(HopType::Connect as i32),
            ..Default::default()
        };
        let mut bytes = encode_frame(&msg).unwrap();
        bytes.extend_from_slice(b"circuit bytes");
        let mut io = futures::io::Cursor::new(bytes);
        let read: HopMessage = read_message(&mut io).await.unwrap();
        assert_eq!(read, msg);
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"circuit bytes");
        // An oversized prefix is refused before any body is read.
        let mut io = futures::io::Cursor::new(vec![0xff, 0xff, 0x03, 0, 0]);
        let r: Result<HopMessage, _> = read_message(&mut io).await;
        assert!(matches!(
            r,
            Err(CodecError::Frame(FrameError::TooLarge { .. }))
        ));
        assert_eq!(io.position(), 2, "stopped at the prefix");
        // A truncated body is an error, not a message.
        let mut io = futures::io::Cursor::new(vec![5, 0x08]);
        let r: Result<HopMessage, _> = read_message(&mut io).await;
        assert!(matches!(r, Err(CodecError::Io(_))));
    }

    fn arb_hop() -> impl Strategy<Value = HopMessage> {
        (
            proptest::option::of(0i32..3),
            proptest::option::of((
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..32), 0..4),
            )),
            proptest::option::of((any::<Option<u64>>(), any::<Option<u32>>())),
            proptest::option::of(prop_oneof![Just(0i32), Just(100), Just(200), Just(204)]),
        )
            .prop_map(|(t, peer, limit, status)| HopMessage {
                r#type: t,
                peer: peer.map(|(id, addrs)| Peer { id, addrs }),
                reservation: None,
                limit: limit.map(|(data, duration)| Limit { duration, data }),
                status,
            })
    }

    proptest! {
        #[test]
        fn encoded_messages_decode_back(msg in arb_hop()) {
            let frame = encode_frame(&msg).unwrap();
            match decode_frame(&frame).unwrap() {
                Frame::Complete { header, len } => {
                    prop_assert_eq!(header + len, frame.len());
                    let back = HopMessage::decode(&frame[header..]).unwrap();
                    prop_assert_eq!(back, msg);
                }
                Frame::NeedMore => prop_assert!(false, "a whole frame needs nothing more"),
            }
            // Every strict prefix of a frame needs more.
            for cut in 0..frame.len() {
                prop_assert_eq!(decode_frame(&frame[..cut]).unwrap(), Frame::NeedMore);
            }
        }

        #[test]
        fn arbitrary_bytes_never_claim_more_than_the_bound(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            match decode_frame(&bytes) {
                Ok(Frame::Complete { header, len }) => {
                    prop_assert!(len <= MAX_MESSAGE_LEN);
                    prop_assert!(header + len <= bytes.len());
                    prop_assert!(header <= 2);
                    // Decoding the body never panics, whatever it says.
                    let _ = HopMessage::decode(&bytes[header..header + len]);
                }
                Ok(Frame::NeedMore) => prop_assert!(bytes.len() < 2 + MAX_MESSAGE_LEN),
                Err(_) => {}
            }
        }
    }
}
