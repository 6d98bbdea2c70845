//! QUIC (RFC 9000, `/quic-v1`) with libp2p TLS for weft, on `quinn`.
//!
//! A QUIC connection comes secure and multiplexed on its own: the TLS 1.3 handshake
//! inside QUIC (ALPN `"libp2p"`, the libp2p certificate of `weft-security-tls`)
//! proves both peer ids, and QUIC's streams are the streams. So this crate yields a
//! [`weft_upgrader::Connection`] directly, with no security or muxer negotiation
//! ([`SECURITY_PROTOCOL`], [`MUXER_PROTOCOL`], `muxer_inlined`).
//!
//! - [`QuicEndpoints`]: the sockets of one identity. Listening sockets also carry
//!   dials (port reuse); [`QuicEndpoints::dial`] checks the expected peer inside the
//!   handshake; [`QuicListener::accept`] yields an [`Inbound`] whose
//!   [`handshake`](Inbound::handshake) runs apart from the accept loop.
//! - Receive windows start small, reserved from a [`weft_upgrader::Budget`] before
//!   the handshake (shrunk when it denies, never failing the connection), and grow
//!   as the application reads, each growth reserved first; the send window likewise
//!   starts small, reserved, and grows as the path carries data (about twice the
//!   congestion window; see the README on windows and budgets).
//! - Session resumption and 0-RTT: tickets kept per remote peer id, in memory;
//!   [`QuicEndpoints::dial_with`] with early data returns before the listener
//!   answered on a resumed session; early streams only when asked for
//!   (`open_early_stream`), and reported to the listener (`MuxedStream::is_early`).
//!   See the README on what a resumed connection proves and what 0-RTT is not.
//! - One long-lived TLS configuration per identity, its certificate rotated inside it
//!   ([`Config::certificate_rotation`], [`QuicEndpoints::rotate_certificate`]).
//! - [`Config`]: handshake timeout, idle timeout and keep-alive (a dead peer is
//!   reported within about 6 s), windows, stream limit, socket buffers, MTU discovery.
//! - [`Congestion`]: each connection's congestion controller, quinn's CUBIC (the
//!   default) or BBR.
//! - [`multiaddr_to_socket`] / [`socket_to_multiaddr`] for `/ip4|ip6/../udp/../quic-v1`.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod addr;
mod config;
mod congestion;
mod connection;
mod endpoint;
mod error;
mod send_window;
mod socket;
mod stream;
#[cfg(test)]
mod test_budget;
mod tuning;
mod window;

pub use addr::{multiaddr_to_socket, socket_to_multiaddr};
pub use config::{
    Config, DEFAULT_CERTIFICATE_LIFETIME, DEFAULT_CONNECTION_WINDOW, DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_KEEP_ALIVE_INTERVAL, DEFAULT_MAX_CONNECTION_WINDOW,
    DEFAULT_MAX_PENDING_INBOUND, DEFAULT_MAX_SEND_WINDOW, DEFAULT_MAX_STREAMS, DEFAULT_SEND_WINDOW,
    DEFAULT_SOCKET_BUFFER, DEFAULT_STREAM_WINDOW, INITIAL_MTU, MIN_WINDOW,
};
pub use congestion::Congestion;
pub use connection::{QuicMuxed, MUXER_PROTOCOL, SECURITY_PROTOCOL};
pub use endpoint::{Established, Inbound, QuicEndpoints, QuicListener};
pub use error::QuicError;
pub use stream::QuicStream;
pub use tuning::{GROWTH_PRIORITY, LINK_RATE};
pub use window::{deferred_budget, WINDOW_PRIORITY};

// The README example is a doctest (compiled and run: it needs only 127.0.0.1).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
