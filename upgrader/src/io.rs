//! The byte streams the traits pass around.

use futures::io::{AsyncRead, AsyncWrite};
use std::future::Future;
use std::pin::Pin;

/// A bidirectional byte stream: anything that is futures-io `AsyncRead + AsyncWrite`.
///
/// Blanket-implemented, so a TCP stream (through `tokio-util`'s compat layer), an
/// in-memory duplex or an encrypted channel all fit.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// An owned, type-erased [`Io`].
pub type BoxedIo = Box<dyn Io>;

/// A boxed, sendable future, as returned by the dyn-compatible traits of this crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A stream whose first bytes were already read: they are read again first, then
/// the rest of `inner`. Writes go straight to `inner`.
pub(crate) struct Replay {
    first: Vec<u8>,
    at: usize,
    inner: BoxedIo,
}

impl Replay {
    /// `first` read again before `inner`.
    pub(crate) fn new(first: Vec<u8>, inner: BoxedIo) -> Self {
        Replay {
            first,
            at: 0,
            inner,
        }
    }
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.at < this.first.len() {
            let left = &this.first[this.at..];
            let n = left.len().min(buf.len());
            buf[..n].copy_from_slice(&left[..n]);
            this.at += n;
            if this.at == this.first.len() {
                this.first = Vec::new();
                this.at = 0;
            }
            return std::task::Poll::Ready(Ok(n));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// Who speaks first on `io`, where we expect the remote to: its first bytes within
/// `silence` make us the [`Role::Responder`](crate::Role::Responder) (they are read
/// again by the negotiation); silence makes us the initiator (the remote took the
/// connection as a listener, waiting for us).
pub(crate) async fn first_speaker(
    mut io: BoxedIo,
    silence: std::time::Duration,
) -> std::io::Result<(crate::Role, BoxedIo)> {
    use futures::io::AsyncReadExt;
    // multistream-select's header alone is 20 bytes; whatever came is replayed.
    let mut first = vec![0u8; 256];
    match tokio::time::timeout(silence, io.read(&mut first)).await {
        Ok(Ok(0)) => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the remote closed the connection before it spoke",
        )),
        Ok(Ok(n)) => {
            first.truncate(n);
            Ok((crate::Role::Responder, Box::new(Replay::new(first, io))))
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Ok((crate::Role::Initiator, io)),
    }
}
