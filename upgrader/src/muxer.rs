//! The muxer trait: turn a secured byte stream into many independent streams.

use crate::budget::Budget;
use crate::io::{BoxFuture, BoxedIo};
use crate::role::Role;
use futures::io::{AsyncRead, AsyncWrite};
use std::sync::Arc;
use std::time::Duration;

/// A libp2p stream multiplexer (for example `/yamux/1.0.0`).
///
/// Dyn-compatible, so the upgrader can keep an ordered list of
/// `Arc<dyn StreamMuxer>` chosen at run time.
pub trait StreamMuxer: Send + Sync + 'static {
    /// The multistream-select protocol id, for example `/yamux/1.0.0`.
    fn protocol_id(&self) -> &str;

    /// Turns a secured connection into a multiplexed one.
    ///
    /// `role` decides, for example, whether we are the yamux client (odd stream ids)
    /// or server (even ids). The returned [`Muxed::driver`] must be polled (spawned on
    /// the caller's runtime) for the connection to make progress.
    fn upgrade(&self, io: BoxedIo, role: Role) -> Result<Muxed, MuxerError>;

    /// [`upgrade`](StreamMuxer::upgrade), charging every buffer the remote can make
    /// the connection fill (receive windows beyond the protocol's initial one, data
    /// received and not yet read) to `budget`.
    ///
    /// The upgrader and the host call this one. The provided implementation ignores
    /// the budget: a muxer that buffers what a peer sends must override it.
    fn upgrade_with_budget(
        &self,
        io: BoxedIo,
        role: Role,
        budget: Budget,
    ) -> Result<Muxed, MuxerError> {
        let _ = budget;
        self.upgrade(io, role)
    }
}

/// A freshly multiplexed connection: the handle and the future that drives it.
pub struct Muxed {
    /// The handle to open, accept and close streams. Cheap to clone (`Arc`).
    pub connection: Arc<dyn MuxedConnection>,
    /// Drives the connection's I/O. Spawn it: nothing moves on the connection while it
    /// is not polled. It completes when the connection has closed, with the reason.
    pub driver: BoxFuture<'static, Result<(), MuxerError>>,
}

impl std::fmt::Debug for Muxed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Muxed").finish_non_exhaustive()
    }
}

/// A handle to a multiplexed connection. All methods take `&self`, so one handle can
/// be shared by the tasks that open and accept streams.
#[async_trait::async_trait]
pub trait MuxedConnection: Send + Sync + 'static {
    /// Opens a new outbound stream. It may be usable before the remote acknowledged it.
    async fn open_stream(&self) -> Result<BoxedStream, MuxerError>;

    /// Waits for the next inbound stream. After the connection closed (by us, by the
    /// remote's go-away, or by an error) this returns [`MuxerError::Closed`] or the
    /// error that ended it.
    async fn accept_stream(&self) -> Result<BoxedStream, MuxerError>;

    /// Closes the connection gracefully: tells the remote (go-away), flushes, and
    /// closes the underlying stream. Open streams then fail.
    async fn close(&self) -> Result<(), MuxerError>;

    /// Whether the connection is closed, by either side.
    fn is_closed(&self) -> bool;

    /// Whether the remote announced that it will open no more streams (yamux
    /// go-away), or closed the connection.
    fn remote_went_away(&self) -> bool;

    /// Charges the connection's receive buffers to `budget` from now on.
    ///
    /// For a connection a transport made before the host had its budget (QUIC: the
    /// handshake runs before admission): it starts with the small window it may
    /// fill unreserved and grows to what `budget` grants. The provided implementation
    /// does nothing, which is right for a muxer that got its budget at upgrade
    /// ([`StreamMuxer::upgrade_with_budget`]).
    fn adopt_budget(&self, budget: Budget) {
        let _ = budget;
    }

    /// Opens a stream that leaves at once with early (0-RTT) data while the
    /// connection's handshake is still running: data an attacker may replay, so only
    /// for requests that are safe to run twice. [`open_stream`](Self::open_stream)
    /// waits for the handshake instead. The provided implementation is
    /// `open_stream` (a connection that is complete when it is made).
    async fn open_early_stream(&self) -> Result<BoxedStream, MuxerError> {
        self.open_stream().await
    }

    /// Waits until the connection's handshake is complete: true then, false if the
    /// connection failed before. The provided implementation is true at once.
    async fn handshake_complete(&self) -> bool {
        true
    }

    /// What the connection's handshake did (resumed, early data) and the
    /// transport's RTT estimate. The provided implementation reports a complete
    /// handshake and nothing else.
    fn session_info(&self) -> SessionInfo {
        SessionInfo::default()
    }
}

/// What a connection's handshake did, where its transport knows
/// ([`MuxedConnection::session_info`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// Whether the handshake is complete (early data may flow before).
    pub handshake_complete: bool,
    /// Whether the handshake resumed an earlier session (`None`: unknown, or not
    /// known before the handshake completes).
    pub resumed: Option<bool>,
    /// What became of early (0-RTT) data.
    pub early_data: EarlyData,
    /// The transport's current round-trip time estimate, if it keeps one.
    pub rtt: Option<Duration>,
}

impl Default for SessionInfo {
    fn default() -> Self {
        SessionInfo {
            handshake_complete: true,
            resumed: None,
            early_data: EarlyData::NotAttempted,
            rtt: None,
        }
    }
}

impl SessionInfo {
    /// Sets whether the handshake is complete.
    pub fn with_handshake_complete(mut self, complete: bool) -> Self {
        self.handshake_complete = complete;
        self
    }

    /// Sets whether the handshake resumed a session.
    pub fn with_resumed(mut self, resumed: Option<bool>) -> Self {
        self.resumed = resumed;
        self
    }

    /// Sets the fate of early data.
    pub fn with_early_data(mut self, early_data: EarlyData) -> Self {
        self.early_data = early_data;
        self
    }

    /// Sets the RTT estimate.
    pub fn with_rtt(mut self, rtt: Option<Duration>) -> Self {
        self.rtt = rtt;
        self
    }
}

/// What became of a connection's early (0-RTT) data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EarlyData {
    /// None was sent: no resumable session, not asked for, or not supported.
    NotAttempted,
    /// Sent; the handshake has not completed yet.
    Pending,
    /// The remote accepted it.
    Accepted,
    /// The remote rejected it: streams opened early failed and must be opened again.
    Rejected,
}

/// One stream of a multiplexed connection.
///
/// `poll_close` is a half-close: our write side is done (the remote reads EOF), while
/// reads go on until the remote closes its side too.
pub trait MuxedStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// Aborts the stream in both directions; the remote sees an error, not EOF.
    fn reset(&mut self);

    /// Whether the remote opened this stream with early (0-RTT) data, which an
    /// attacker may have recorded and replayed. The provided implementation: false.
    fn is_early(&self) -> bool {
        false
    }
}

/// An owned, type-erased [`MuxedStream`].
pub type BoxedStream = Box<dyn MuxedStream>;

/// Why a multiplexer operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MuxerError {
    /// The underlying connection failed.
    #[error("i/o error on the multiplexed connection: {0}")]
    Io(#[from] std::io::Error),
    /// The connection is closed (by us, or the remote went away).
    #[error("the multiplexed connection is closed")]
    Closed,
    /// The limit on concurrent streams was reached.
    #[error("too many streams on this connection")]
    TooManyStreams,
    /// The remote broke the muxer protocol.
    #[error("muxer protocol violation: {0}")]
    Protocol(#[source] Box<dyn std::error::Error + Send + Sync>),
}
