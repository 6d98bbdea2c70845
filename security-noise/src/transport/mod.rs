//! The encrypted channel after the handshake: framing, coalescing, buffering.
//!
//! One buffer per direction, encrypted and decrypted in place, sized to what is in
//! flight and released when the direction goes idle, so an idle connection holds no
//! frame buffers at all:
//!
//! - writes ([`WriteBuffer`]): small writes are appended to the frame buffer (after
//!   room for the length prefix) until it holds a full frame (`MAX_PLAINTEXT_LEN`)
//!   or the caller flushes; a large write fills a whole frame at once. The frame is
//!   sealed in place (tag appended) and written out before more is accepted. The
//!   buffer grows to what is pending and is freed when a flush has drained it; a
//!   writer that keeps writing without flushing reuses it for every frame.
//! - reads ([`ReadBuffer`]): the socket is read into a buffer that grows to the
//!   announced frame length (at least `MIN_READ_BUFFER`, so small frames arrive
//!   several per read); each frame is decrypted in place and handed out from there.
//!   The buffer is freed when a read would block with nothing buffered; while frames
//!   keep arriving it is reused for each of them. A freed buffer comes back at the
//!   size of the last frame, so a transfer that pauses between frames (the reader
//!   is faster than the writer) reads each frame in one go: growing from the minimum
//!   instead cost a third of the throughput in `benches/noise.rs`.

mod buffers;
pub(crate) mod cipher;

use crate::framing::LEN_PREFIX;
use buffers::{ReadBuffer, WriteBuffer};
use cipher::FrameCipher;
use futures::io::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use weft_upgrader::{BoxedIo, Reservation};

/// An encrypted libp2p Noise channel: bytes written are encrypted and framed, bytes
/// read are decrypted and authenticated.
///
/// Returned (boxed) in [`weft_upgrader::SecuredConnection::io`]. Call `flush` to push
/// out buffered small writes; `close` flushes, then closes the underlying stream.
pub struct NoiseStream {
    io: BoxedIo,
    cipher: FrameCipher,
    read: ReadBuffer,
    write: WriteBuffer,
    /// The budget's share of the read buffer, for the channel's life.
    _memory: Option<Reservation>,
}

impl std::fmt::Debug for NoiseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseStream").finish_non_exhaustive()
    }
}

impl NoiseStream {
    pub(crate) fn new(io: BoxedIo, cipher: FrameCipher) -> Self {
        NoiseStream {
            io,
            cipher,
            read: ReadBuffer::default(),
            write: WriteBuffer::default(),
            _memory: None,
        }
    }

    /// Holds `memory` (the budget's share of the buffers) as long as the channel.
    pub(crate) fn with_memory(mut self, memory: Reservation) -> Self {
        self._memory = Some(memory);
        self
    }

    /// Writes out the sealed frame, if any.
    fn poll_drain_frame(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(pending) = self.write.unsent() {
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write.sent(written);
        }
        Poll::Ready(Ok(()))
    }

    /// Frees the snow scratch buffer once neither direction holds a buffer.
    fn release_scratch_if_idle(&mut self) {
        if self.read.is_released() && self.write.is_released() {
            self.cipher.release_scratch();
        }
    }

    /// Heap bytes held by the frame buffers: (read, write, cipher scratch).
    #[cfg(test)]
    pub(crate) fn buffer_capacities(&self) -> (usize, usize, usize) {
        (
            self.read.capacity(),
            self.write.capacity(),
            self.cipher.scratch_capacity(),
        )
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
        loop {
            if let Some(n) = this.read.take_plaintext(buf) {
                return Poll::Ready(Ok(n));
            }
            if let Some(frame) = this.read.next_frame() {
                let n = this.cipher.open(frame)?;
                this.read.decrypted(n);
                continue;
            }
            if this.read.eof {
                if this.read.is_empty() {
                    return Poll::Ready(Ok(0));
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream ended inside a noise frame",
                )));
            }
            let free = this.read.space_for_next_frame();
            match Pin::new(&mut this.io).poll_read(cx, free) {
                Poll::Ready(result) => this.read.filled(result?),
                Poll::Pending => {
                    // Idle: nothing buffered, so hold nothing until bytes arrive.
                    if this.read.is_empty() {
                        this.read.release();
                        this.release_scratch_if_idle();
                    }
                    return Poll::Pending;
                }
            }
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
        ready!(this.poll_drain_frame(cx))?;
        let accepted = this.write.append(buf);
        if this.write.is_full() {
            this.cipher.seal(this.write.frame_mut(), LEN_PREFIX)?;
            this.write.sealed()?;
        }
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
        if this.write.has_plaintext() {
            this.cipher.seal(this.write.frame_mut(), LEN_PREFIX)?;
            this.write.sealed()?;
            ready!(this.poll_drain_frame(cx))?;
        }
        // Everything is handed to the socket: the buffer is not needed until the
        // next write.
        this.write.release();
        this.release_scratch_if_idle();
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().io).poll_close(cx)
    }
}

#[cfg(test)]
mod tests;
