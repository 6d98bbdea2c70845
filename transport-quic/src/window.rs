//! The starting receive and send windows reserved from a connection's budget, and the
//! quinn transport parameters built from what was granted.
//!
//! A peer may fill a connection's whole receive window from its first packet,
//! before the application reads anything. So the starting window is reserved up
//! front, before the handshake (it grows later as the application reads, see
//! `tuning`): the configured window if the budget grants it, otherwise
//! the largest half, quarter, ... of it that it grants, down to [`MIN_WINDOW`]. A
//! connection whose budget denies even that runs with [`MIN_WINDOW`] unreserved (the
//! analogue of the initial window a yamux peer may fill without asking): a denial
//! slows a connection down, it never fails it.
//!
//! The send window (what the application may have written that the peer has not
//! acknowledged) is reserved the same way, after the receive window (the memory a
//! peer can fill on its own comes first); it grows later as the path carries data
//! (see `send_window`).

use crate::config::{Config, INITIAL_MTU, MIN_WINDOW};
use quinn::{IdleTimeout, MtuDiscoveryConfig, TransportConfig, VarInt};
use std::sync::Arc;
use weft_upgrader::{Budget, BudgetDenied, MemoryBudget, Priority, Reservation};

/// The priority of a connection window reservation: like the initial windows of
/// the other muxers, the peer can fill it without the application reading.
pub const WINDOW_PRIORITY: Priority = Priority::LOW;

/// A connection's windows and the memory reserved for them.
#[derive(Debug)]
pub(crate) struct Windows {
    /// The connection receive window.
    pub(crate) connection: u32,
    /// The stream receive window (as configured).
    pub(crate) stream: u32,
    /// The memory held for `connection` bytes (less when the budget denied even
    /// [`MIN_WINDOW`]).
    pub(crate) reservation: Reservation,
    /// The send window.
    pub(crate) send: u32,
    /// The memory held for `send` bytes (less when the budget denied even
    /// [`MIN_WINDOW`]).
    pub(crate) send_reservation: Reservation,
}

impl Windows {
    /// Reserves the largest receive window of `config.connection_window`, its half,
    /// quarter, ... down to [`MIN_WINDOW`], that `budget` grants, then the largest
    /// send window of `config.send_window` likewise.
    pub(crate) fn reserve(config: &Config, budget: &Budget) -> Windows {
        let (connection, reservation) = reserve_start(budget, config.connection_window, "receive");
        let (send, send_reservation) = reserve_start(budget, config.send_window, "send");
        Windows {
            connection,
            // Not capped by the connection window: that one bounds what all streams
            // together buffer, and a connection that adopts a larger budget after the
            // handshake cannot raise its stream window any more.
            stream: config.stream_window.max(1),
            reservation,
            send,
            send_reservation,
        }
    }

    /// The quinn transport parameters of a connection with these windows.
    pub(crate) fn transport_config(&self, config: &Config) -> Arc<TransportConfig> {
        transport_config(config, self.connection, self.stream, self.send)
    }

    /// The transport parameters a listener advertises: the connection window starts
    /// at [`MIN_WINDOW`] whatever the budget granted, and is raised to it right after
    /// the handshake. A client that resumes in 0-RTT uses the limits of its previous
    /// session, and QUIC forbids a listener to accept it with smaller ones (quinn
    /// fails such a connection), so what a listener advertises must not depend on
    /// how much its budget grants at the time.
    pub(crate) fn listener_transport_config(&self, config: &Config) -> Arc<TransportConfig> {
        transport_config(config, MIN_WINDOW, self.stream, self.send)
    }
}

/// Reserves the largest window of `wanted`, its half, quarter, ... down to
/// [`MIN_WINDOW`], that `budget` grants; [`MIN_WINDOW`] unreserved if it grants none.
fn reserve_start(budget: &Budget, wanted: u32, which: &'static str) -> (u32, Reservation) {
    let wanted = wanted.max(MIN_WINDOW);
    let mut window = wanted;
    let (granted, reservation) = loop {
        match budget.reserve(window as usize, WINDOW_PRIORITY) {
            Ok(reservation) => break (window, reservation),
            Err(denied) if window <= MIN_WINDOW => {
                tracing::debug!(%denied, window, which, "budget denies the minimum QUIC window; running with it unreserved");
                break (MIN_WINDOW, budget.empty());
            }
            Err(_) => window = (window / 2).max(MIN_WINDOW),
        }
    };
    if granted < wanted {
        tracing::debug!(wanted, granted, which, "QUIC window shrunk by the budget");
    }
    (granted, reservation)
}

