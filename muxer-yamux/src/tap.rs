//! The byte stream under yamux, watched and, for resets, window grants and pings,
//! written to.
//!
//! The `yamux` crate neither tells a stream *why* it ended (a reset and the death of
//! the connection both read as EOF) nor offers a reset for a stream that is already
//! half-closed. [`Tap`] sits between yamux and the socket: it follows the frame
//! headers that go by in both directions, records what the remote signalled (FIN,
//! RST, go-away) in [`Shared`], and writes the RST frames that
//! [`MuxedStream::reset`](weft_upgrader::MuxedStream::reset) queues, only ever
//! between two of yamux's own frames.
//!
//! It also reads the inbound frames itself, one header at a time, and lets
//! [`Boost`] decide for each: hand it to yamux, hold its body until yamux's window
//! has room, or drop the body of a stream we dropped or shed; every body is charged
//! to the memory budget as its header arrives. The window grants the boost decides
//! on are written like the resets, between yamux's frames, and flushed at once from
//! the read side too (yamux may have nothing to write for a while). A stream the
//! boost sheds for the budget gets an RST both ways: one to the remote, one handed
//! to yamux as if the remote had sent it, so that the application's reads and
//! writes end.
//!
//! yamux's own window updates never reach the remote as credit: the tap writes
//! them with a delta of nothing (or not at all, when they carry no flag), and the
//! boost decides the remote's credit from what the application actually read (the
//! streams report their reads through [`Shared`]).
//!
//! With a [`KeepAlive`](crate::KeepAlive) the tap runs a timer: after a silence it
//! sends a ping of its own (and consumes the answer, which yamux would take for a
//! protocol violation), and when the silence lasts past the timeout every read and
//! write fails with the keep-alive's error, which fails the connection.

use crate::boost::{Boost, Inbound};
use crate::frame_scan::{
    FrameHeader, FrameScanner, FLAG_ACK, FLAG_SYN, HEADER_LEN, TYPE_DATA, TYPE_PING,
    TYPE_WINDOW_UPDATE,
};
use crate::keepalive::{self, Action, KeepAliveState};
use crate::shared::Shared;
use crate::stats::YamuxStats;
use futures::io::{AsyncRead, AsyncWrite};
use futures::{ready, Future};
use futures_timer::Delay;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Writes up to this size (yamux's 12-byte headers) are held back and sent together
/// with the next write or flush, in one vectored write: one syscall per frame instead
/// of two, without copying frame bodies.
const SMALL_WRITE: usize = 64;

/// An I/O wrapper that observes yamux frames, inserts RST frames, window grants and
/// keep-alive pings, and holds inbound data beyond yamux's window.
#[derive(Debug)]
pub(crate) struct Tap<T> {
    io: T,
    shared: Arc<Shared>,
    inbound: FrameScanner,
    outbound: FrameScanner,
    /// Small writes (headers, queued control frames) not yet handed to `io`.
    held: Vec<u8>,
    /// The inbound side: frames are read here, frame by frame.
    inflow: Box<Inflow>,
    /// The keep-alive, when configured.
    liveness: Option<Box<Liveness>>,
}

/// The keep-alive's state and timer.
#[derive(Debug)]
struct Liveness {
    state: KeepAliveState,
    timer: Delay,
    /// A ping to write.
    ping: Option<u32>,
    /// The link was declared dead: every read and write fails.
    dead: bool,
    stats: YamuxStats,
}

/// The inbound side of a tap.
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
    /// Bytes arrived from `io` since the keep-alive last heard of it.
    arrived: bool,
    /// The task waiting in `poll_read`, woken when held bytes can be released.
    reader: Option<Waker>,
    /// Control frames were written but maybe not flushed.
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
    /// Wraps `io`, reporting to `shared`, with flow control `boost` and, if given,
    /// a keep-alive.
    pub(crate) fn new(
        io: T,
        shared: Arc<Shared>,
        boost: Boost,
        keep_alive: Option<crate::KeepAlive>,
        stats: YamuxStats,
    ) -> Self {
        shared.collect_dropped();
        let now = Instant::now();
        let liveness = keep_alive.map(|settings| {
            Box::new(Liveness {
                state: KeepAliveState::new(settings, now),
                timer: Delay::new(settings.idle),
                ping: None,
                dead: false,
                stats,
            })
        });
        Tap {
            io,
            shared,
            inbound: FrameScanner::default(),
            outbound: FrameScanner::default(),
            held: Vec::with_capacity(4 * SMALL_WRITE),
            inflow: Box::new(Inflow {
                boost,
                header: [0; HEADER_LEN],
                header_filled: 0,
                body: Body::None,
                out: Vec::new(),
                out_pos: 0,
                eof: false,
                arrived: false,
                reader: None,
                flush_pending: false,
            }),
            liveness,
        }
    }

    /// Tells the boost about streams dropped on our side and what the application
    /// read since the last call.
    fn note_streams(&mut self) {
        for id in self.shared.take_dropped() {
            self.inflow.boost.on_dropped(id);
        }
        let consumed = self.shared.take_consumed();
        if !consumed.is_empty() {
            let now = Instant::now();
            for (id, bytes) in consumed {
                self.inflow.boost.on_consumed(id, bytes, now);
            }
        }
        self.inflow.wake_reader_if_unblocked();
    }

    /// Feeds bytes yamux wrote to the outbound scanner (and the boost); wakes the
    /// reader if yamux's new window lets held bytes go.
    fn feed_outbound(&mut self, bytes: &[u8]) {
        let boost = &mut self.inflow.boost;
        let mut now = None;
        self.outbound.feed(bytes, |header| {
            let now = *now.get_or_insert_with(Instant::now);
            boost.on_outbound_at(header, now);
        });
        self.inflow.wake_reader_if_unblocked();
    }

    /// Runs the keep-alive's timer: queues a ping when one is due, and fails once
    /// the link is dead. Registers the timer with `cx` while it runs.
    fn poll_keep_alive(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let Some(live) = self.liveness.as_deref_mut() else {
            return Ok(());
        };
        if self.inflow.arrived {
            self.inflow.arrived = false;
            live.state.on_inbound(Instant::now());
        }
        if live.dead {
            return Err(live.state.error());
        }
        while Pin::new(&mut live.timer).poll(cx).is_ready() {
            let now = Instant::now();
            let next = match live.state.poll(now) {
                Action::Dead => {
                    live.dead = true;
                    live.stats.count_keep_alive_failure();
                    let error = live.state.error();
                    tracing::warn!(%error, "yamux connection: dead link");
                    // Record the reason before yamux tears its streams down with its
                    // own "connection is closed": every stream then fails with this one.
                    self.shared
                        .set_end(crate::shared::End::Failed(error.to_string()));
                    return Err(error);
                }
                Action::Wait(at) => at,
                Action::Ping(value, at) => {
                    tracing::trace!(value, "keep-alive ping");
                    live.ping = Some(value);
                    self.inflow.flush_pending = true;
                    at
                }
            };
            live.timer.reset(next.saturating_duration_since(now));
        }
        Ok(())
    }
}

