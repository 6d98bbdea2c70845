//! The byte stream under yamux, watched and, for resets and window grants, written to.
//!
//! The `yamux` crate neither tells a stream *why* it ended (a reset and the death of
//! the connection both read as EOF) nor offers a reset for a stream that is already
//! half-closed. [`Tap`] sits between yamux and the socket: it follows the frame
//! headers that go by in both directions, records what the remote signalled (FIN,
//! RST, go-away) in [`Shared`], and writes the RST frames that
//! [`MuxedStream::reset`](weft_upgrader::MuxedStream::reset) queues, only ever
//! between two of yamux's own frames.
//!
//! With a [`WindowBoost`](crate::WindowBoost) it also reads the inbound frames itself,
//! one header at a time, and lets [`Boost`] decide for each: hand it to yamux, hold
//! its body until yamux's window has room, or drop the body of a stream we dropped.
//! The window grants the boost decides on are written like the resets, between
//! yamux's frames, and flushed at once from the read side too (yamux may have
//! nothing to write for a while).

use crate::boost::{Boost, Inbound};
use crate::frame_scan::{FrameHeader, FrameScanner, HEADER_LEN, TYPE_DATA};
use crate::shared::Shared;
use futures::io::{AsyncRead, AsyncWrite};
use futures::ready;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Writes up to this size (yamux's 12-byte headers) are held back and sent together
/// with the next write or flush, in one vectored write: one syscall per frame instead
/// of two, without copying frame bodies.
const SMALL_WRITE: usize = 64;

/// An I/O wrapper that observes yamux frames and can insert RST frames and window
/// grants (and, with a boost, hold inbound data).
#[derive(Debug)]
pub(crate) struct Tap<T> {
    io: T,
    shared: Arc<Shared>,
    inbound: FrameScanner,
    outbound: FrameScanner,
    /// Small writes (headers, queued RST frames) not yet handed to `io`.
    held: Vec<u8>,
    /// The window boost, when configured: then inbound frames are read here, frame by
    /// frame, instead of passed through.
    boost: Option<Box<Inflow>>,
}

/// The inbound side of a tap with a window boost.
#[derive(Debug)]
struct Inflow {
    boost: Boost,
    /// The header being read from `io`.
    header: [u8; HEADER_LEN],
    header_filled: usize,
    /// What happens to the body being read from `io`.
    body: Body,
    /// Bytes to hand to yamux before anything else (headers, released frames).
    out: Vec<u8>,
    out_pos: usize,
    /// `io` reached its end.
    eof: bool,
    /// The task waiting in `poll_read`, woken when held bytes can be released.
    reader: Option<Waker>,
    /// Grants were written but maybe not flushed.
    flush_pending: bool,
}

impl Inflow {
    /// Wakes the task waiting in `poll_read` if it can go on: held bytes can be
    /// released, or the socket ended and nothing is held any more (a stream was
    /// dropped or reset), so yamux can be told.
    fn wake_reader_if_unblocked(&mut self) {
        if self.boost.can_release() || (self.eof && !self.boost.has_held()) {
            if let Some(waker) = self.reader.take() {
                waker.wake();
            }
        }
    }
}

/// The body of the inbound frame being read.
#[derive(Debug)]
enum Body {
    /// Between frames.
    None,
    /// Passed through to yamux: bytes left.
    Pass(u32),
    /// Read into a buffer to hold for `stream`.
    Hold {
        stream: u32,
        fin: bool,
        bytes: Vec<u8>,
        filled: usize,
    },
    /// Read and dropped: bytes left.
    Discard(u32),
    /// A released held body, handed to yamux from `pos` on.
    Release { bytes: Vec<u8>, pos: usize },
}

impl<T> Tap<T> {
    /// Wraps `io`, reporting to `shared`, with a window boost if `boost` is given.
    pub(crate) fn new(io: T, shared: Arc<Shared>, boost: Option<Boost>) -> Self {
        let boost = boost.map(|boost| {
            shared.collect_dropped();
            Box::new(Inflow {
                boost,
                header: [0; HEADER_LEN],
                header_filled: 0,
                body: Body::None,
                out: Vec::new(),
                out_pos: 0,
                eof: false,
                reader: None,
                flush_pending: false,
            })
        });
        Tap {
            io,
            shared,
            inbound: FrameScanner::default(),
            outbound: FrameScanner::default(),
            held: Vec::with_capacity(4 * SMALL_WRITE),
            boost,
        }
    }

    /// Tells the boost about streams dropped on our side.
    fn note_dropped(&mut self) {
        if let Some(inflow) = &mut self.boost {
            for id in self.shared.take_dropped() {
                inflow.boost.on_dropped(id);
            }
            inflow.wake_reader_if_unblocked();
        }
    }

    /// Feeds bytes yamux wrote to the outbound scanner (and the boost); wakes the
    /// reader if yamux's new window lets held bytes go.
    fn feed_outbound(&mut self, bytes: &[u8]) {
        match &mut self.boost {
            None => self.outbound.feed(bytes, |_| {}),
            Some(inflow) => {
                let boost = &mut inflow.boost;
                self.outbound
                    .feed(bytes, |header| boost.on_outbound(header));
                inflow.wake_reader_if_unblocked();
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> Tap<T> {
    /// Appends the queued RST frames and window grants to the held bytes, if yamux
    /// is between frames.
    fn take_control_frames(&mut self) {
        while self.outbound.at_boundary() && self.held.len() < 2 * SMALL_WRITE {
            if let Some(id) = self.shared.next_reset() {
                tracing::trace!(stream = id, "writing stream reset");
                let frame = FrameHeader::reset(id);
                if let Some(inflow) = &mut self.boost {
                    inflow.boost.on_outbound(FrameHeader::decode(&frame));
                }
                self.held.extend_from_slice(&frame);
                continue;
            }
            let Some(grant) = self.boost.as_mut().and_then(|i| i.boost.next_grant()) else {
                return;
            };
            self.held.extend_from_slice(&grant);
        }
    }

    /// Writes out all held bytes.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.take_control_frames();
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n.min(self.held.len()));
            self.take_control_frames();
        }
        Poll::Ready(Ok(()))
    }

    /// Sends grants the inbound side decided on, without waiting: yamux may have
    /// nothing to write for a while. Errors are left for yamux's next write to meet.
    fn push_grants(&mut self, cx: &mut Context<'_>) {
        let Some(inflow) = &mut self.boost else {
            return;
        };
        if !inflow.boost.has_grants() && !inflow.flush_pending {
            return;
        }
        inflow.flush_pending = true;
        if !matches!(self.poll_write_held(cx), Poll::Ready(Ok(()))) {
            return;
        }
        if let Poll::Ready(Ok(())) = Pin::new(&mut self.io).poll_flush(cx) {
            if let Some(inflow) = &mut self.boost {
                inflow.flush_pending = inflow.boost.has_grants();
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Tap<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = if this.boost.is_some() {
            this.note_dropped();
            let result = this.poll_read_boosted(cx, buf);
            this.push_grants(cx);
            result
        } else {
            Pin::new(&mut this.io).poll_read(cx, buf)
        };
        let n = ready!(result)?;
        let shared = &this.shared;
        this.inbound
            .feed(buf.get(..n).unwrap_or_default(), |header| {
                shared.on_inbound_header(header)
            });
        Poll::Ready(Ok(n))
    }
}

impl<T: AsyncRead + Unpin> Tap<T> {
    /// Reads frames from `io`, hands yamux what fits its windows and holds the rest.
    fn poll_read_boosted(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let Some(inflow) = self.boost.as_deref_mut() else {
            return Poll::Ready(Err(io::ErrorKind::Other.into()));
        };
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let io = &mut self.io;
        loop {
            if inflow.out_pos < inflow.out.len() {
                let n = copy_prefix(inflow.out.get(inflow.out_pos..).unwrap_or_default(), buf);
                inflow.out_pos += n;
                if inflow.out_pos == inflow.out.len() {
                    inflow.out.clear();
                    inflow.out_pos = 0;
                }
                return Poll::Ready(Ok(n));
            }
            match &mut inflow.body {
                Body::None => {}
                Body::Pass(left) => {
                    let n = ready!(poll_read_body(&mut *io, cx, left, buf))?;
                    if *left == 0 {
                        inflow.body = Body::None;
                    }
                    return Poll::Ready(Ok(n));
                }
                Body::Discard(left) => {
                    if *left > 0 {
                        ready!(poll_read_body(&mut *io, cx, left, buf))?;
                    }
                    if *left == 0 {
                        inflow.body = Body::None;
                    }
                    continue;
                }
                Body::Release { bytes, pos } => {
                    let n = copy_prefix(bytes.get(*pos..).unwrap_or_default(), buf);
                    *pos += n;
                    if *pos >= bytes.len() {
                        inflow.body = Body::None;
                    }
                    if n > 0 {
                        return Poll::Ready(Ok(n));
                    }
                    continue;
                }
                Body::Hold {
                    stream,
                    fin,
                    bytes,
                    filled,
                } => {
                    if *filled < bytes.len() {
                        let dst = bytes.get_mut(*filled..).unwrap_or_default();
                        let n = ready!(Pin::new(&mut *io).poll_read(cx, dst))?;
                        if n == 0 {
                            return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                        }
                        *filled += n;
                        continue;
                    }
                    let (stream, fin, bytes) = (*stream, *fin, std::mem::take(bytes));
                    inflow.body = Body::None;
                    inflow.boost.push_held(stream, bytes, fin);
                    continue;
                }
            }
            // Between frames: released bytes first, then the next frame from `io`.
            if let Some((header, bytes)) = inflow.boost.release() {
                inflow.out.extend_from_slice(&header);
                if !bytes.is_empty() {
                    inflow.body = Body::Release { bytes, pos: 0 };
                }
                continue;
            }
            if inflow.eof {
                if inflow.boost.has_held() {
                    // yamux must read what is held before it learns of the end.
                    inflow.reader = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                return Poll::Ready(Ok(0));
            }
            let dst = inflow
                .header
                .get_mut(inflow.header_filled..)
                .unwrap_or_default();
            let n = match Pin::new(&mut *io).poll_read(cx, dst) {
                Poll::Pending => {
                    inflow.reader = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Poll::Ready(result) => result?,
            };
            if n == 0 {
                if inflow.header_filled == 0 {
                    inflow.eof = true;
                    continue;
                }
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            inflow.header_filled += n;
            if inflow.header_filled < HEADER_LEN {
                continue;
            }
            inflow.header_filled = 0;
            let header = FrameHeader::decode(&inflow.header);
            let decided = inflow
                .boost
                .on_inbound(header)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            match decided {
                Inbound::Deliver(bytes) => {
                    inflow.out.extend_from_slice(&bytes);
                    if header.frame_type == TYPE_DATA && header.length > 0 {
                        inflow.body = Body::Pass(header.length);
                    }
                }
                Inbound::Hold {
                    first,
                    stream,
                    len,
                    fin,
                } => {
                    if let Some(first) = first {
                        inflow.out.extend_from_slice(&first);
                    }
                    inflow.body = Body::Hold {
                        stream,
                        fin,
                        bytes: vec![0; len as usize],
                        filled: 0,
                    };
                }
                Inbound::Discard { first, len } => {
                    if let Some(first) = first {
                        inflow.out.extend_from_slice(&first);
                    }
                    inflow.body = Body::Discard(len);
                }
                Inbound::Nothing => {}
            }
        }
    }
}

/// Copies as much of `src` as fits into `dst`; returns how much.
fn copy_prefix(src: &[u8], dst: &mut [u8]) -> usize {
    let n = src.len().min(dst.len());
    if let (Some(dst), Some(src)) = (dst.get_mut(..n), src.get(..n)) {
        dst.copy_from_slice(src);
    }
    n
}

/// Reads at most `left` bytes of a frame body from `io` into `buf`, counting them off
/// `left`. The end of `io` inside a body is an error.
fn poll_read_body<R: AsyncRead + Unpin>(
    io: &mut R,
    cx: &mut Context<'_>,
    left: &mut u32,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    let want = (*left as usize).min(buf.len());
    let dst = buf.get_mut(..want).unwrap_or_default();
    let n = ready!(Pin::new(io).poll_read(cx, dst))?;
    if n == 0 && want > 0 {
        return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
    }
    *left -= n as u32;
    Poll::Ready(Ok(n))
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tap<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.note_dropped();
        this.take_control_frames();
        if buf.len() <= SMALL_WRITE && this.held.len() < 4 * SMALL_WRITE {
            this.held.extend_from_slice(buf);
            this.feed_outbound(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        loop {
            let held = this.held.len();
            if held == 0 {
                let n = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
                this.feed_outbound(buf.get(..n).unwrap_or_default());
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
                this.feed_outbound(buf.get(..written).unwrap_or_default());
                return Poll::Ready(Ok(written));
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        if let Some(inflow) = &mut this.boost {
            inflow.flush_pending = inflow.boost.has_grants();
        }
        Poll::Ready(Ok(()))
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
            let mut tap = Tap::new(Cursor::new(Vec::new()), shared.clone(), None);
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
