//! Length-prefixed protobuf messages on a stream, bounded: an unsigned-varint length,
//! then that many bytes of protobuf, as the circuit relay, AutoNAT and DCUtR frame
//! their messages.
//!
//! A [`Framing`] names the protocol (for errors) and the largest message it takes.
//! [`Framing::decode_prefix`] and [`Framing::decode_frame`] are the pure part: given
//! the bytes received so far they say "a message of this length", "need more" or
//! "rejected", decided from the prefix alone, before any body byte is read and without
//! allocating. [`Framing::read`] feeds them one prefix byte at a time and then reads
//! exactly the body, so nothing past the message is consumed (after a relay's last
//! message the stream carries the relayed connection, whose first bytes must stay in
//! it).
//!
//! ```
//! use weft_upgrader::framing::{Frame, Framing};
//!
//! const FRAMING: Framing = Framing::new("example", 4096);
//! // 4096 takes two prefix bytes (0x80 0x20); 4097 is refused from the prefix alone.
//! assert_eq!(FRAMING.decode_frame(&[0x80, 0x20]), Ok(Frame::NeedMore));
//! assert!(FRAMING.decode_frame(&[0x81, 0x20]).is_err());
//! assert_eq!(
//!     FRAMING.decode_frame(&[2, 0x08, 0x00, 9]),
//!     Ok(Frame::Complete { header: 1, len: 2 })
//! );
//! ```

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use prost::Message;

/// The longest length prefix [`Framing`] reads: a varint of two bytes covers messages
/// below 16 KiB, above what any of these protocols allows.
const LONGEST_PREFIX: usize = 2;

/// The framing of one protocol's messages: its name, for errors, and the largest
/// message body it reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    protocol: &'static str,
    max_len: usize,
}

/// What [`Framing::decode_frame`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A complete message: `header` prefix bytes, then `len` body bytes.
    Complete {
        /// Bytes of the length prefix.
        header: usize,
        /// Bytes of the body.
        len: usize,
    },
    /// The prefix or the body is incomplete.
    NeedMore,
}

/// Why a frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The declared (or encoded) length is above the protocol's limit; `len` is
    /// `u64::MAX` when the prefix would need more bytes than the limit's.
    #[error("{protocol} message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The protocol whose message it is.
        protocol: &'static str,
        /// The length declared or encoded.
        len: u64,
        /// The protocol's limit.
        max: usize,
    },
    /// The length prefix is not a minimal unsigned varint.
    #[error("malformed length prefix of {protocol} message")]
    MalformedPrefix {
        /// The protocol whose message it is.
        protocol: &'static str,
    },
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
    #[error("malformed {protocol} message: {source}")]
    Decode {
        /// The protocol whose message it is.
        protocol: &'static str,
        /// What the protobuf decoder said.
        source: prost::DecodeError,
    },
}

impl Framing {
    /// The framing of `protocol`'s messages, at most `max_len` bytes each (below
    /// 16 KiB: a two-byte prefix).
    ///
    /// # Panics
    ///
    /// When `max_len` is above 16 KiB (a programming error, found at compile time in
    /// a `const`).
    pub const fn new(protocol: &'static str, max_len: usize) -> Self {
        assert!(
            max_len < 1 << 14,
            "a frame limit needs at most 2 prefix bytes"
        );
        Framing { protocol, max_len }
    }