impl<T: AsyncWrite + Unpin> Tap<T> {
    /// Appends the queued RST frames, pings and window grants to the held bytes, if
    /// yamux is between frames.
    fn take_control_frames(&mut self) {
        while self.outbound.at_boundary() && self.held.len() < 2 * SMALL_WRITE {
            if let Some(id) = self.shared.next_reset() {
                tracing::trace!(stream = id, "writing stream reset");
                let frame = FrameHeader::reset(id);
                self.inflow
                    .boost
                    .on_outbound_at(FrameHeader::decode(&frame), Instant::now());
                self.held.extend_from_slice(&frame);
                continue;
            }
            if let Some(value) = self.liveness.as_mut().and_then(|l| l.ping.take()) {
                let ping = FrameHeader::new(TYPE_PING, FLAG_SYN, 0, value).encode();
                self.held.extend_from_slice(&ping);
                continue;
            }
            let Some(grant) = self.inflow.boost.next_grant() else {
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

    /// Sends the control frames the inbound side or the timer decided on, without
    /// waiting: yamux may have nothing to write for a while. Errors are left for
    /// yamux's next write to meet.
    fn push_control_frames(&mut self, cx: &mut Context<'_>) {
        if !self.inflow.boost.has_grants() && !self.inflow.flush_pending {
            return;
        }
        self.inflow.flush_pending = true;
        if !matches!(self.poll_write_held(cx), Poll::Ready(Ok(()))) {
            return;
        }
        if let Poll::Ready(Ok(())) = Pin::new(&mut self.io).poll_flush(cx) {
            self.inflow.flush_pending = self.inflow.boost.has_grants();
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
        this.note_streams();
        let result = this.poll_read_frames(cx, buf);
        this.poll_keep_alive(cx)?;
        this.push_control_frames(cx);
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
    fn poll_read_frames(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let io = &mut self.io;
        let inflow = &mut *self.inflow;
        let shared = &self.shared;
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
                    inflow.arrived |= n > 0;
                    if *left == 0 {
                        inflow.body = Body::None;
                    }
                    return Poll::Ready(Ok(n));
                }
                Body::Discard(left) => {
                    if *left > 0 {
                        let n = ready!(poll_read_body(&mut *io, cx, left, buf))?;
                        inflow.arrived |= n > 0;
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
                        inflow.arrived = true;
                        *filled += n;
                        continue;
                    }
                    let (stream, fin, bytes) = (*stream, *fin, std::mem::take(bytes));
                    inflow.body = Body::None;
                    inflow.boost.push_held(stream, bytes, fin);
                    if !inflow.boost.can_release() {
                        // Let yamux run before the next frame: the window update that
                        // releases what is held waits in its command queue, which it
                        // only reads between two reads of ours. Reading on here while
                        // the remote keeps sending would hold frame after frame while
                        // the application, its buffer drained, waits for them.
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
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
            inflow.arrived = true;
            inflow.header_filled += n;
            if inflow.header_filled < HEADER_LEN {
                continue;
            }
            inflow.header_filled = 0;
            let header = FrameHeader::decode(&inflow.header);
            if header.frame_type == TYPE_PING
                && header.has(FLAG_ACK)
                && keepalive::is_ours(header.length)
            {
                // The answer to a keep-alive ping: not for yamux.
                continue;
            }
            let decided = inflow
                .boost
                .on_inbound_at(header, Instant::now())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            // Streams shed for the budget: yamux sees them reset (before this frame:
            // `out` is empty here), the remote gets our RST.
            while let Some(victim) = inflow.boost.next_shed() {
                shared.mark_shed(victim);
                inflow.out.extend_from_slice(&FrameHeader::reset(victim));
                shared.queue_reset(victim);
                inflow.flush_pending = true;
            }
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

/// The window update `buf` is, if it is exactly one such frame's header written at
/// a frame boundary (yamux writes each header in one call, and the tap takes every
/// small write whole).
fn window_update_at(at_boundary: bool, buf: &[u8]) -> Option<FrameHeader> {
    if !at_boundary {
        return None;
    }
    let bytes: &[u8; HEADER_LEN] = buf.try_into().ok()?;
    let header = FrameHeader::decode(bytes);
    (header.frame_type == TYPE_WINDOW_UPDATE).then_some(header)
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
        this.poll_keep_alive(cx)?;
        this.note_streams();
        this.take_control_frames();
        if buf.len() <= SMALL_WRITE {
            if this.held.len() >= 4 * SMALL_WRITE {
                ready!(this.poll_write_held(cx))?;
            }
            match window_update_at(this.outbound.at_boundary(), buf) {
                // yamux's window update is room in its own buffer: the boost decides
                // what credit the remote gets, so the delta never leaves. Flags (a
                // SYN, ACK or FIN) still go, on an update of nothing.
                Some(header) if header.flags == 0 => {}
                Some(header) => {
                    let bare = FrameHeader {
                        length: 0,
                        ..header
                    };
                    this.held.extend_from_slice(&bare.encode());
                }
                None => this.held.extend_from_slice(buf),
            }
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
        this.poll_keep_alive(cx)?;
        ready!(this.poll_write_held(cx))?;
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        this.inflow.flush_pending = this.inflow.boost.has_grants();
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
    use crate::frame_scan::FLAG_RST;
    use futures::io::{AsyncWriteExt, Cursor};

    /// A tap writing into memory, without boost settings or keep-alive.
    fn tap_into_memory(shared: Arc<Shared>) -> Tap<Cursor<Vec<u8>>> {
        let boost = Boost::new(
            None,
            0,
            weft_upgrader::Budget::unlimited(),
            YamuxStats::default(),
        );
        Tap::new(
            Cursor::new(Vec::new()),
            shared,
            boost,
            None,
            YamuxStats::default(),
        )
    }

    #[test]
    fn reset_goes_between_frames_only() {
        futures::executor::block_on(async {
            let shared = Arc::new(Shared::default());
            let mut tap = tap_into_memory(shared.clone());
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

    #[test]
    fn yamuxs_window_updates_never_give_the_remote_credit() {
        futures::executor::block_on(async {
            let mut tap = tap_into_memory(Arc::new(Shared::default()));
            let update = |flags, delta| FrameHeader::new(TYPE_WINDOW_UPDATE, flags, 5, delta);
            // A bare update stays off the wire; one that opens a stream goes, empty.
            tap.write_all(&update(0, 1 << 20).encode()).await.unwrap();
            tap.write_all(&update(FLAG_SYN, 4096).encode())
                .await
                .unwrap();
            tap.flush().await.unwrap();
            let written = tap.io.into_inner();
            assert_eq!(written, update(FLAG_SYN, 0).encode());
        });
    }
}
