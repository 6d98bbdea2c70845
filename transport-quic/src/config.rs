//! Settings of the QUIC endpoints and connections.

use crate::Congestion;
use std::time::Duration;
pub use weft_security_tls::DEFAULT_CERTIFICATE_LIFETIME;

/// The default limit on a QUIC handshake (one round trip plus certificate checks).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The default idle timeout: a connection that hears nothing for this long is closed
/// and reported as timed out. Both sides propose one; the smaller applies.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(6);
/// The default keep-alive interval: an idle connection sends a PING this often, so
/// a live peer is never idle for [`DEFAULT_IDLE_TIMEOUT`].
pub const DEFAULT_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// The default starting connection receive window: what the peer may send us across
/// all streams before we read anything. Reserved from the connection's budget at
/// dial/accept; it grows as the application reads (see the README).
pub const DEFAULT_CONNECTION_WINDOW: u32 = 1024 * 1024;
/// The default most the connection receive window grows to as the application
/// reads (one stream at 60 ms RTT: 32 MiB / 60 ms = 530 MiB/s).
pub const DEFAULT_MAX_CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;
/// The default stream receive window (what one stream may buffer, within the
/// connection window). quinn fixes it for a connection's life, so it is as large as
/// the connection window may grow: the connection window is what bounds a stream.
pub const DEFAULT_STREAM_WINDOW: u32 = DEFAULT_MAX_CONNECTION_WINDOW;
/// The default starting send window: the most data the application may have written
/// on a connection that the peer has not acknowledged yet, across its streams, before
/// the path showed that it carries more. Reserved from the connection's budget at
/// dial/accept; it grows as the path carries data (about twice quinn's congestion
/// window, see the README) and shrinks back when it no longer does.
pub const DEFAULT_SEND_WINDOW: u32 = 1024 * 1024;
/// The default most the send window grows to (one connection at 60 ms RTT:
/// 32 MiB / 60 ms = 530 MiB/s, as much as a weft peer's receive window allows).
pub const DEFAULT_MAX_SEND_WINDOW: u32 = 32 * 1024 * 1024;
/// The window a connection keeps when its budget denies everything above it.
pub const MIN_WINDOW: u32 = 256 * 1024;
/// The default limit on concurrent bidirectional streams the peer may open.
pub const DEFAULT_MAX_STREAMS: u32 = 256;
/// The default socket buffer size requested (SO_RCVBUF and SO_SNDBUF).
pub const DEFAULT_SOCKET_BUFFER: usize = 4 * 1024 * 1024;
/// The default limit on inbound handshakes in progress per listening socket.
pub const DEFAULT_MAX_PENDING_INBOUND: usize = 256;
/// The initial (and minimum) UDP payload size: the QUIC minimum, safe on every path.
pub const INITIAL_MTU: u16 = 1200;

