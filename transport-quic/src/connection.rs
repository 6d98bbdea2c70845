//! A quinn connection as a [`weft_upgrader::Connection`].

use crate::config::Config;
use crate::error::QuicError;
use crate::send_window::SendWindow;
use crate::stream::QuicStream;
use crate::tuning::ReceiveWindow;
use crate::window::Windows;
use libp2p_identity::PublicKey;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use tokio::sync::watch;
use weft_upgrader::{
    BoxedStream, Budget, Connection, EarlyData, MuxedConnection, MuxerError, Role, SessionInfo,
};

/// The security protocol a QUIC connection reports: the libp2p TLS handshake it runs
/// (inside QUIC, not negotiated with multistream-select).
pub const SECURITY_PROTOCOL: &str = "/tls/1.0.0";
/// The muxer a QUIC connection reports: QUIC's own streams, named after the
/// multiaddr component (`quic-v1`); there is no negotiation, so it is "inlined".
pub const MUXER_PROTOCOL: &str = "quic-v1";

/// The application error code of a connection we close.
const CLOSE_CODE: u32 = 0;

/// The application error code of a connection closed because its handshake did not
/// complete in time or proved another key than the session it resumed.
const HANDSHAKE_FAILED_CODE: u32 = 1;

/// How far a connection's handshake got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Early (0-RTT, or a listener's resumed 0.5-RTT) data may flow; the handshake runs.
    Early,
    /// The handshake completed.
    Complete,
    /// The handshake failed after the connection was handed out.
    Failed,
}

/// What a connection's handshake did, as its handles see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    pub(crate) stage: Stage,
    pub(crate) resumed: Option<bool>,
    pub(crate) early_data: EarlyData,
}

impl Progress {
    /// A connection handed out after its handshake.
    pub(crate) fn complete(resumed: Option<bool>) -> Self {
        Progress {
            stage: Stage::Complete,
            resumed,
            early_data: EarlyData::NotAttempted,
        }
    }
}

/// A quinn connection as a [`MuxedConnection`]: bidirectional streams only.
///
/// It holds the memory reserved for the connection's receive window, which grows as
/// its streams are read, and for its send window, which grows as the path carries
/// what they write (see the crate README on windows); the reservations go back when
/// the last handle (this one or a stream's) drops. The connection itself lives
/// until [`close`](MuxedConnection::close), the peer's close or the idle timeout, or
/// until this handle, its streams and the connection's driver are all dropped.
pub struct QuicMuxed {
    connection: quinn::Connection,
    config: Config,
    window: Arc<ReceiveWindow>,
    send_window: Arc<SendWindow>,
    progress: watch::Receiver<Progress>,
}

impl std::fmt::Debug for QuicMuxed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicMuxed")
            .field("remote", &self.connection.remote_address())
            .finish_non_exhaustive()
    }
}

impl QuicMuxed {
    /// The quinn connection (statistics, RTT, the remote address).
    pub fn quinn(&self) -> &quinn::Connection {
        &self.connection
    }

    /// The connection's receive window now, in bytes (it grows as streams are read).
    pub fn receive_window(&self) -> u64 {
        self.window.window()
    }

    /// The bytes reserved from the connection's budget for its receive window now.
    pub fn reserved_window(&self) -> usize {
        self.window.reserved()
    }

    /// The connection's send window now, in bytes (it grows as the path carries data).
    pub fn send_window(&self) -> u64 {
        self.send_window.window()
    }

    /// The bytes reserved from the connection's budget for its send window now.
    pub fn reserved_send_window(&self) -> usize {
        self.send_window.reserved()
    }

    /// A stream of this connection from quinn's two halves.
    fn stream(&self, send: quinn::SendStream, recv: quinn::RecvStream) -> QuicStream {
        QuicStream::new(send, recv, self.window.clone(), self.send_window.clone())
    }

    /// Waits until the handshake is no longer early: true if it completed.
    async fn wait_complete(&self) -> bool {
        let mut progress = self.progress.clone();
        // The watcher gone without a verdict (the runtime shuts down) counts as failed.
        let stage = match progress.wait_for(|p| p.stage != Stage::Early).await {
            Ok(p) => p.stage,
            Err(_) => Stage::Failed,
        };
        stage == Stage::Complete
    }

    /// The error of a stream operation on a connection whose handshake failed.
    fn failed(&self) -> MuxerError {
        self.connection
            .close_reason()
            .map_or(MuxerError::Closed, muxer_error)
    }
}

