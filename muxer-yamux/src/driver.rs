//! The future that owns the yamux connection and drives all of its I/O.

use crate::shared::{End, Shared};
use crate::stream::YamuxStream;
use crate::tap::Tap;
use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use std::sync::Arc;
use std::task::{Context, Poll};
use weft_upgrader::{BoxedIo, MuxerError};
use yamux::ConnectionError;

/// A request from a connection handle to the driver.
pub(crate) enum Command {
    /// Open an outbound stream.
    Open(oneshot::Sender<Result<YamuxStream, MuxerError>>),
    /// Close the connection (go-away, flush, close the socket).
    Close(oneshot::Sender<Result<(), MuxerError>>),
}

/// Owns the `yamux::Connection`; see [`Driver::run`].
pub(crate) struct Driver {
    connection: yamux::Connection<Tap<BoxedIo>>,
    shared: Arc<Shared>,
    max_streams: usize,
    /// `None` once every connection handle is gone.
    commands: Option<mpsc::Receiver<Command>>,
    /// An open request waiting for yamux (its ACK backlog is full).
    pending_open: Option<oneshot::Sender<Result<YamuxStream, MuxerError>>>,
    /// Close requests; non-empty once closing started.
    closers: Vec<oneshot::Sender<Result<(), MuxerError>>>,
    /// Inbound streams waiting for `accept_stream` (bounded).
    inbound: mpsc::Sender<YamuxStream>,
}

impl Driver {
    /// A driver for `connection`.
    pub(crate) fn new(
        connection: yamux::Connection<Tap<BoxedIo>>,
        shared: Arc<Shared>,
        max_streams: usize,
        commands: mpsc::Receiver<Command>,
        inbound: mpsc::Sender<YamuxStream>,
    ) -> Self {
        Driver {
            connection,
            shared,
            max_streams,
            commands: Some(commands),
            pending_open: None,
            closers: Vec::new(),
            inbound,
        }
    }

    /// Drives the connection until it closes: `Ok` after a graceful close by either
    /// side, the error otherwise. Sleeps whenever there is nothing to do.
    pub(crate) async fn run(mut self) -> Result<(), MuxerError> {
        let result = futures::future::poll_fn(|cx| self.poll(cx)).await;
        match &result {
            Ok(()) => tracing::debug!("yamux connection closed"),
            Err(e) => tracing::debug!(error = %e, "yamux connection failed"),
        }
        result
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), MuxerError>> {
        self.shared.register_driver(cx.waker());
        loop {
            if !self.closers.is_empty() {
                return self.poll_close(cx);
            }
            let mut progress = false;

            // Inbound first: it also reaps dropped streams before we count for an open.
            match self.connection.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(stream))) => {
                    self.on_inbound(stream);
                    progress = true;
                }
                Poll::Ready(Some(Err(e))) => {
                    let error = to_muxer_error(e);
                    self.finish(End::Failed(error.to_string()));
                    return Poll::Ready(Err(error));
                }
                Poll::Ready(None) => {
                    self.finish(End::Remote);
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending => {}
            }

            if self.pending_open.is_none() {
                if let Some(commands) = &mut self.commands {
                    match commands.poll_next_unpin(cx) {
                        Poll::Ready(Some(Command::Open(reply))) => {
                            self.pending_open = Some(reply);
                            progress = true;
                        }
                        Poll::Ready(Some(Command::Close(reply))) => {
                            self.shared.mark_closing();
                            self.closers.push(reply);
                            continue;
                        }
                        Poll::Ready(None) => {
                            tracing::trace!("all yamux connection handles dropped");
                            self.commands = None;
                        }
                        Poll::Pending => {}
                    }
                }
            }

            if let Some(reply) = self.pending_open.take() {
                if reply.is_canceled() {
                    progress = true;
                } else if self.shared.live_streams() >= self.max_streams {
                    let _ = reply.send(Err(MuxerError::TooManyStreams));
                    progress = true;
                } else {
                    match self.connection.poll_new_outbound(cx) {
                        Poll::Ready(Ok(stream)) => {
                            self.shared.track(stream.id().val());
                            self.shared.stream_opened();
                            let stream = YamuxStream::new(stream, self.shared.clone());
                            tracing::trace!("opened outbound yamux stream");
                            let _ = reply.send(Ok(stream));
                            progress = true;
                        }
                        Poll::Ready(Err(e)) => {
                            // yamux has torn the connection down; the next
                            // `poll_next_inbound` reports how it ended.
                            let _ = reply.send(Err(to_muxer_error(e)));
                            progress = true;
                        }
                        Poll::Pending => self.pending_open = Some(reply),
                    }
                }
            }

            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Queues an inbound stream for `accept_stream`, or resets it.
    fn on_inbound(&mut self, stream: yamux::Stream) {
        let id = stream.id().val();
        if self.shared.live_streams() >= self.max_streams {
            tracing::debug!(stream = id, "too many streams: resetting inbound stream");
            self.shared.forget(id);
            return; // dropping an unacknowledged yamux stream sends RST
        }
        self.shared.stream_opened();
        let stream = YamuxStream::new(stream, self.shared.clone());
        if let Err(e) = self.inbound.try_send(stream) {
            // Full backlog or nobody accepting: dropping the stream resets it.
            if e.is_full() {
                tracing::debug!(stream = id, "inbound backlog full: resetting stream");
            }
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), MuxerError>> {
        let result = futures::ready!(self.connection.poll_close(cx)).map_err(to_muxer_error);
        let end = match &result {
            Ok(()) => End::Local,
            Err(e) => End::Failed(e.to_string()),
        };
        for reply in self.closers.drain(..) {
            let answer = match &end {
                End::Failed(reason) => Err(MuxerError::Io(std::io::Error::other(reason.clone()))),
                _ => Ok(()),
            };
            let _ = reply.send(answer);
        }
        self.finish(end);
        Poll::Ready(result)
    }

    /// Records the end and answers whoever still waits.
    fn finish(&mut self, end: End) {
        self.shared.set_end(end);
        if let Some(reply) = self.pending_open.take() {
            let _ = reply.send(Err(MuxerError::Closed));
        }
        self.inbound.close_channel();
        if let Some(commands) = &mut self.commands {
            commands.close();
            while let Ok(command) = commands.try_recv() {
                match command {
                    Command::Open(reply) => drop(reply.send(Err(MuxerError::Closed))),
                    Command::Close(reply) => drop(reply.send(Ok(()))),
                }
            }
        }
    }
}

/// Maps the `yamux` crate's error onto the muxer error.
pub(crate) fn to_muxer_error(error: ConnectionError) -> MuxerError {
    match error {
        ConnectionError::Io(e) => MuxerError::Io(e),
        ConnectionError::Closed => MuxerError::Closed,
        ConnectionError::TooManyStreams | ConnectionError::NoMoreStreamIds => {
            MuxerError::TooManyStreams
        }
        other => MuxerError::Protocol(Box::new(other)),
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if self.shared.end().is_none() {
            self.shared
                .set_end(End::Failed("the connection driver was dropped".to_owned()));
        }
    }
}
