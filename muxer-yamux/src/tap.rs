//! The byte stream under yamux, watched and, for resets, written to.
//!
//! The `yamux` crate neither tells a stream *why* it ended (a reset and the death of
//! the connection both read as EOF) nor offers a reset for a stream that is already
//! half-closed. [`Tap`] sits between yamux and the socket: it follows the frame
//! headers that go by in both directions, records what the remote signalled (FIN,
//! RST, go-away) in [`Shared`], and writes the RST frames that
//! [`MuxedStream::reset`](weft_upgrader::MuxedStream::reset) queues, only ever
//! between two of yamux's own frames.

use crate::frame_scan::{FrameHeader, FrameScanner};
use crate::shared::Shared;
use futures::io::{AsyncRead, AsyncWrite};
use futures::ready;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Writes up to this size (yamux's 12-byte headers) are held back and sent together
/// with the next write or flush, in one vectored write: one syscall per frame instead
/// of two, without copying frame bodies.
const SMALL_WRITE: usize = 64;

/// An I/O wrapper that observes yamux frames and can insert RST frames.
#[derive(Debug)]
pub(crate) struct Tap<T> {
    io: T,
    shared: Arc<Shared>,
    inbound: FrameScanner,
    outbound: FrameScanner,
    /// Small writes (headers, queued RST frames) not yet handed to `io`.
    held: Vec<u8>,
}

impl<T> Tap<T> {
    /// Wraps `io`, reporting to `shared`.
    pub(crate) fn new(io: T, shared: Arc<Shared>) -> Self {
        Tap {
            io,
            shared,
            inbound: FrameScanner::default(),
            outbound: FrameScanner::default(),
            held: Vec::with_capacity(4 * SMALL_WRITE),
        }
    }
}

impl<T: AsyncWrite + Unpin> Tap<T> {
    /// Appends the queued RST frames to the held bytes, if yamux is between frames.
    fn take_resets(&mut self) {
        while self.outbound.at_boundary() && self.held.len() < 2 * SMALL_WRITE {
            let Some(id) = self.shared.next_reset() else {
                return;
            };
            tracing::trace!(stream = id, "writing stream reset");
            self.held.extend_from_slice(&FrameHeader::reset(id));
        }
    }

    /// Writes out all held bytes.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.take_resets();
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n.min(self.held.len()));
            self.take_resets();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tap<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let shared = &this.shared;
        this.inbound
            .feed(buf.get(..n).unwrap_or_default(), |header| {
                shared.on_inbound_header(header)
            });
        Poll::Ready(Ok(n))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tap<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.take_resets();
        if buf.len() <= SMALL_WRITE && this.held.len() < 4 * SMALL_WRITE {
            this.held.extend_from_slice(buf);
            this.outbound.feed(buf, |_| {});
            return Poll::Ready(Ok(buf.len()));
        }
        loop {
            let held = this.held.len();
            if held == 0 {
                let n = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
                this.outbound.feed(buf.get(..n).unwrap_or_default(), |_| {});
                return Poll::Ready(Ok(n));
            }
            let parts = [io::IoSlice::new(&this.held), io::IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, &parts))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            this.held.drain(..n.min(held));
            if n > held {
                let written = (n - held).min(buf.len());
                this.outbound
                    .feed(buf.get(..written).unwrap_or_default(), |_| {});
                return Poll::Ready(Ok(written));
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.io).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame_scan::{FLAG_RST, TYPE_DATA};
    use futures::io::{AsyncWriteExt, Cursor};

    #[test]
    fn reset_goes_between_frames_only() {
        futures::executor::block_on(async {
            let shared = Arc::new(Shared::default());
            let mut tap = Tap::new(Cursor::new(Vec::new()), shared.clone());
            // A data frame of 4 bytes on stream 1, written in two parts.
            let frame = [
                0, TYPE_DATA, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4, b'a', b'b', b'c', b'd',
            ];
            tap.write_all(&frame[..6]).await.unwrap();
            shared.queue_reset(3);
            tap.flush().await.unwrap();
            tap.write_all(&frame[6..]).await.unwrap();
            tap.flush().await.unwrap();
            let written = tap.io.into_inner();
            assert_eq!(&written[..16], &frame[..]);
            let reset = FrameHeader::decode(written[16..28].try_into().unwrap());
            assert_eq!((reset.stream_id, reset.flags), (3, FLAG_RST));
            assert_eq!(written.len(), 28);
        });
    }
}
