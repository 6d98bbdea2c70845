//! Helpers of the unit tests: the two ends of an in-memory stream (a tokio duplex
//! pipe), so exchanges run under a paused clock with no sockets.

use futures::io::{AsyncRead, AsyncWrite};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};
use weft_upgrader::{BoxedStream, MuxedStream};

/// One end of an in-memory pipe; a reset closes it.
pub(crate) struct Pipe(Option<Compat<tokio::io::DuplexStream>>);

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset")
}

impl AsyncRead for Pipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.0.as_mut() {
            Some(io) => Pin::new(io).poll_read(cx, buf),
            None => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.0.as_mut() {
            Some(io) => Pin::new(io).poll_write(cx, buf),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.0.as_mut() {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.0.as_mut() {
            Some(io) => Pin::new(io).poll_close(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl MuxedStream for Pipe {
    fn reset(&mut self) {
        self.0 = None;
    }
}

/// The two ends of one in-memory stream.
pub(crate) async fn stream_pair() -> (BoxedStream, BoxedStream) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    (
        Box::new(Pipe(Some(a.compat()))),
        Box::new(Pipe(Some(b.compat()))),
    )
}
