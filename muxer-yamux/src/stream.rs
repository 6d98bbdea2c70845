//! One yamux stream behind [`MuxedStream`].
//!
//! The `yamux` crate wakes a stream's blocked reader or writer when data, window, a
//! FIN or an RST arrives, or when the connection fails, but not when the connection is
//! closed locally or its driver is dropped mid-close: such a task would wait forever.
//! So whenever yamux leaves a task waiting, the stream also registers it in
//! [`Shared`], which wakes every waiting task when the connection ends; a task that
//! finds the connection ended gets whatever yamux still lets it read (the buffered data
//! after the remote's close or an I/O failure, nothing after our own close), then an
//! error.

use crate::shared::{Direction, End, Shared};
use futures::io::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use weft_upgrader::MuxedStream;

/// A yamux stream that tells a clean end (the remote's FIN) from a reset or the death of
/// the connection, which the `yamux` crate reports alike as EOF.
#[derive(Debug)]
pub(crate) struct YamuxStream {
    /// `None` once we reset the stream.
    inner: Option<yamux::Stream>,
    id: u32,
    shared: Arc<Shared>,
    write_closed: bool,
}

impl YamuxStream {
    /// Wraps a stream that `shared` already tracks and counts.
    pub(crate) fn new(inner: yamux::Stream, shared: Arc<Shared>) -> Self {
        let id = inner.id().val();
        YamuxStream {
            inner: Some(inner),
            id,
            shared,
            write_closed: false,
        }
    }

    /// The error for a stream that ended without a FIN from the remote.
    fn abort_error(&self) -> io::Error {
        let signals = self.shared.signals(self.id);
        if signals.shed {
            return shed_error(self.id);
        }
        if signals.rst {
            return io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("yamux stream {} was reset by the remote", self.id),
            );
        }
        let why = match self.shared.end() {
            Some(End::Local) => "the connection was closed locally".to_owned(),
            Some(End::Remote) => "the remote closed the connection".to_owned(),
            Some(End::Failed(reason)) => format!("the connection failed: {reason}"),
            None => "the connection is closed".to_owned(),
        };
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("yamux stream {} aborted: {why}", self.id),
        )
    }

    fn locally_reset(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!("yamux stream {} was reset locally", self.id),
        )
    }

    /// yamux left the task waiting on `direction`: it stays waiting, to be woken by
    /// yamux or by the end of the connection, unless the connection already ended.
    fn wait_or_abort<T>(&self, direction: Direction, cx: &Context<'_>) -> Poll<io::Result<T>> {
        if self.shared.register_waiter(self.id, direction, cx.waker()) {
            Poll::Pending
        } else {
            Poll::Ready(Err(self.abort_error()))
        }
    }

    /// Turns yamux's generic error (`WriteZero`, "connection is closed") into the
    /// reason, when we know it. Reads fail with it too: yamux's `poll_read` first
    /// polls the stream's command channel, which our own close shuts.
    fn explain_error(&self, err: io::Error) -> io::Error {
        if self.shared.signals(self.id).rst || self.shared.is_closed() {
            self.abort_error()
        } else {
            err
        }
    }
}

/// The error of a stream we reset because the memory budget was full.
fn shed_error(id: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        format!(
            "yamux stream {id} was reset: the connection's memory budget was full and \
             this stream held the most unread bytes"
        ),
    )
}

impl YamuxStream {
    /// The stream to use, or the error if it was reset (by us, or for the budget:
    /// then yamux's stream, and the unread bytes it buffers, are dropped now).
    fn live(&mut self) -> Result<&mut yamux::Stream, io::Error> {
        if self.inner.is_some() && self.shared.is_shed(self.id) {
            drop(self.inner.take());
            self.shared.released(self.id);
            return Err(shed_error(self.id));
        }
        if self.inner.is_none() {
            return Err(if self.shared.is_shed(self.id) {
                shed_error(self.id)
            } else {
                self.locally_reset()
            });
        }
        self.inner.as_mut().ok_or_else(|| shed_error(self.id))
    }
}

impl AsyncRead for YamuxStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.live() {
            return Poll::Ready(Err(e));
        }
        let Some(inner) = &mut this.inner else {
            return Poll::Ready(Err(this.locally_reset()));
        };
        let n = match Pin::new(&mut *inner).poll_read(cx, buf) {
            Poll::Ready(result) => result.map_err(|e| this.explain_error(e))?,
            Poll::Pending => {
                if this
                    .shared
                    .register_waiter(this.id, Direction::Read, cx.waker())
                {
                    return Poll::Pending;
                }
                // The connection ended, so nothing more reaches yamux's buffer: read
                // what it holds, if it got more since the poll above, then fail.
                match Pin::new(&mut *inner).poll_read(cx, buf) {
                    Poll::Ready(result) => result.map_err(|e| this.explain_error(e))?,
                    Poll::Pending => return Poll::Ready(Err(this.abort_error())),
                }
            }
        };
        if n > 0 {
            // The tap gives the remote its credit back for what was read.
            this.shared.report_consumed(this.id, n);
            // yamux computes its window update at the start of a read, so the room
            // for what we just took would wait for the next read. An empty read sends
            // it now, without consuming data: bytes the tap holds for want of room in
            // yamux's buffer go on at once.
            if let Some(inner) = &mut this.inner {
                let _ = Pin::new(inner).poll_read(cx, &mut []);
            }
        }
        if n == 0 && !buf.is_empty() {
            let signals = this.shared.signals(this.id);
            if signals.rst || !signals.fin {
                return Poll::Ready(Err(this.abort_error()));
            }
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for YamuxStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let inner = match this.live() {
            Ok(inner) => inner,
            Err(e) => return Poll::Ready(Err(e)),
        };
        match Pin::new(inner).poll_write(cx, buf) {
            Poll::Ready(result) => Poll::Ready(result.map_err(|e| this.explain_error(e))),
            Poll::Pending => this.wait_or_abort(Direction::Write, cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let inner = match this.live() {
            Ok(inner) => inner,
            Err(e) => return Poll::Ready(Err(e)),
        };
        match Pin::new(inner).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(result.map_err(|e| this.explain_error(e))),
            Poll::Pending => this.wait_or_abort(Direction::Write, cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let inner = match this.live() {
            Ok(inner) => inner,
            Err(e) => return Poll::Ready(Err(e)),
        };
        match Pin::new(inner).poll_close(cx) {
            Poll::Ready(result) => result.map_err(|e| this.explain_error(e))?,
            Poll::Pending => return this.wait_or_abort(Direction::Write, cx),
        }
        this.write_closed = true;
        Poll::Ready(Ok(()))
    }
}

impl MuxedStream for YamuxStream {
    /// Resets the stream: the remote's reads and writes fail.
    ///
    /// Dropping a yamux stream makes the `yamux` crate send RST only while both
    /// directions are open; after a FIN it sends FIN, and after our own half-close
    /// nothing at all. So unless the stream is already over (both FINs, an RST from the
    /// remote, or a dead connection) we also queue an RST frame of our own, which the
    /// connection writes between two yamux frames.
    fn reset(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let signals = self.shared.signals(self.id);
        let finished = self.write_closed && signals.fin;
        if !(signals.rst || finished || self.shared.end().is_some()) {
            tracing::debug!(stream = self.id, "resetting stream");
            self.shared.queue_reset(self.id);
        }
        drop(inner);
        // yamux's stream and its buffer are gone: the tap may give back their memory.
        self.shared.released(self.id);
    }
}

impl Drop for YamuxStream {
    fn drop(&mut self) {
        self.shared.forget(self.id);
        self.shared.stream_dropped();
    }
}