#[async_trait::async_trait]
impl MuxedConnection for QuicMuxed {
    /// Waits for the handshake first: nothing but an explicit
    /// [`open_early_stream`](MuxedConnection::open_early_stream) leaves in 0-RTT.
    async fn open_stream(&self) -> Result<BoxedStream, MuxerError> {
        if !self.wait_complete().await {
            return Err(self.failed());
        }
        let (send, recv) = self.connection.open_bi().await.map_err(muxer_error)?;
        Ok(Box::new(self.stream(send, recv)))
    }

    /// Opens a stream at once: on a connection dialed with early data whose handshake
    /// still runs, it leaves in 0-RTT (replayable). If the listener rejects the early
    /// data, its reads and writes fail and the request must go again on a new stream.
    async fn open_early_stream(&self) -> Result<BoxedStream, MuxerError> {
        let (send, recv) = self.connection.open_bi().await.map_err(muxer_error)?;
        Ok(Box::new(self.stream(send, recv)))
    }

    /// Streams the peer opened in 0-RTT report [`is_early`](weft_upgrader::MuxedStream::is_early).
    async fn accept_stream(&self) -> Result<BoxedStream, MuxerError> {
        let (send, recv) = self.connection.accept_bi().await.map_err(muxer_error)?;
        Ok(Box::new(self.stream(send, recv).accepted()))
    }

    async fn handshake_complete(&self) -> bool {
        self.wait_complete().await
    }

    fn session_info(&self) -> SessionInfo {
        let progress = *self.progress.borrow();
        SessionInfo::default()
            .with_handshake_complete(progress.stage == Stage::Complete)
            .with_resumed(progress.resumed)
            .with_early_data(progress.early_data)
            .with_rtt(Some(self.connection.rtt()))
    }

    async fn close(&self) -> Result<(), MuxerError> {
        self.connection
            .close(quinn::VarInt::from_u32(CLOSE_CODE), b"");
        Ok(())
    }

    fn is_closed(&self) -> bool {
        self.connection.close_reason().is_some()
    }

    fn remote_went_away(&self) -> bool {
        self.is_closed()
    }

    /// Reserves the configured starting windows from `budget` (shrunk if it denies,
    /// as at a dial) in place of what is held, raises the connection's receive and
    /// send windows to them, and takes their growth from `budget` from now on. quinn
    /// never takes back credit it granted, so a connection meant to adopt a budget
    /// starts at [`MIN_WINDOW`](crate::MIN_WINDOW) (dialed or accepted with a budget
    /// that denies everything).
    fn adopt_budget(&self, budget: Budget) {
        let windows = Windows::reserve(&self.config, &budget);
        self.window.adopt(windows.reservation);
        self.send_window
            .adopt(windows.send_reservation, u64::from(windows.send));
    }
}

/// Maps the reason a quinn connection ended to the muxer's error.
pub(crate) fn muxer_error(error: quinn::ConnectionError) -> MuxerError {
    use quinn::ConnectionError as E;
    use std::io::{Error, ErrorKind};
    match error {
        E::LocallyClosed | E::ApplicationClosed(_) | E::ConnectionClosed(_) => MuxerError::Closed,
        E::TimedOut => MuxerError::Io(Error::new(ErrorKind::TimedOut, error)),
        E::Reset => MuxerError::Io(Error::new(ErrorKind::ConnectionReset, error)),
        E::CidsExhausted => MuxerError::Io(Error::other(error)),
        E::TransportError(_) | E::VersionMismatch => MuxerError::Protocol(Box::new(error)),
    }
}

/// The host key of the peer's certificate: verified in this handshake, or in the
/// original one of a resumed session (rustls restores its certificate).
pub(crate) fn proven_key(connection: &quinn::Connection) -> Result<PublicKey, QuicError> {
    let chain = peer_chain(connection).unwrap_or_default();
    weft_security_tls::peer_public_key(&chain).map_err(QuicError::PeerIdentity)
}

/// The peer's certificate chain, once rustls has it (verified, or restored from a
/// resumed session).
pub(crate) fn peer_chain(connection: &quinn::Connection) -> Option<Vec<CertificateDer<'static>>> {
    connection
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|chain| *chain)
}

