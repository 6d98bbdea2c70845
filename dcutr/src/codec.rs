//! Framing: an unsigned-varint length, then that many bytes of protobuf, at most
//! [`MAX_MESSAGE_LEN`] (the spec's 4 KiB, which go-libp2p and rust-libp2p enforce).
//!
//! [`decode_prefix`] is the pure part: it reads a length prefix and rejects one that
//! declares too much before any body byte is read. The async functions move bytes
//! only, one prefix byte at a time, then exactly the body.

use crate::error::ExchangeError;
use crate::proto::HolePunch;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use prost::Message;

/// The largest message read or written (length prefix excluded).
pub const MAX_MESSAGE_LEN: usize = 4096;

/// The longest length prefix of a message within [`MAX_MESSAGE_LEN`].
const MAX_PREFIX_LEN: usize = 2;

/// Decodes the length prefix at the start of `buf`: `Some((prefix bytes, body
/// length))`, or `None` while the prefix is unfinished.
///
/// # Errors
///
/// [`ExchangeError::TooLarge`] as soon as the prefix declares more than
/// [`MAX_MESSAGE_LEN`] (or would need a third byte), [`ExchangeError::MalformedPrefix`]
/// for a varint that is not minimal.
pub fn decode_prefix(buf: &[u8]) -> Result<Option<(usize, usize)>, ExchangeError> {
    let (len, rest) = match unsigned_varint::decode::u64(buf) {
        Ok(v) => v,
        Err(unsigned_varint::decode::Error::Insufficient) => {
            if buf.len() >= MAX_PREFIX_LEN {
                return Err(ExchangeError::TooLarge(u64::MAX));
            }
            return Ok(None);
        }
        Err(_) => return Err(ExchangeError::MalformedPrefix),
    };
    if len > MAX_MESSAGE_LEN as u64 {
        return Err(ExchangeError::TooLarge(len));
    }
    // Within the bound, so it fits a usize.
    Ok(Some((buf.len() - rest.len(), len as usize)))
}

/// Encodes a message with its length prefix.
///
/// # Errors
///
/// [`ExchangeError::TooLarge`] when the message is above [`MAX_MESSAGE_LEN`].
pub fn encode(message: &HolePunch) -> Result<Vec<u8>, ExchangeError> {
    let len = message.encoded_len();
    if len > MAX_MESSAGE_LEN {
        return Err(ExchangeError::TooLarge(len as u64));
    }
    let mut prefix = unsigned_varint::encode::usize_buffer();
    let prefix = unsigned_varint::encode::usize(len, &mut prefix);
    let mut out = Vec::with_capacity(prefix.len() + len);
    out.extend_from_slice(prefix);
    message.encode_raw(&mut out);
    Ok(out)
}

/// Decodes a message body (without its prefix).
///
/// # Errors
///
/// [`ExchangeError::TooLarge`] above [`MAX_MESSAGE_LEN`], [`ExchangeError::Decode`]
/// when the protobuf is malformed.
pub fn decode(body: &[u8]) -> Result<HolePunch, ExchangeError> {
    if body.len() > MAX_MESSAGE_LEN {
        return Err(ExchangeError::TooLarge(body.len() as u64));
    }
    HolePunch::decode(body).map_err(|e| ExchangeError::Decode(e.to_string()))
}

/// Reads one message, consuming exactly its frame.
///
/// # Errors
///
/// [`ExchangeError::Closed`] when the stream ends before or inside the message,
/// [`ExchangeError::Io`] when it fails, and the rejections of [`decode_prefix`] and
/// [`decode`].
pub async fn read_message<R: AsyncRead + Unpin>(io: &mut R) -> Result<HolePunch, ExchangeError> {
    let mut prefix = [0u8; MAX_PREFIX_LEN];
    let mut filled = 0;
    let len = loop {
        io.read_exact(&mut prefix[filled..=filled])
            .await
            .map_err(ExchangeError::from_io)?;
        filled += 1;
        if let Some((_, len)) = decode_prefix(&prefix[..filled])? {
            break len;
        }
    };
    let mut body = vec![0u8; len];
    io.read_exact(&mut body)
        .await
        .map_err(ExchangeError::from_io)?;
    decode(&body)
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
    let frame = encode(message)?;
    io.write_all(&frame).await.map_err(ExchangeError::from_io)?;
    io.flush().await.map_err(ExchangeError::from_io)?;
    Ok(())
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
