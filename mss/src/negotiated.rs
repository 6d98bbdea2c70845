//! The stream handed back after negotiation.

use crate::codec::Message;
use crate::error::NegotiationError;
use crate::message_io::MessageIo;
use futures::io::{AsyncRead, AsyncWrite};
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// How much application data a lazy negotiation merges into the write that carries
/// the header and the proposal.
const LAZY_MERGE_LIMIT: usize = 16 * 1024;

/// A stream on which a protocol has been negotiated (or, in lazy mode, proposed).
///
/// Reading first returns any bytes that arrived together with the last negotiation
/// message, then reads the underlying stream. Writing goes straight to the underlying
/// stream.
///
/// # Lazy negotiation
///
/// With [`crate::Version::V1Lazy`] and a single protocol the dialer gets a
/// `Negotiated` whose header and proposal are still buffered ([`Negotiated::is_pending`]
/// is `true`). The first write merges them with up to 16 KiB of application data into
/// one write to the underlying stream (data accepted this way is kept in the buffer
/// until it is written, as with a `BufWriter`: flush to be sure it left). The first read
/// (or [`Negotiated::complete`]) sends anything still buffered and then checks the
/// remote's header and echo.
///
/// If the remote refuses (`na`) or answers anything else, that read fails with an
/// [`io::Error`] whose inner error is the [`NegotiationError`] (recover it with
/// `err.get_ref().and_then(|e| e.downcast_ref::<NegotiationError>())`). The kind is
/// [`io::ErrorKind::ConnectionRefused`] for a refusal (`na`),
/// [`io::ErrorKind::InvalidData`] for a protocol violation and
/// [`io::ErrorKind::UnexpectedEof`] if the remote closed; see
/// [`NegotiationError::io_kind`]. Every later read or write then fails with
/// [`io::ErrorKind::BrokenPipe`] ([`NegotiationError::FailedEarlier`]). Wrong data is
/// never returned as if it were application data.
pub struct Negotiated<R> {
    inner: MessageIo<R>,
    state: State,
}

enum State {
    /// Negotiation finished; the stream belongs to the protocol.
    Completed,
    /// Lazy: our proposal is out (or queued); the remote's header and echo are due.
    Expecting {
        header_received: bool,
        protocol: String,
    },
    /// Lazy negotiation failed; kept so that later calls keep failing.
    Failed { message: String },
}

impl<R> Negotiated<R> {
    pub(crate) fn completed(inner: MessageIo<R>) -> Self {
        Negotiated {
            inner,
            state: State::Completed,
        }
    }

    pub(crate) fn expecting(inner: MessageIo<R>, protocol: String) -> Self {
        Negotiated {
            inner,
            state: State::Expecting {
                header_received: false,
                protocol,
            },
        }
    }

    /// Whether the lazy echo is still outstanding.
    pub fn is_pending(&self) -> bool {
        matches!(self.state, State::Expecting { .. })
    }

    /// The underlying stream. Reading or writing it directly bypasses buffered bytes.
    pub fn get_ref(&self) -> &R {
        &self.inner.io
    }

    /// The underlying stream, mutably, for calls that are not I/O (for example a
    /// muxer stream's `reset`). Reading or writing it directly bypasses buffered bytes.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner.io
    }

    fn fail(&mut self, err: NegotiationError) -> NegotiationError {
        tracing::debug!(error = %err, "mss: lazy negotiation failed");
        self.state = State::Failed {
            message: err.to_string(),
        };
        err
    }
}

impl<R: AsyncRead + AsyncWrite + Unpin> Negotiated<R> {
    /// Finishes a lazy negotiation now: flushes our pending proposal and waits for the echo.
    ///
    /// Returns at once for a stream that is already negotiated.
    pub async fn complete(&mut self) -> Result<(), NegotiationError> {
        futures::future::poll_fn(|cx| self.poll_complete(cx)).await
    }

    fn poll_complete(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), NegotiationError>> {
        loop {
            match &self.state {
                State::Completed => return Poll::Ready(Ok(())),
                State::Failed { message } => {
                    return Poll::Ready(Err(NegotiationError::FailedEarlier(message.clone())))
                }
                State::Expecting { .. } => {}
            }
            if let Err(e) = ready!(self.inner.poll_send(cx)) {
                return Poll::Ready(Err(self.fail(e.into())));
            }
            let msg = match ready!(self.inner.poll_recv(cx)) {
                Ok(msg) => msg,
                Err(e) => return Poll::Ready(Err(self.fail(e))),
            };
            let State::Expecting {
                header_received,
                protocol,
            } = &mut self.state
            else {
                continue;
            };
            if !*header_received {
                if msg == Message::Header {
                    *header_received = true;
                    continue;
                }
                let err = NegotiationError::InvalidHeader {
                    received: msg.as_str().to_owned(),
                };
                return Poll::Ready(Err(self.fail(err)));
            }
            let err = match msg {
                Message::Protocol(p) if p == *protocol => {
                    tracing::debug!(protocol = %p, "mss: lazy proposal accepted");
                    self.state = State::Completed;
                    return Poll::Ready(Ok(()));
                }
                Message::Na => NegotiationError::NoProtocolAccepted {
                    tried: vec![std::mem::take(protocol)],
                },
                other => NegotiationError::UnexpectedMessage {
                    received: other.as_str().to_owned(),
                    expected: "the echo of our lazy proposal or na",
                },
            };
            return Poll::Ready(Err(self.fail(err)));
        }
    }

    fn check_failed(&self) -> io::Result<()> {
        match &self.state {
            State::Failed { message } => {
                Err(NegotiationError::FailedEarlier(message.clone()).into())
            }
            _ => Ok(()),
        }
    }
}

impl<R: AsyncRead + AsyncWrite + Unpin> AsyncRead for Negotiated<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_complete(cx)).map_err(io::Error::from)?;
        if let Some(n) = this.inner.take_buffered(buf) {
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut this.inner.io).poll_read(cx, buf)
    }
}

impl<R: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Negotiated<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_failed()?;
        let pending = this.inner.pending_write_len();
        if pending > 0 && this.is_pending() && this.inner.write_buf_mut().len() < LAZY_MERGE_LIMIT {
            // Lazy: the queued header and proposal leave in the same write as the
            // application's first bytes.
            let room = LAZY_MERGE_LIMIT - this.inner.write_buf_mut().len();
            let n = buf.len().min(room);
            this.inner
                .write_buf_mut()
                .extend_from_slice(buf.get(..n).unwrap_or_default());
            if let Poll::Ready(Err(e)) = this.inner.poll_write_queued(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(n));
        }
        ready!(this.inner.poll_write_queued(cx))?;
        Pin::new(&mut this.inner.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_failed()?;
        this.inner.poll_send(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.inner.poll_write_queued(cx))?;
        Pin::new(&mut this.inner.io).poll_close(cx)
    }
}

impl<R> fmt::Debug for Negotiated<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Completed => "completed",
            State::Expecting { .. } => "expecting echo",
            State::Failed { .. } => "failed",
        };
        f.debug_struct("Negotiated")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
