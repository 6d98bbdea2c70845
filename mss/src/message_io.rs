//! A thin async layer over [`crate::codec`]: one read buffer and one write buffer
//! around the caller's I/O.
//!
//! Reads are bounded: at most one maximal message is ever buffered unconsumed before
//! another read, and each read asks for at most one maximal message more. Bytes read
//! past the last negotiation message stay in the buffer and are handed to the
//! [`crate::Negotiated`] stream, which serves them before reading the socket again.

use crate::codec::{self, Message};
use crate::error::NegotiationError;
use futures::io::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// Room for the varint prefix of any message length we accept.
const MAX_PREFIX_LEN: usize = 10;

pub(crate) struct MessageIo<R> {
    pub(crate) io: R,
    read_buf: Vec<u8>,
    read_pos: usize,
    write_buf: Vec<u8>,
    write_pos: usize,
    max_len: usize,
}

impl<R> MessageIo<R> {
    pub(crate) fn new(io: R, max_len: usize) -> Self {
        MessageIo {
            io,
            read_buf: Vec::new(),
            read_pos: 0,
            write_buf: Vec::new(),
            write_pos: 0,
            max_len,
        }
    }

    /// Appends a message to the outgoing buffer (nothing is written yet).
    pub(crate) fn queue(&mut self, msg: &Message) {
        msg.encode(&mut self.write_buf);
    }

    /// The outgoing buffer, for messages built by hand (the `ls` answer) and for
    /// merging the first application data of a lazy negotiation.
    pub(crate) fn write_buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.write_buf
    }

    /// Bytes queued and not yet written.
    pub(crate) fn pending_write_len(&self) -> usize {
        self.write_buf.len().saturating_sub(self.write_pos)
    }

    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    fn unread(&self) -> &[u8] {
        self.read_buf.get(self.read_pos..).unwrap_or_default()
    }

    /// Whether the read buffer already holds a complete message (or bytes that decode
    /// to an error), so that `recv` will not touch the network.
    pub(crate) fn has_buffered_message(&self) -> bool {
        !matches!(codec::decode(self.unread(), self.max_len), Ok(None))
    }

    /// Copies buffered bytes (received after the last negotiation message) into `buf`.
    /// Returns `None` when the buffer is empty.
    pub(crate) fn take_buffered(&mut self, buf: &mut [u8]) -> Option<usize> {
        let unread = self.unread();
        if unread.is_empty() {
            return None;
        }
        let n = unread.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), unread.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.consume(n);
        Some(n)
    }

    fn consume(&mut self, n: usize) {
        self.read_pos += n;
        if self.read_pos >= self.read_buf.len() {
            // Fully drained: release the memory, the data path needs no buffer.
            self.read_buf = Vec::new();
            self.read_pos = 0;
        }
    }
}

impl<R: AsyncRead + AsyncWrite + Unpin> MessageIo<R> {
    /// Writes everything queued, without flushing.
    pub(crate) fn poll_write_queued(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(rest) = self
            .write_buf
            .get(self.write_pos..)
            .filter(|r| !r.is_empty())
        {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write_pos += n;
        }
        self.write_buf.clear();
        self.write_pos = 0;
        Poll::Ready(Ok(()))
    }

    /// Writes everything queued and flushes.
    pub(crate) fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_queued(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Writes everything queued and flushes.
    pub(crate) async fn send(&mut self) -> Result<(), NegotiationError> {
        futures::future::poll_fn(|cx| self.poll_send(cx)).await?;
        Ok(())
    }

    /// Receives the next message, reading from the network only when the buffer holds
    /// no complete message.
    pub(crate) fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Message, NegotiationError>> {
        loop {
            if let Some((msg, used)) = codec::decode(self.unread(), self.max_len)? {
                self.consume(used);
                tracing::trace!(message = msg.as_str(), "mss: received");
                return Poll::Ready(Ok(msg));
            }
            if self.read_pos > 0 {
                self.read_buf.drain(..self.read_pos);
                self.read_pos = 0;
            }
            let start = self.read_buf.len();
            self.read_buf
                .resize(start + self.max_len + MAX_PREFIX_LEN, 0);
            let result = match self.read_buf.get_mut(start..) {
                Some(spare) => Pin::new(&mut self.io).poll_read(cx, spare),
                None => Poll::Ready(Ok(0)),
            };
            match result {
                Poll::Ready(Ok(0)) => {
                    self.read_buf.truncate(start);
                    return Poll::Ready(Err(NegotiationError::ConnectionClosed));
                }
                Poll::Ready(Ok(n)) => self.read_buf.truncate(start + n),
                Poll::Ready(Err(e)) => {
                    self.read_buf.truncate(start);
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Poll::Ready(Err(e.into()));
                    }
                }
                Poll::Pending => {
                    self.read_buf.truncate(start);
                    return Poll::Pending;
                }
            }
        }
    }

    /// Receives the next message.
    pub(crate) async fn recv(&mut self) -> Result<Message, NegotiationError> {
        futures::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Receives the first message and checks that it is the header.
    pub(crate) async fn expect_header(&mut self) -> Result<(), NegotiationError> {
        match self.recv().await? {
            Message::Header => Ok(()),
            other => Err(NegotiationError::InvalidHeader {
                received: other.as_str().to_owned(),
            }),
        }
    }
}
