//! Framing: an unsigned-varint length, then that many bytes of protobuf, at most
//! [`MAX_MESSAGE_LEN`] (the spec's 4 KiB, which go-libp2p and rust-libp2p enforce),
//! with the bounded framing of [`weft_upgrader::framing`], its errors told as
//! [`ExchangeError`]s.
//!
//! [`decode_prefix`] is the pure part: it reads a length prefix and rejects one that
//! declares too much before any body byte is read. The async functions move bytes
//! only, one prefix byte at a time, then exactly the body.

use crate::error::ExchangeError;
use crate::proto::HolePunch;
use futures::io::{AsyncRead, AsyncWrite};
use weft_upgrader::framing::{CodecError, FrameError, Framing};

/// The largest message read or written (length prefix excluded).
pub const MAX_MESSAGE_LEN: usize = 4096;

/// DCUtR's framing.
const FRAMING: Framing = Framing::new("DCUtR", MAX_MESSAGE_LEN);

impl From<FrameError> for ExchangeError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooLarge { len, .. } => ExchangeError::TooLarge(len),
            // The framing's errors are non-exhaustive; any other is a bad prefix.
            _ => ExchangeError::MalformedPrefix,
        }
    }
}

impl From<CodecError> for ExchangeError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Io(e) => ExchangeError::from_io(e),
            CodecError::Frame(e) => e.into(),
            CodecError::Decode { source, .. } => ExchangeError::Decode(source.to_string()),
            other => ExchangeError::Decode(other.to_string()),
        }
    }
}

/// Decodes the length prefix at the start of `buf`: `Some((prefix bytes, body
/// length))`, or `None` while the prefix is unfinished.
///
/// # Errors
///
/// [`ExchangeError::TooLarge`] as soon as the prefix declares more than
/// [`MAX_MESSAGE_LEN`] (or would need a third byte), [`ExchangeError::MalformedPrefix`]
/// for a varint that is not minimal.
pub fn decode_prefix(buf: &[u8]) -> Result<Option<(usize, usize)>, ExchangeError> {
    Ok(FRAMING.decode_prefix(buf)?)
}

/// Encodes a message with its length prefix.
///
/// # Errors
///
/// [`ExchangeError::TooLarge`] when the message is above [`MAX_MESSAGE_LEN`].
pub fn encode(message: &HolePunch) -> Result<Vec<u8>, ExchangeError> {
    Ok(FRAMING.encode(message)?)
}

/// Decodes a message body (without its prefix).
///
/// # Errors
///
/// [`ExchangeError::TooLarge`] above [`MAX_MESSAGE_LEN`], [`ExchangeError::Decode`]
/// when the protobuf is malformed.
pub fn decode(body: &[u8]) -> Result<HolePunch, ExchangeError> {
    Ok(FRAMING.decode(body)?)
}

/// Reads one message, consuming exactly its frame.
///
/// # Errors
///
/// [`ExchangeError::Closed`] when the stream ends before or inside the message,
/// [`ExchangeError::Io`] when it fails, and the rejections of [`decode_prefix`] and
/// [`decode`].
pub async fn read_message<R: AsyncRead + Unpin>(io: &mut R) -> Result<HolePunch, ExchangeError> {
    Ok(FRAMING.read(io, &mut Vec::new()).await?)
}

/// Writes one message with its length prefix and flushes.
///
/// # Errors
///
/// [`ExchangeError::TooLarge`] or [`ExchangeError::Io`].
pub async fn write_message<W: AsyncWrite + Unpin>(
    io: &mut W,
    message: &HolePunch,
) -> Result<(), ExchangeError> {
    Ok(FRAMING.write(io, message).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Type;
    use proptest::prelude::*;

    #[test]
    fn messages_are_byte_exact() {
        // CONNECT with /ip4/127.0.0.1/tcp/1 (04 7f000001 06 0001).
        let addr: multiaddr::Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let connect = HolePunch::connect(vec![addr.to_vec()]);
        assert_eq!(
            encode(&connect).unwrap(),
            [12, 0x08, 0x64, 0x12, 0x08, 0x04, 127, 0, 0, 1, 0x06, 0x00, 0x01]
        );
        // SYNC: type 300 = 0xac 0x02.
        assert_eq!(encode(&HolePunch::sync()).unwrap(), [3, 0x08, 0xac, 0x02]);
        let back = decode(&[0x08, 0xac, 0x02]).unwrap();
        assert_eq!(back.kind(), Ok(Type::Sync));
    }

    #[test]
    fn prefixes_are_bounded() {
        assert_eq!(decode_prefix(&[]), Ok(None));
        assert_eq!(decode_prefix(&[3]), Ok(Some((1, 3))));
        // 4096 = 0x80 0x20: allowed; 4097 is not, decided from the prefix alone.
        assert_eq!(decode_prefix(&[0x80, 0x20]), Ok(Some((2, 4096))));
        assert_eq!(
            decode_prefix(&[0x81, 0x20]),
            Err(ExchangeError::TooLarge(4097))
        );
        assert!(matches!(
            decode_prefix(&[0x80, 0x80]),
            Err(ExchangeError::TooLarge(_))
        ));
        assert_eq!(
            decode_prefix(&[0x80, 0x00]),
            Err(ExchangeError::MalformedPrefix)
        );
    }

    #[test]
    fn an_oversized_message_is_not_encoded() {
        let big = HolePunch::connect(vec![vec![0; MAX_MESSAGE_LEN]]);
        assert!(matches!(encode(&big), Err(ExchangeError::TooLarge(_))));
    }

    #[tokio::test]
    async fn the_reader_stops_at_the_prefix_of_an_oversized_frame() {
        let mut io = futures::io::Cursor::new(vec![0xff, 0xff, 0x03, 0, 0]);
        let r = read_message(&mut io).await;
        assert!(matches!(r, Err(ExchangeError::TooLarge(_))));
        assert_eq!(io.position(), 2, "stopped at the prefix");
        let mut io = futures::io::Cursor::new(vec![5, 0x08]);
        assert_eq!(read_message(&mut io).await, Err(ExchangeError::Closed));
        let mut io = futures::io::Cursor::new(vec![2, 0xff, 0xff]);
        assert!(matches!(
            read_message(&mut io).await,
            Err(ExchangeError::Decode(_))
        ));
    }

    proptest! {
        #[test]
        fn encoded_messages_decode_back(
            t in proptest::option::of(prop_oneof![Just(100i32), Just(300), any::<i32>()]),
            addrs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8),
        ) {
            let msg = HolePunch { r#type: t, obs_addrs: addrs };
            let frame = encode(&msg).unwrap();
            let (header, len) = decode_prefix(&frame).unwrap().unwrap();
            prop_assert_eq!(header + len, frame.len());
            prop_assert_eq!(decode(&frame[header..]).unwrap(), msg);
        }

        #[test]
        fn arbitrary_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(msg) = decode(&bytes) {
                let _ = msg.kind();
            }
        }
    }
}
