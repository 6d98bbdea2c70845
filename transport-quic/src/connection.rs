//! A quinn connection as a [`weft_upgrader::Connection`].

use crate::config::Config;
use crate::error::QuicError;
use crate::stream::QuicStream;
use crate::window::Windows;
use libp2p_identity::PublicKey;
use rustls::pki_types::CertificateDer;
use std::sync::{Arc, Mutex};
use weft_upgrader::{
    BoxedStream, Budget, Connection, MuxedConnection, MuxerError, Reservation, Role,
};

/// The security protocol a QUIC connection reports: the libp2p TLS handshake it runs
/// (inside QUIC, not negotiated with multistream-select).
pub const SECURITY_PROTOCOL: &str = "/tls/1.0.0";
/// The muxer a QUIC connection reports: QUIC's own streams, named after the
/// multiaddr component (`quic-v1`); there is no negotiation, so it is "inlined".
pub const MUXER_PROTOCOL: &str = "quic-v1";

/// The application error code of a connection we close.
const CLOSE_CODE: u32 = 0;

/// A quinn connection as a [`MuxedConnection`]: bidirectional streams only.
///
/// It holds the memory reserved for the connection's receive window; the
/// reservation goes back when the last handle drops. The connection itself lives
/// until [`close`](MuxedConnection::close), the peer's close or the idle timeout, or
/// until this handle, its streams and the connection's driver are all dropped.
pub struct QuicMuxed {
    connection: quinn::Connection,
    config: Config,
    window: Mutex<Reservation>,
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
}

#[async_trait::async_trait]
impl MuxedConnection for QuicMuxed {
    async fn open_stream(&self) -> Result<BoxedStream, MuxerError> {
        let (send, recv) = self.connection.open_bi().await.map_err(muxer_error)?;
        Ok(Box::new(QuicStream::new(send, recv)))
    }

    async fn accept_stream(&self) -> Result<BoxedStream, MuxerError> {
        let (send, recv) = self.connection.accept_bi().await.map_err(muxer_error)?;
        Ok(Box::new(QuicStream::new(send, recv)))
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

    /// Reserves the configured window from `budget` (shrunk if it denies, as at a
    /// dial) in place of what is held, and sets the connection's receive window to
    /// it. quinn never takes back credit it granted, so a connection meant to adopt a
    /// budget starts at [`MIN_WINDOW`](crate::MIN_WINDOW) (dialed or accepted with a
    /// budget that denies everything).
    fn adopt_budget(&self, budget: Budget) {
        let windows = Windows::reserve(&self.config, &budget);
        self.connection
            .set_receive_window(quinn::VarInt::from_u32(windows.connection));
        *self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = windows.reservation;
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

/// The host key the peer's certificate proved in the finished handshake.
fn remote_public_key(connection: &quinn::Connection) -> Result<PublicKey, QuicError> {
    let chain = connection
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|chain| *chain)
        .unwrap_or_default();
    weft_security_tls::peer_public_key(&chain).map_err(QuicError::PeerIdentity)
}

/// Wraps an established quinn connection as a weft [`Connection`], keeping `window`
/// reserved while any handle to it lives.
///
/// The driver completes when the connection has closed: `Ok` for a close by either
/// application, the error otherwise (a timed-out idle connection reports
/// [`std::io::ErrorKind::TimedOut`]).
pub(crate) fn into_connection(
    connection: quinn::Connection,
    role: Role,
    window: Reservation,
    config: &Config,
) -> Result<Connection, QuicError> {
    let remote_public_key = remote_public_key(&connection)?;
    let closed = connection.clone();
    let driver = Box::pin(async move {
        match muxer_error(closed.closed().await) {
            MuxerError::Closed => Ok(()),
            error => Err(error),
        }
    });
    Ok(Connection {
        remote_peer: remote_public_key.to_peer_id(),
        remote_public_key,
        role,
        security_protocol: SECURITY_PROTOCOL.to_string(),
        muxer_protocol: MUXER_PROTOCOL.to_string(),
        muxer_inlined: true,
        muxed: Arc::new(QuicMuxed {
            connection,
            config: config.clone(),
            window: Mutex::new(window),
        }),
        driver,
    })
}