/// Settings of a [`QuicEndpoints`](crate::QuicEndpoints).
///
/// Build it with [`Default`] and the `with_*` methods; fields may be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// How long a handshake may take (default [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub handshake_timeout: Duration,
    /// Silence after which a connection is closed as dead (default
    /// [`DEFAULT_IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
    /// How often an idle connection pings (default [`DEFAULT_KEEP_ALIVE_INTERVAL`]);
    /// keep it well below the idle timeout.
    pub keep_alive_interval: Duration,
    /// The starting connection receive window asked of the budget (default
    /// [`DEFAULT_CONNECTION_WINDOW`]).
    pub connection_window: u32,
    /// The most the connection receive window grows to as the application reads
    /// (default [`DEFAULT_MAX_CONNECTION_WINDOW`]).
    pub max_connection_window: u32,
    /// The starting send window asked of the budget (default [`DEFAULT_SEND_WINDOW`]).
    pub send_window: u32,
    /// The most the send window grows to as the path carries data (default
    /// [`DEFAULT_MAX_SEND_WINDOW`]).
    pub max_send_window: u32,
    /// The stream receive window (default [`DEFAULT_STREAM_WINDOW`]); the connection
    /// window bounds all streams together.
    pub stream_window: u32,
    /// Concurrent bidirectional streams the peer may open (default
    /// [`DEFAULT_MAX_STREAMS`]); unidirectional streams are refused.
    pub max_streams: u32,
    /// SO_RCVBUF and SO_SNDBUF requested for each UDP socket (default
    /// [`DEFAULT_SOCKET_BUFFER`]); the kernel may grant less (Linux caps it at
    /// `net.core.rmem_max` / `wmem_max`).
    pub socket_buffer: usize,
    /// Inbound handshakes in progress per listening socket (default
    /// [`DEFAULT_MAX_PENDING_INBOUND`]); beyond it new ones are refused.
    pub max_pending_inbound: usize,
    /// Whether path MTU discovery probes for packets above [`INITIAL_MTU`] (default on).
    pub mtu_discovery: bool,
    /// How long one generated TLS certificate is presented before a fresh one of the
    /// same identity replaces it, inside the long-lived TLS configuration (default
    /// [`DEFAULT_CERTIFICATE_LIFETIME`], 60 s; `Duration::ZERO`: a fresh one per
    /// handshake). Sessions resume across rotations.
    pub certificate_rotation: Duration,
    /// The congestion controller of each connection (default
    /// [`Congestion::Cubic`]).
    pub congestion: Congestion,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            keep_alive_interval: DEFAULT_KEEP_ALIVE_INTERVAL,
            connection_window: DEFAULT_CONNECTION_WINDOW,
            max_connection_window: DEFAULT_MAX_CONNECTION_WINDOW,
            send_window: DEFAULT_SEND_WINDOW,
            max_send_window: DEFAULT_MAX_SEND_WINDOW,
            stream_window: DEFAULT_STREAM_WINDOW,
            max_streams: DEFAULT_MAX_STREAMS,
            socket_buffer: DEFAULT_SOCKET_BUFFER,
            max_pending_inbound: DEFAULT_MAX_PENDING_INBOUND,
            mtu_discovery: true,
            certificate_rotation: DEFAULT_CERTIFICATE_LIFETIME,
            congestion: Congestion::default(),
        }
    }
}

impl Config {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the handshake timeout.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets the idle timeout.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets the keep-alive interval.
    pub fn with_keep_alive_interval(mut self, interval: Duration) -> Self {
        self.keep_alive_interval = interval;
        self
    }

    /// Sets the starting connection receive window asked of the budget.
    pub fn with_connection_window(mut self, bytes: u32) -> Self {
        self.connection_window = bytes;
        self
    }

    /// Sets the most the connection receive window grows to. At most the starting
    /// window: no growth.
    pub fn with_max_connection_window(mut self, bytes: u32) -> Self {
        self.max_connection_window = bytes;
        self
    }

    /// Sets the starting send window asked of the budget.
    pub fn with_send_window(mut self, bytes: u32) -> Self {
        self.send_window = bytes;
        self
    }

    /// Sets the most the send window grows to. At most the starting window: no
    /// growth.
    pub fn with_max_send_window(mut self, bytes: u32) -> Self {
        self.max_send_window = bytes;
        self
    }

    /// Sets the stream receive window.
    pub fn with_stream_window(mut self, bytes: u32) -> Self {
        self.stream_window = bytes;
        self
    }

    /// Sets the limit on concurrent streams the peer may open.
    pub fn with_max_streams(mut self, streams: u32) -> Self {
        self.max_streams = streams;
        self
    }

    /// Sets the socket buffer size requested.
    pub fn with_socket_buffer(mut self, bytes: usize) -> Self {
        self.socket_buffer = bytes;
        self
    }

    /// Sets the limit on inbound handshakes in progress per listening socket.
    pub fn with_max_pending_inbound(mut self, handshakes: usize) -> Self {
        self.max_pending_inbound = handshakes;
        self
    }

    /// Turns path MTU discovery on or off.
    pub fn with_mtu_discovery(mut self, on: bool) -> Self {
        self.mtu_discovery = on;
        self
    }

    /// Sets how long one TLS certificate is presented before it is rotated.
    pub fn with_certificate_rotation(mut self, interval: Duration) -> Self {
        self.certificate_rotation = interval;
        self
    }

    /// Sets the congestion controller.
    pub fn with_congestion(mut self, congestion: Congestion) -> Self {
        self.congestion = congestion;
        self
    }
}