/// Wraps a quinn connection as a weft [`Connection`] of the peer `remote_public_key`,
/// whose receive and send windows are those of `windows`, their reservations held
/// while any handle to it lives; the windows are tuned from there (the receive window
/// as its streams are read, the send window as its path carries data). `progress`
/// tells how far its handshake got (see [`watch_handshake`] for one still running).
///
/// The driver completes when the connection has closed: `Ok` for a close by either
/// application, the error otherwise (a timed-out idle connection reports
/// [`std::io::ErrorKind::TimedOut`]).
pub(crate) fn into_connection(
    connection: quinn::Connection,
    role: Role,
    windows: Windows,
    config: &Config,
    remote_public_key: PublicKey,
    progress: watch::Receiver<Progress>,
) -> Connection {
    let window = Arc::new(ReceiveWindow::new(
        connection.clone(),
        u64::from(windows.connection),
        u64::from(config.max_connection_window),
        windows.reservation,
    ));
    let send_window = Arc::new(SendWindow::new(
        connection.clone(),
        u64::from(windows.send),
        u64::from(config.max_send_window),
        windows.send_reservation,
    ));
    let closed = connection.clone();
    let driver = Box::pin(async move {
        let reason = closed.closed().await;
        log_path_stats(&closed, &reason);
        match muxer_error(reason) {
            MuxerError::Closed => Ok(()),
            error => Err(error),
        }
    });
    Connection {
        remote_peer: remote_public_key.to_peer_id(),
        remote_public_key,
        role,
        security_protocol: SECURITY_PROTOCOL.to_string(),
        muxer_protocol: MUXER_PROTOCOL.to_string(),
        muxer_inlined: true,
        muxed: Arc::new(QuicMuxed {
            connection,
            config: config.clone(),
            window,
            send_window,
            progress,
        }),
        driver,
    }
}

/// Logs (at debug) what the path did over a connection's life, once it closed: how
/// a transfer went on a long or lossy link (lost packets, congestion events, the last
/// congestion window and round trip).
fn log_path_stats(connection: &quinn::Connection, reason: &quinn::ConnectionError) {
    let stats = connection.stats();
    tracing::debug!(
        remote = %connection.remote_address(),
        %reason,
        rtt = ?stats.path.rtt,
        cwnd = stats.path.cwnd,
        sent_packets = stats.path.sent_packets,
        lost_packets = stats.path.lost_packets,
        lost_bytes = stats.path.lost_bytes,
        congestion_events = stats.path.congestion_events,
        "QUIC connection closed"
    );
}

/// What a connection handed out before its handshake completed still has to check.
pub(crate) struct Pending {
    /// Resolves when the handshake completes (for a dialer: whether the early data
    /// was accepted).
    pub(crate) accepted: quinn::ZeroRttAccepted,
    /// The key the connection was handed out with (that of the resumed session).
    pub(crate) key: PublicKey,
    /// Whether we sent early data (a dialer that asked for it).
    pub(crate) early_data: bool,
    /// Whether the handshake resumed, once it completed.
    pub(crate) resumed: Box<dyn Fn() -> Option<bool> + Send>,
    /// How long the handshake may still take.
    pub(crate) timeout: std::time::Duration,
}

/// Follows the handshake of a connection handed out early until it completes, fails
/// or times out, and publishes the outcome. A completed handshake must prove the key
/// the connection was handed out with; otherwise (or on a timeout) the connection
/// is closed and its handles fail.
pub(crate) async fn watch_handshake(
    connection: quinn::Connection,
    pending: Pending,
    progress: watch::Sender<Progress>,
) {
    let Pending {
        accepted,
        key,
        early_data,
        resumed,
        timeout,
    } = pending;
    let remote = connection.remote_address();
    let outcome = tokio::time::timeout(timeout, accepted).await;
    let proven = proven_key(&connection).ok();
    let next = match outcome {
        Err(_) => {
            tracing::debug!(%remote, ?timeout, "early QUIC connection: handshake timed out");
            connection.close(
                quinn::VarInt::from_u32(HANDSHAKE_FAILED_CODE),
                b"handshake timed out",
            );
            None
        }
        Ok(_) if connection.close_reason().is_some() => None,
        Ok(_) if proven.as_ref() != Some(&key) => {
            tracing::warn!(%remote, "early QUIC connection proved another key than its session; closed");
            connection.close(
                quinn::VarInt::from_u32(HANDSHAKE_FAILED_CODE),
                b"peer key changed",
            );
            None
        }
        Ok(accepted) => Some(accepted),
    };
    progress.send_modify(|p| match next {
        None => p.stage = Stage::Failed,
        Some(accepted) => {
            p.stage = Stage::Complete;
            p.resumed = resumed();
            if early_data {
                p.early_data = if accepted {
                    EarlyData::Accepted
                } else {
                    EarlyData::Rejected
                };
            }
            tracing::debug!(%remote, resumed = ?p.resumed, early_data = ?p.early_data, "QUIC handshake completed");
        }
    });
}