    /// The protocol's name, as errors give it.
    pub const fn protocol(&self) -> &'static str {
        self.protocol
    }

    /// The largest message body.
    pub const fn max_len(&self) -> usize {
        self.max_len
    }

    /// The prefix bytes of the longest message allowed.
    const fn max_prefix_len(&self) -> usize {
        if self.max_len < 1 << 7 {
            1
        } else {
            LONGEST_PREFIX
        }
    }

    fn too_large(&self, len: u64) -> FrameError {
        FrameError::TooLarge {
            protocol: self.protocol,
            len,
            max: self.max_len,
        }
    }

    /// Decodes the length prefix at the start of `buf`: `Some((prefix bytes, body
    /// length))`, or `None` while the prefix is unfinished.
    ///
    /// # Errors
    ///
    /// [`FrameError`] when the prefix is malformed, declares more than the limit, or
    /// would need more bytes than the limit's prefix.
    pub fn decode_prefix(&self, buf: &[u8]) -> Result<Option<(usize, usize)>, FrameError> {
        let (len, rest) = match unsigned_varint::decode::u64(buf) {
            Ok(v) => v,
            Err(unsigned_varint::decode::Error::Insufficient) => {
                // An unfinished prefix already as long as the longest allowed one.
                if buf.len() >= self.max_prefix_len() {
                    return Err(self.too_large(u64::MAX));
                }
                return Ok(None);
            }
            Err(_) => {
                return Err(FrameError::MalformedPrefix {
                    protocol: self.protocol,
                })
            }
        };
        if len > self.max_len as u64 {
            return Err(self.too_large(len));
        }
        // Within the bound, so it fits a usize.
        Ok(Some((buf.len() - rest.len(), len as usize)))
    }

    /// Decodes the frame at the start of `buf`.
    ///
    /// # Errors
    ///
    /// The rejections of [`Framing::decode_prefix`], decided before any body byte.
    pub fn decode_frame(&self, buf: &[u8]) -> Result<Frame, FrameError> {
        let Some((header, len)) = self.decode_prefix(buf)? else {
            return Ok(Frame::NeedMore);
        };
        if buf.len() - header < len {
            return Ok(Frame::NeedMore);
        }
        Ok(Frame::Complete { header, len })
    }

    /// Encodes a message with its length prefix.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLarge`] when the message is above the limit.
    pub fn encode(&self, message: &impl Message) -> Result<Vec<u8>, FrameError> {
        let len = message.encoded_len();
        if len > self.max_len {
            return Err(self.too_large(len as u64));
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
    /// [`CodecError::Frame`] above the limit, [`CodecError::Decode`] when the protobuf
    /// is malformed.
    pub fn decode<M: Message + Default>(&self, body: &[u8]) -> Result<M, CodecError> {
        if body.len() > self.max_len {
            return Err(self.too_large(body.len() as u64).into());
        }
        M::decode(body).map_err(|source| CodecError::Decode {
            protocol: self.protocol,
            source,
        })
    }

    /// Reads one message into `buf` (cleared first; it never grows past the limit),
    /// consuming exactly its frame.
    ///
    /// # Errors
    ///
    /// [`CodecError`]: the stream failed or ended early, the frame was rejected, or
    /// the body did not decode.
    pub async fn read<M, R>(&self, io: &mut R, buf: &mut Vec<u8>) -> Result<M, CodecError>
    where
        M: Message + Default,
        R: AsyncRead + Unpin,
    {
        let mut prefix = [0u8; LONGEST_PREFIX];
        let mut filled = 0;
        let len = loop {
            io.read_exact(&mut prefix[filled..=filled]).await?;
            filled += 1;
            if let Some((_, len)) = self.decode_prefix(&prefix[..filled])? {
                break len;
            }
        };
        buf.clear();
        buf.resize(len, 0);
        io.read_exact(buf).await?;
        self.decode(buf)
    }

    /// Writes one message with its length prefix and flushes.
    ///
    /// # Errors
    ///
    /// [`CodecError`]: the message is too large or the stream failed.
    pub async fn write<W>(&self, io: &mut W, message: &impl Message) -> Result<(), CodecError>
    where
        W: AsyncWrite + Unpin,
    {
        let frame = self.encode(message)?;
        io.write_all(&frame).await?;
        io.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A message of one bytes field, as the protocols' protobufs have them.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Blob {
        #[prost(bytes = "vec", tag = "1")]
        data: Vec<u8>,
    }

    const SMALL: Framing = Framing::new("small", 100);
    const LARGE: Framing = Framing::new("large", 8192);

    #[test]
    fn prefixes_are_bounded_before_any_body() {
        assert_eq!(LARGE.decode_prefix(&[]), Ok(None));
        assert_eq!(LARGE.decode_prefix(&[3, 1, 2]), Ok(Some((1, 3))));
        // 8192 = 0x80 0x40: allowed; 8193 is not.
        assert_eq!(LARGE.decode_prefix(&[0x80, 0x40]), Ok(Some((2, 8192))));
        assert_eq!(
            LARGE.decode_prefix(&[0x81, 0x40]),
            Err(FrameError::TooLarge {
                protocol: "large",
                len: 8193,
                max: 8192
            })
        );
        // A third prefix byte is never needed, nor a second below 128.
        assert!(matches!(
            LARGE.decode_prefix(&[0x80, 0x80]),
            Err(FrameError::TooLarge { len: u64::MAX, .. })
        ));
        assert!(matches!(
            SMALL.decode_prefix(&[0x80]),
            Err(FrameError::TooLarge { len: u64::MAX, .. })
        ));
        assert_eq!(
            LARGE.decode_prefix(&[0x80, 0x00]),
            Err(FrameError::MalformedPrefix { protocol: "large" })
        );
        assert_eq!(
            SMALL.decode_frame(&[101]).unwrap_err().to_string(),
            "small message of 101 bytes exceeds the limit of 100"
        );
    }

    #[test]
    fn frames_need_their_whole_body() {
        assert_eq!(SMALL.decode_frame(&[3, 1, 2]), Ok(Frame::NeedMore));
        assert_eq!(
            SMALL.decode_frame(&[3, 1, 2, 3, 9]),
            Ok(Frame::Complete { header: 1, len: 3 })
        );
    }

    #[test]
    fn messages_above_the_limit_are_not_encoded() {
        let big = Blob { data: vec![7; 100] };
        assert!(matches!(
            SMALL.encode(&big),
            Err(FrameError::TooLarge { len: 102, .. })
        ));
        assert_eq!(LARGE.encode(&big).unwrap().len(), 1 + 102);
    }

    #[tokio::test]
    async fn the_reader_consumes_exactly_one_frame_and_refuses_oversized_ones() {
        let msg = Blob { data: vec![1, 2] };
        let mut bytes = SMALL.encode(&msg).unwrap();
        bytes.extend_from_slice(b"next");
        let mut io = futures::io::Cursor::new(bytes);
        let mut buf = Vec::new();
        let read: Blob = SMALL.read(&mut io, &mut buf).await.unwrap();
        assert_eq!(read, msg);
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"next");

        let mut io = futures::io::Cursor::new(vec![0xff, 0xff, 0x03, 0, 0]);
        let r: Result<Blob, _> = LARGE.read(&mut io, &mut buf).await;
        assert!(matches!(r, Err(CodecError::Frame(_))));
        assert_eq!(io.position(), 2, "stopped at the prefix");

        let mut io = futures::io::Cursor::new(vec![5, 0x0a]);
        let r: Result<Blob, _> = SMALL.read(&mut io, &mut buf).await;
        assert!(matches!(r, Err(CodecError::Io(_))));

        let mut io = futures::io::Cursor::new(vec![2, 0x0a, 0x05]);
        let r: Result<Blob, _> = SMALL.read(&mut io, &mut buf).await;
        assert!(matches!(
            r,
            Err(CodecError::Decode {
                protocol: "small",
                ..
            })
        ));
        assert!(buf.capacity() <= LARGE.max_len());
    }

    #[tokio::test]
    async fn a_written_message_reads_back() {
        let msg = Blob { data: vec![9; 300] };
        let mut out = Vec::new();
        LARGE.write(&mut out, &msg).await.unwrap();
        assert_eq!(out[..2], [0xaf, 0x02], "303 bytes: a two-byte prefix");
        let back: Blob = LARGE
            .read(&mut futures::io::Cursor::new(out), &mut Vec::new())
            .await
            .unwrap();
        assert_eq!(back, msg);
    }

    proptest! {
        #[test]
        fn encoded_messages_decode_back(data in proptest::collection::vec(any::<u8>(), 0..9000)) {
            let msg = Blob { data };
            match LARGE.encode(&msg) {
                Ok(frame) => {
                    let (header, len) = LARGE.decode_prefix(&frame).unwrap().unwrap();
                    prop_assert_eq!(header + len, frame.len());
                    prop_assert_eq!(LARGE.decode::<Blob>(&frame[header..]).unwrap(), msg);
                }
                Err(FrameError::TooLarge { len, .. }) => prop_assert!(len > 8192),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            for framing in [SMALL, LARGE] {
                if let Ok(Frame::Complete { header, len }) = framing.decode_frame(&bytes) {
                    prop_assert!(len <= framing.max_len());
                    prop_assert!(header <= LONGEST_PREFIX);
                    let _ = framing.decode::<Blob>(&bytes[header..header + len]);
                }
            }
        }
    }
}
