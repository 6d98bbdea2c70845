//! One QUIC bidirectional stream as a [`MuxedStream`].

use futures::io::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use weft_upgrader::MuxedStream;

use crate::send_window::SendWindow;
use crate::tuning::ReceiveWindow;

/// The application error code of a stream we reset or stop.
const RESET_CODE: u32 = 0;

/// A QUIC bidirectional stream: quinn's send and receive halves as one
/// `AsyncRead + AsyncWrite`. What it reads counts toward its connection's receive
/// window growth, what it writes toward its send window's.
///
/// `poll_close` finishes the send half (the remote reads EOF) and keeps reading;
/// [`reset`](MuxedStream::reset) resets the send half and asks the remote to stop
/// sending (STOP_SENDING).
#[derive(Debug)]
pub struct QuicStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    /// The peer opened it in 0-RTT.
    early: bool,
    /// The connection's receive window, told of every read.
    window: Arc<ReceiveWindow>,
    /// The connection's send window, told of every write.
    send_window: Arc<SendWindow>,
}

impl QuicStream {
    /// Joins the two halves of one stream of the connection whose windows are
    /// `window` (receive) and `send_window`.
    pub(crate) fn new(
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        window: Arc<ReceiveWindow>,
        send_window: Arc<SendWindow>,
    ) -> Self {
        QuicStream {
            send,
            recv,
            early: false,
            window,
            send_window,
        }
    }

    /// The same stream, opened by the peer: notes whether it opened it in 0-RTT.
    pub(crate) fn accepted(mut self) -> Self {
        self.early = self.recv.is_0rtt();
        self
    }
}

impl AsyncRead for QuicStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let read = AsyncRead::poll_read(Pin::new(&mut self.recv), cx, buf);
        if let Poll::Ready(Ok(bytes)) = read {
            self.window.on_read(bytes);
        }
        read
    }
}

impl AsyncWrite for QuicStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = AsyncWrite::poll_write(Pin::new(&mut self.send), cx, buf);
        if let Poll::Ready(Ok(bytes)) = written {
            self.send_window.on_write(bytes);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.send), cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // It fails only for a half already finished or reset: closing twice is fine.
        let _ = self.send.finish();
        Poll::Ready(Ok(()))
    }
}

impl MuxedStream for QuicStream {
    fn reset(&mut self) {
        // Either fails only when that half is already closed, which is what we want.
        let _ = self.send.reset(quinn::VarInt::from_u32(RESET_CODE));
        let _ = self.recv.stop(quinn::VarInt::from_u32(RESET_CODE));
    }

    /// Whether the peer opened this stream in 0-RTT: its first bytes may be a replay.
    fn is_early(&self) -> bool {
        self.early
    }
}
