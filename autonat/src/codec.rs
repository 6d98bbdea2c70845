//! Framing: each message is an unsigned-varint length and that many bytes of
//! protobuf, at most [`MAX_MESSAGE_LEN`] (go-libp2p reads 8192 on these streams),
//! with the bounded framing of [`weft_upgrader::framing`].
//!
//! [`decode_prefix`] is the pure part: given the bytes received so far it says
//! "a message of this length", "need more" or "rejected", decided from the prefix
//! alone, before any body is read. The async reader reads the body into a buffer the
//! caller owns (and has reserved), so a long exchange of dial data reuses one
//! buffer.

use futures::io::{AsyncRead, AsyncWrite};
use prost::Message;
use weft_upgrader::framing::Framing;
pub use weft_upgrader::framing::{CodecError, FrameError};

/// The largest message read or written.
pub const MAX_MESSAGE_LEN: usize = 8192;

/// AutoNAT's framing.
const FRAMING: Framing = Framing::new("AutoNAT", MAX_MESSAGE_LEN);

/// Decodes the length prefix at the start of `buf`: `Some((prefix bytes, body
/// length))`, or `None` while the prefix is unfinished.
///
/// # Errors
///
/// [`FrameError`] when the prefix is malformed or declares more than
/// [`MAX_MESSAGE_LEN`] bytes.
pub fn decode_prefix(buf: &[u8]) -> Result<Option<(usize, usize)>, FrameError> {
    FRAMING.decode_prefix(buf)
}

/// Encodes a message with its length prefix.
///
/// # Errors
///
/// [`FrameError::TooLarge`] when the message is above [`MAX_MESSAGE_LEN`].
pub fn encode_frame(message: &impl Message) -> Result<Vec<u8>, FrameError> {
    FRAMING.encode(message)
}

/// Reads one message into `buf` (cleared first; it never grows past
/// [`MAX_MESSAGE_LEN`]), consuming exactly its frame.
///
/// # Errors
///
/// [`CodecError`]: the stream failed or ended early, the frame was rejected, or the
/// body did not decode.
pub async fn read_message<M, R>(io: &mut R, buf: &mut Vec<u8>) -> Result<M, CodecError>
where
    M: Message + Default,
    R: AsyncRead + Unpin,
{
    FRAMING.read(io, buf).await
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
    use crate::proto::{
        message::Msg, DialBack, DialRequest, DialResponse, DialStatus, ResponseStatus,
    };
    use futures::io::AsyncReadExt;
    use proptest::prelude::*;

    #[test]
    fn the_limit_is_go_libp2ps_8192() {
        // 8192 = 0x80 0x40: allowed; 8193 is not.
        assert_eq!(decode_prefix(&[0x80, 0x40]), Ok(Some((2, 8192))));
        assert_eq!(
            decode_prefix(&[0x81, 0x40]).unwrap_err().to_string(),
            "AutoNAT message of 8193 bytes exceeds the limit of 8192"
        );
    }

    #[test]
    fn messages_are_byte_exact() {
        // A DialRequest for /ip4/1.2.3.4/tcp/4001 with nonce 1.
        let addr: multiaddr::Multiaddr = "/ip4/1.2.3.4/tcp/4001".parse().unwrap();
        let request = crate::proto::Message::new(Msg::DialRequest(DialRequest {
            addrs: vec![addr.to_vec()],
            nonce: 1,
        }));
        let expected = [
            21, // length
            0x0a, 19, // field 1 (dialRequest), 19 bytes
            0x0a, 8, 0x04, 1, 2, 3, 4, 0x06, 0x0f, 0xa1, // addrs[0]
            0x11, 1, 0, 0, 0, 0, 0, 0, 0, // nonce, fixed64
        ];
        assert_eq!(encode_frame(&request).unwrap(), expected);
        let response = crate::proto::Message::new(Msg::DialResponse(DialResponse {
            status: ResponseStatus::Ok as i32,
            addr_idx: 0,
            dial_status: DialStatus::Ok as i32,
        }));
        assert_eq!(
            encode_frame(&response).unwrap(),
            [8, 0x12, 6, 0x08, 0xc8, 0x01, 0x18, 0xc8, 0x01]
        );
        assert_eq!(
            encode_frame(&DialBack { nonce: 0x0102 }).unwrap(),
            [9, 0x09, 2, 1, 0, 0, 0, 0, 0, 0]
        );
    }

    #[tokio::test]
    async fn the_reader_consumes_exactly_one_frame_and_refuses_oversized_ones() {
        let msg = DialBack { nonce: 7 };
        let mut bytes = encode_frame(&msg).unwrap();
        bytes.extend_from_slice(b"next");
        let mut io = futures::io::Cursor::new(bytes);
        let mut buf = Vec::new();
        let read: DialBack = read_message(&mut io, &mut buf).await.unwrap();
        assert_eq!(read, msg);
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"next");
        let mut io = futures::io::Cursor::new(vec![0xff, 0xff, 0x03, 0, 0]);
        let r: Result<DialBack, _> = read_message(&mut io, &mut buf).await;
        assert!(matches!(
            r,
            Err(CodecError::Frame(FrameError::TooLarge { .. }))
        ));
        assert_eq!(io.position(), 2, "stopped at the prefix");
        let mut io = futures::io::Cursor::new(vec![5, 0x09]);
        let r: Result<DialBack, _> = read_message(&mut io, &mut buf).await;
        assert!(matches!(r, Err(CodecError::Io(_))));
        assert!(buf.capacity() <= MAX_MESSAGE_LEN);
    }

    proptest! {
        #[test]
        fn requests_decode_back(
            addrs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8),
            nonce in any::<u64>(),
        ) {
            let msg = crate::proto::Message::new(Msg::DialRequest(DialRequest { addrs, nonce }));
            let frame = encode_frame(&msg).unwrap();
            let (header, len) = decode_prefix(&frame).unwrap().unwrap();
            prop_assert_eq!(header + len, frame.len());
            prop_assert_eq!(crate::proto::Message::decode(&frame[header..]).unwrap(), msg);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(Some((header, len))) = decode_prefix(&bytes) {
                prop_assert!(len <= MAX_MESSAGE_LEN);
                prop_assert!(header <= 2);
                if header + len <= bytes.len() {
                    let _ = crate::proto::Message::decode(&bytes[header..header + len]);
                }
            }
        }
    }
}
