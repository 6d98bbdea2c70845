//! Framing: each message is an unsigned-varint length and that many bytes of
//! protobuf, at most [`MAX_MESSAGE_LEN`] (go-libp2p reads 8192 on these streams).
//!
//! [`decode_prefix`] is the pure part: given the bytes received so far it says
//! "a message of this length", "need more" or "rejected", decided from the prefix
//! alone, before any body is read. The async reader reads the body into a buffer the
//! caller owns (and has reserved), so a long exchange of dial data reuses one
//! buffer.

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use prost::Message;

/// The largest message read or written.
pub const MAX_MESSAGE_LEN: usize = 8192;

/// The longest length prefix of a message within [`MAX_MESSAGE_LEN`].
const MAX_PREFIX_LEN: usize = 2;

/// Why a frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The declared length is above [`MAX_MESSAGE_LEN`].
    #[error("an AutoNAT message of {0} bytes exceeds the limit of {MAX_MESSAGE_LEN}")]
    TooLarge(u64),
    /// The length prefix is not a minimal unsigned varint.
    #[error("malformed length prefix")]
    MalformedPrefix,
}

/// Decodes the length prefix at the start of `buf`: `Some((prefix bytes, body
/// length))`, or `None` while the prefix is unfinished.
///
/// # Errors
///
/// [`FrameError`] when the prefix is malformed or declares more than
/// [`MAX_MESSAGE_LEN`] bytes.
pub fn decode_prefix(buf: &[u8]) -> Result<Option<(usize, usize)>, FrameError> {
    let (len, rest) = match unsigned_varint::decode::u64(buf) {
        Ok(v) => v,
        Err(unsigned_varint::decode::Error::Insufficient) => {
            // An unfinished prefix already as long as the longest allowed one.
            if buf.len() >= MAX_PREFIX_LEN {
                return Err(FrameError::TooLarge(u64::MAX));
            }
            return Ok(None);
        }
        Err(_) => return Err(FrameError::MalformedPrefix),
    };
    if len > MAX_MESSAGE_LEN as u64 {
        return Err(FrameError::TooLarge(len));
    }
    // Within the bound, so it fits a usize.
    Ok(Some((buf.len() - rest.len(), len as usize)))
}

/// Encodes a message with its length prefix.
///
/// # Errors
///
/// [`FrameError::TooLarge`] when the message is above [`MAX_MESSAGE_LEN`].
pub fn encode_frame(message: &impl Message) -> Result<Vec<u8>, FrameError> {
    let len = message.encoded_len();
    if len > MAX_MESSAGE_LEN {
        return Err(FrameError::TooLarge(len as u64));
    }
    let mut prefix = unsigned_varint::encode::usize_buffer();
    let prefix = unsigned_varint::encode::usize(len, &mut prefix);
    let mut out = Vec::with_capacity(prefix.len() + len);
    out.extend_from_slice(prefix);
    message.encode_raw(&mut out);
    Ok(out)
}

/// Why reading or writing a message failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The stream failed or ended.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The frame was rejected.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The body did not decode.
    #[error("malformed AutoNAT message: {0}")]
    Decode(#[from] prost::DecodeError),
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
    let mut prefix = [0u8; MAX_PREFIX_LEN];
    let mut filled = 0;
    let len = loop {
        io.read_exact(&mut prefix[filled..=filled]).await?;
        filled += 1;
        if let Some((_, len)) = decode_prefix(&prefix[..filled])? {
            break len;
        }
    };
    buf.clear();
    buf.resize(len, 0);
    io.read_exact(buf).await?;
    Ok(M::decode(buf.as_slice())?)
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
    let frame = encode_frame(message)?;
    io.write_all(&frame).await?;
    io.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{
        message::Msg, DialBack, DialRequest, DialResponse, DialStatus, ResponseStatus,
    };
    use proptest::prelude::*;

    #[test]
    fn prefixes_are_bounded_before_any_body() {
        assert_eq!(decode_prefix(&[]), Ok(None));
        assert_eq!(decode_prefix(&[3, 1, 2]), Ok(Some((1, 3))));
        // 8192 = 0x80 0x40: allowed; 8193 is not.
        assert_eq!(decode_prefix(&[0x80, 0x40]), Ok(Some((2, 8192))));
        assert_eq!(
            decode_prefix(&[0x81, 0x40]),
            Err(FrameError::TooLarge(8193))
        );
        // A third prefix byte is never needed.
        assert!(matches!(
            decode_prefix(&[0x80, 0x80]),
            Err(FrameError::TooLarge(_))
        ));
        assert_eq!(
            decode_prefix(&[0x80, 0x00]),
            Err(FrameError::MalformedPrefix)
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
        assert!(matches!(r, Err(CodecError::Frame(FrameError::TooLarge(_)))));
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
                prop_assert!(header <= MAX_PREFIX_LEN);
                if header + len <= bytes.len() {
                    let _ = crate::proto::Message::decode(&bytes[header..header + len]);
                }
            }
        }
    }
}
