//! The encrypted channel after the handshake: framing, coalescing, buffering.
//!
//! One buffer per direction, allocated on first use and reused for every frame:
//!
//! - writes: small writes are copied into a plaintext buffer until it holds a full
//!   frame ([`MAX_PLAINTEXT_LEN`]) or the caller flushes; a large write with nothing
//!   buffered is encrypted straight from the caller's slice. The frame is encrypted
//!   into one reused ciphertext buffer and written out before more is accepted.
//! - reads: the socket is read into a ciphertext buffer that holds one maximal frame
//!   (several small ones per read); each frame is decrypted straight into the
//!   caller's buffer when it is large enough, else into a reused plaintext buffer.

use crate::framing::{LEN_PREFIX, MAX_FRAME_LEN, MAX_PLAINTEXT_LEN, TAG_LEN};
use futures::io::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use weft_upgrader::BoxedIo;

/// An encrypted libp2p Noise channel: bytes written are encrypted and framed, bytes
/// read are decrypted and authenticated.
///
/// Returned (boxed) in [`weft_upgrader::SecuredConnection::io`]. Call `flush` to push
/// out buffered small writes; `close` flushes, then closes the underlying stream.
pub struct NoiseStream {
    io: BoxedIo,
    cipher: snow::TransportState,
    read: ReadBuffers,
    write: WriteBuffers,
}

impl std::fmt::Debug for NoiseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseStream").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct ReadBuffers {
    /// Ciphertext from the socket: `raw[raw_start..raw_end]` is not yet decrypted.
    raw: Box<[u8]>,
    raw_start: usize,
    raw_end: usize,
    /// Decrypted bytes not yet handed out: `plain[plain_start..plain_end]`.
    plain: Box<[u8]>,
    plain_start: usize,
    plain_end: usize,
    /// The socket reported end of file.
    eof: bool,
}

#[derive(Default)]
struct WriteBuffers {
    /// Plaintext waiting for a full frame or a flush: `plain[..plain_len]`.
    plain: Box<[u8]>,
    plain_len: usize,
    /// The encrypted frame being written out: `frame[frame_start..frame_end]`.
    frame: Box<[u8]>,
    frame_start: usize,
    frame_end: usize,
}

fn invalid_data(error: snow::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("noise frame rejected: {error}"),
    )
}

impl NoiseStream {
    pub(crate) fn new(io: BoxedIo, cipher: snow::TransportState) -> Self {
        NoiseStream {
            io,
            cipher,
            read: ReadBuffers::default(),
            write: WriteBuffers::default(),
        }
    }

    /// Encrypts `plaintext` (at most [`MAX_PLAINTEXT_LEN`] bytes) into the frame buffer.
    fn seal(
        cipher: &mut snow::TransportState,
        frame: &mut [u8],
        plaintext: &[u8],
    ) -> io::Result<usize> {
        let len = cipher
            .write_message(plaintext, &mut frame[LEN_PREFIX..])
            .map_err(|error| io::Error::other(format!("noise encryption failed: {error}")))?;
        let prefix = u16::try_from(len).map_err(|_| io::Error::other("noise frame too long"))?;
        frame[..LEN_PREFIX].copy_from_slice(&prefix.to_be_bytes());
        Ok(LEN_PREFIX + len)
    }

    /// Encrypts the buffered plaintext into the frame buffer (which must be empty).
    fn seal_buffered(&mut self) -> io::Result<()> {
        let write = &mut self.write;
        let plaintext = write.plain.get(..write.plain_len).unwrap_or_default();
        write.frame_end = Self::seal(&mut self.cipher, &mut write.frame, plaintext)?;
        write.frame_start = 0;
        write.plain_len = 0;
        Ok(())
    }

    /// Writes out the pending encrypted frame, if any.
    fn poll_drain_frame(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.write.frame_start < self.write.frame_end {
            let pending = &self.write.frame[self.write.frame_start..self.write.frame_end];
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write.frame_start += written;
        }
        self.write.frame_start = 0;
        self.write.frame_end = 0;
        Poll::Ready(Ok(()))
    }

    fn ensure_write_buffers(&mut self) {
        if self.write.frame.is_empty() {
            self.write.frame = vec![0; LEN_PREFIX + MAX_FRAME_LEN].into_boxed_slice();
            self.write.plain = vec![0; MAX_PLAINTEXT_LEN].into_boxed_slice();
        }
    }

