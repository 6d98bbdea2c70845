//! The memory a TLS channel reserves from its budget, held as long as the channel.
//!
//! rustls buffers what the remote sends in two places: the deframer's message
//! buffer (up to 64 KiB while a handshake message is being joined, then one record,
//! 16 KiB + 2 KiB + 5 bytes of header) and the received plaintext (16 KiB by
//! default). Those are the sizes reserved: the handshake's while it runs, the
//! channel's from then on.

use futures::io::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use weft_upgrader::{BudgetDenied, Priority, Reservation, SecurityError};

/// Reserved while the handshake runs: rustls's largest joined handshake message
/// (64 KiB) plus one 4 KiB read beyond it.
pub(crate) const HANDSHAKE_MEMORY: usize = 0xffff + 4096;

/// Reserved for the channel's life: one TLS record as rustls buffers it
/// (16 KiB + 2 KiB + 5) and its 16 KiB received-plaintext limit.
pub(crate) const CHANNEL_MEMORY: usize = 16_384 + 2048 + 5 + 16 * 1024;

/// The priority of those reservations: a new connection's fixed buffers may take a
/// scope up to about 60%, so that under memory pressure new handshakes fail before
/// the streams of established connections are shed.
pub const BUFFER_PRIORITY: Priority = Priority::MEDIUM;

/// A denied buffer reservation, as the handshake's error.
pub(crate) fn denied(what: &str, error: BudgetDenied) -> SecurityError {
    SecurityError::Io(io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!("tls: the memory budget denied the {what}: {error}"),
    ))
}

/// A stream that holds a reservation as long as it lives.
pub(crate) struct Budgeted<S> {
    inner: S,
    _memory: Reservation,
}

impl<S> Budgeted<S> {
    pub(crate) fn new(inner: S, memory: Reservation) -> Self {
        Budgeted {
            inner,
            _memory: memory,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Budgeted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }

    fn poll_read_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read_vectored(cx, bufs)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Budgeted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