/// The quinn transport parameters of a connection advertising `connection` and
/// `stream` as its receive windows, with a send window of `send` bytes.
fn transport_config(
    config: &Config,
    connection: u32,
    stream: u32,
    send: u32,
) -> Arc<TransportConfig> {
    let mut transport = TransportConfig::default();
    transport
        .receive_window(VarInt::from_u32(connection))
        .stream_receive_window(VarInt::from_u32(stream))
        .send_window(u64::from(send))
        .max_concurrent_bidi_streams(VarInt::from_u32(config.max_streams))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .datagram_receive_buffer_size(None)
        .keep_alive_interval(Some(config.keep_alive_interval))
        .max_idle_timeout(IdleTimeout::try_from(config.idle_timeout).ok())
        .initial_mtu(INITIAL_MTU)
        .min_mtu(INITIAL_MTU)
        .mtu_discovery_config(config.mtu_discovery.then(MtuDiscoveryConfig::default))
        .congestion_controller_factory(config.congestion.factory());
    Arc::new(transport)
}

/// A budget that grants nothing: a connection dialed or accepted with it starts at
/// [`MIN_WINDOW`] with nothing reserved, for a caller that hands it its real budget
/// right after the handshake ([`MuxedConnection::adopt_budget`]).
///
/// [`MuxedConnection::adopt_budget`]: weft_upgrader::MuxedConnection::adopt_budget
pub fn deferred_budget() -> Budget {
    Budget::new(Arc::new(GrantsNothing))
}

/// The source of [`deferred_budget`].
struct GrantsNothing;

impl MemoryBudget for GrantsNothing {
    fn try_reserve(&self, bytes: usize, _priority: Priority) -> Result<(), BudgetDenied> {
        Err(BudgetDenied {
            requested: bytes,
            reason: "the connection's budget is adopted after the handshake".into(),
        })
    }

    fn release(&self, _bytes: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_budget::limited;

    #[test]
    fn an_ample_budget_grants_the_configured_windows() {
        let config = Config::default();
        let (source, budget) = limited(64 << 20);
        let windows = Windows::reserve(&config, &budget);
        assert_eq!(windows.connection, config.connection_window);
        assert_eq!(windows.stream, config.stream_window);
        assert_eq!(windows.send, config.send_window);
        assert_eq!(
            source.used(),
            (config.connection_window + config.send_window) as usize
        );
        drop(windows);
        assert_eq!(source.used(), 0);
    }

    #[test]
    fn a_tight_budget_halves_the_window_and_keeps_the_stream_window() {
        let config = Config::default()
            .with_connection_window(4 << 20)
            .with_send_window(1 << 20);
        let (source, budget) = limited(1536 << 10);
        let windows = Windows::reserve(&config, &budget);
        assert_eq!(windows.connection, 1 << 20, "4 MiB -> 2 MiB -> 1 MiB fits");
        assert_eq!(
            windows.stream, config.stream_window,
            "bounded by the connection window anyway"
        );
        assert_eq!(windows.send, 512 << 10, "the send window takes the rest");
        assert_eq!(source.used(), 1536 << 10);
    }

    #[test]
    fn a_denying_budget_leaves_the_minimum_window_unreserved() {
        let (source, budget) = limited(0);
        let windows = Windows::reserve(&Config::default(), &budget);
        assert_eq!(windows.connection, MIN_WINDOW);
        assert_eq!(windows.reservation.bytes(), 0);
        assert_eq!(windows.send, MIN_WINDOW);
        assert_eq!(windows.send_reservation.bytes(), 0);
        assert_eq!(source.used(), 0);
    }
}