    fn ensure_read_buffers(&mut self) {
        if self.read.raw.is_empty() {
            self.read.raw = vec![0; LEN_PREFIX + MAX_FRAME_LEN].into_boxed_slice();
            self.read.plain = vec![0; MAX_FRAME_LEN].into_boxed_slice();
        }
    }

    /// The length of the complete frame at the start of the raw buffer, if one is there.
    fn complete_frame_len(read: &ReadBuffers) -> Option<usize> {
        let available = read.raw.get(read.raw_start..read.raw_end)?;
        let prefix = available.get(..LEN_PREFIX)?;
        let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        (available.len() >= LEN_PREFIX + len).then_some(len)
    }

    /// Bytes the raw buffer must hold from `raw_start` before the next frame is complete.
    fn needed_raw_bytes(read: &ReadBuffers) -> usize {
        let available = &read.raw[read.raw_start..read.raw_end];
        match available.get(..LEN_PREFIX) {
            Some(prefix) => LEN_PREFIX + usize::from(u16::from_be_bytes([prefix[0], prefix[1]])),
            None => LEN_PREFIX,
        }
    }
}

impl AsyncRead for NoiseStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.ensure_read_buffers();
        loop {
            let read = &mut this.read;
            if read.plain_start < read.plain_end {
                let available = &read.plain[read.plain_start..read.plain_end];
                let n = available.len().min(buf.len());
                buf[..n].copy_from_slice(&available[..n]);
                read.plain_start += n;
                return Poll::Ready(Ok(n));
            }
            if let Some(len) = Self::complete_frame_len(read) {
                let start = read.raw_start + LEN_PREFIX;
                let ciphertext = &read.raw[start..start + len];
                read.raw_start = start + len;
                if read.raw_start == read.raw_end {
                    read.raw_start = 0;
                    read.raw_end = 0;
                }
                // snow's ring cipher decrypts without allocating only into a buffer
                // at least as long as the ciphertext.
                if buf.len() >= len && len >= TAG_LEN {
                    let n = this
                        .cipher
                        .read_message(ciphertext, buf)
                        .map_err(invalid_data)?;
                    if n == 0 {
                        continue;
                    }
                    return Poll::Ready(Ok(n));
                }
                let n = this
                    .cipher
                    .read_message(ciphertext, &mut read.plain)
                    .map_err(invalid_data)?;
                read.plain_start = 0;
                read.plain_end = n;
                continue;
            }
            if read.eof {
                if read.raw_start == read.raw_end {
                    return Poll::Ready(Ok(0));
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream ended inside a noise frame",
                )));
            }
            let needed = Self::needed_raw_bytes(read);
            if read.raw_start + needed > read.raw.len() {
                read.raw.copy_within(read.raw_start..read.raw_end, 0);
                read.raw_end -= read.raw_start;
                read.raw_start = 0;
            }
            let free = &mut read.raw[read.raw_end..];
            let n = ready!(Pin::new(&mut this.io).poll_read(cx, free))?;
            if n == 0 {
                read.eof = true;
            }
            read.raw_end += n;
        }
    }
}

impl AsyncWrite for NoiseStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.ensure_write_buffers();
        ready!(this.poll_drain_frame(cx))?;
        let accepted = if this.write.plain_len == 0 && buf.len() >= MAX_PLAINTEXT_LEN {
            let chunk = &buf[..MAX_PLAINTEXT_LEN];
            this.write.frame_end = Self::seal(&mut this.cipher, &mut this.write.frame, chunk)?;
            this.write.frame_start = 0;
            MAX_PLAINTEXT_LEN
        } else {
            let write = &mut this.write;
            let room = MAX_PLAINTEXT_LEN - write.plain_len;
            let n = room.min(buf.len());
            write.plain[write.plain_len..write.plain_len + n].copy_from_slice(&buf[..n]);
            write.plain_len += n;
            if write.plain_len == MAX_PLAINTEXT_LEN {
                this.seal_buffered()?;
            }
            n
        };
        // Start sending a sealed frame now; what does not fit goes out on the next
        // write or flush.
        if let Poll::Ready(Err(error)) = this.poll_drain_frame(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(accepted))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain_frame(cx))?;
        if this.write.plain_len > 0 {
            this.seal_buffered()?;
            ready!(this.poll_drain_frame(cx))?;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().io).poll_close(cx)
    }
}
