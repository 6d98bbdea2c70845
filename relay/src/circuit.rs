//! A relayed connection as one end sees it: a byte stream to the peer at the other
//! end, to upgrade with security and a muxer like a TCP socket.

use crate::proto::Limit;
use futures::io::{AsyncRead, AsyncWrite};
use libp2p_identity::PeerId;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use weft_upgrader::{BoxedIo, BoxedStream, MuxedStream};

/// One end of a circuit: the hop stream (at the initiator) or the stop stream (at
/// the target), once the relay said OK.
pub struct Circuit {
    stream: BoxedStream,
    relay: PeerId,
    remote: PeerId,
    limit: Option<Limit>,
}

impl std::fmt::Debug for Circuit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Circuit")
            .field("relay", &self.relay)
            .field("remote", &self.remote)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Circuit {
    pub(crate) fn new(
        stream: BoxedStream,
        relay: PeerId,
        remote: PeerId,
        limit: Option<Limit>,
    ) -> Self {
        Circuit {
            stream,
            relay,
            remote,
            limit,
        }
    }

    /// The relay in the middle.
    pub fn relay(&self) -> PeerId {
        self.relay
    }

    /// The peer at the other end (as the relay names it: the upgrade's handshake
    /// proves it).
    pub fn remote(&self) -> PeerId {
        self.remote
    }

    /// The limits the relay announced (`None`: it announced none).
    pub fn limit(&self) -> Option<Limit> {
        self.limit
    }

    /// The announced longest duration, if limited.
    pub fn duration_limit(&self) -> Option<Duration> {
        self.limit.and_then(|l| l.duration_limit())
    }

    /// The announced byte cap per direction, if limited.
    pub fn data_limit(&self) -> Option<u64> {
        self.limit.and_then(|l| l.data_limit())
    }

    /// Whether the relay limits this circuit (duration or data): such a connection
    /// suits short exchanges and hole punching, not bulk transfers.
    pub fn is_limited(&self) -> bool {
        self.duration_limit().is_some() || self.data_limit().is_some()
    }

    /// The circuit as a plain byte stream, for the upgrader.
    pub fn into_io(self) -> BoxedIo {
        Box::new(self)
    }
}

impl AsyncRead for Circuit {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Circuit {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}

impl MuxedStream for Circuit {
    fn reset(&mut self) {
        self.stream.reset();
    }
}
