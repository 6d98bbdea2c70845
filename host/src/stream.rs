//! A negotiated application stream.

use crate::conn::Activity;
use crate::events::Event;
use crate::observer::{count_received, count_sent, meter_closed, Meter};
use futures::io::{AsyncRead, AsyncWrite};
use libp2p_identity::PeerId;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::broadcast;
use weft_connmgr::{ConnectionId, Direction};
use weft_mss::Negotiated;
use weft_resource_manager::StreamScope;
use weft_upgrader::BoxedStream;

/// Reports a stream's negotiation and end (the `OpenedStream` and `ClosedStream`
/// events) and keeps the connection's stream count.
pub(crate) struct StreamTracker {
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) open_streams: Arc<AtomicUsize>,
    /// The connection's activity clock (for the idle timeout).
    pub(crate) activity: Arc<Activity>,
    pub(crate) on_count_change: Arc<dyn Fn(usize) + Send + Sync>,
    /// Counts the stream's bytes for an observer (nothing without `metrics-hook`).
    pub(crate) meter: Meter,
}

/// A stream on a connection, with its protocol negotiated.
///
/// It is a futures-io `AsyncRead + AsyncWrite`; `close` half-closes (the remote reads
/// EOF, we can still read). Use `tokio_util::compat` to get tokio's traits.
pub struct Stream {
    inner: Negotiated<BoxedStream>,
    protocol: String,
    peer: PeerId,
    connection: ConnectionId,
    direction: Direction,
    tracker: Option<StreamTracker>,
    /// Whether `OpenedStream` went out, or is still due (a lazy proposal whose
    /// answer has not been read yet).
    announced: Announced,
    /// The stream's resource scope, given back when the stream drops.
    _scope: StreamScope,
}

impl Stream {
    pub(crate) fn new(
        inner: Negotiated<BoxedStream>,
        protocol: String,
        peer: PeerId,
        connection: ConnectionId,
        direction: Direction,
        tracker: StreamTracker,
        scope: StreamScope,
    ) -> Self {
        tracker.activity.touch();
        let count = tracker.open_streams.fetch_add(1, Ordering::AcqRel) + 1;
        (tracker.on_count_change)(count);
        let pending = inner.is_pending();
        let mut stream = Stream {
            inner,
            protocol,
            peer,
            connection,
            direction,
            tracker: Some(tracker),
            announced: Announced::Due,
            _scope: scope,
        };
        if !pending {
            stream.announce();
        }
        stream
    }

    /// Sends `OpenedStream`: the protocol is agreed.
    fn announce(&mut self) {
        self.announced = Announced::Yes;
        if let Some(t) = &self.tracker {
            let _ = t.events.send(Event::OpenedStream {
                peer: self.peer,
                connection: self.connection,
                direction: self.direction,
                protocol: self.protocol.clone(),
            });
        }
    }

    /// After a read: a lazy proposal whose answer just arrived is announced, one the
    /// remote refused (`na`, or a broken answer) never will be.
    fn settle<T>(&mut self, read: &Poll<io::Result<T>>) {
        if self.announced != Announced::Due || self.inner.is_pending() {
            return;
        }
        let refused = matches!(read, Poll::Ready(Err(e)) if is_negotiation_error(e));
        if refused {
            self.announced = Announced::Never;
        } else {
            self.announce();
        }
    }

    /// The negotiated protocol id.
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// The remote peer.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The connection carrying this stream.
    pub fn connection(&self) -> ConnectionId {
        self.connection
    }

    /// Who opened the stream.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    fn counted_read(&self, n: usize) {
        if let Some(t) = &self.tracker {
            if n > 0 {
                t.activity.touch();
                count_received(&t.meter, n);
            }
        }
    }

    fn counted_write(&self, n: usize) {
        if let Some(t) = &self.tracker {
            if n > 0 {
                t.activity.touch();
                count_sent(&t.meter, n);
            }
        }
    }

    /// Aborts the stream in both directions: the remote sees an error, not EOF.
    pub fn reset(&mut self) {
        self.inner.get_mut().reset();
    }
}

/// Whether a stream's `OpenedStream` event went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Announced {
    /// Not yet: a lazy proposal's answer is due.
    Due,
    /// Sent: `ClosedStream` follows when the stream drops.
    Yes,
    /// Never: the remote refused the lazy proposal, so neither event is sent.
    Never,
}

/// Whether a read failed because the lazy negotiation failed (not the stream).
fn is_negotiation_error(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<weft_mss::NegotiationError>().is_some())
}

impl Drop for Stream {
    fn drop(&mut self) {
        let announced = self.announced == Announced::Yes;
        if let Some(t) = self.tracker.take() {
            t.activity.touch();
            meter_closed(&t.meter);
            let count = t
                .open_streams
                .fetch_sub(1, Ordering::AcqRel)
                .saturating_sub(1);
            (t.on_count_change)(count);
            if announced {
                let _ = t.events.send(Event::ClosedStream {
                    peer: self.peer,
                    connection: self.connection,
                    direction: self.direction,
                    protocol: std::mem::take(&mut self.protocol),
                });
            }
        }
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("protocol", &self.protocol)
            .field("peer", &self.peer)
            .field("connection", &self.connection)
            .field("direction", &self.direction)
            .finish()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.settle(&r);
        if let Poll::Ready(Ok(n)) = r {
            self.counted_read(n);
        }
        r
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.counted_write(n);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
