//! A connection receive window that grows as the application reads.
//!
//! quinn grants a peer credit for "what was read plus a fixed window", per stream and
//! per connection; only the connection's window can change at run time
//! (`quinn::Connection::set_receive_window`: the stream window is fixed in the
//! `TransportConfig` a connection starts with). So the connection window is the one
//! that is tuned, as TCP and QUIC stacks auto-tune theirs: the bytes the application
//! reads from all the connection's streams are counted in epochs, and when a whole
//! window's worth is read within about two round trips (the window, not the reader,
//! limits the transfer) the window doubles, up to `Config::max_connection_window`.
//! Every growth is reserved from the connection's budget first, at
//! [`GROWTH_PRIORITY`]; a denied growth keeps the window as it is. An epoch read
//! much more slowly than the window allows halves it again, down to the window the
//! connection started with; that memory goes back to the budget once the
//! application has read as many bytes as the window shrank by (until then the peer
//! may still use credit it was granted). Whatever is left goes back when the
//! connection's last handle drops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use weft_upgrader::{Priority, Reservation};

/// The priority of a window growth: like the other muxers' growth, the application
/// earned it by reading.
pub const GROWTH_PRIORITY: Priority = Priority::HIGH;

/// An epoch whose window would have been read in this many round trips grows it.
const GROW_WITHIN_RTTS: f64 = 2.0;
/// An epoch read this many times more slowly than a window per round trip shrinks it.
const SHRINK_AFTER_RTTS: f64 = 16.0;
/// The round trip assumed when quinn's estimate is below it (loopback), so that a
/// burst on a sub-millisecond path does not count as a long fat link.
pub(crate) const MIN_RTT: Duration = Duration::from_millis(1);
/// The fastest link a window is grown for: never past what this rate needs at the
/// measured round trip (1 GiB/s x 60 ms = 60 MiB; on loopback, 1 MiB), so a fast
/// burst on a short path (a peer that makes us read, then stalls) cannot grow a
/// window that path does not need.
pub const LINK_RATE: u64 = 1 << 30;

/// The most window a path of round trip `rtt` needs at [`LINK_RATE`].
pub(crate) fn useful_window(rtt: Duration) -> u64 {
    (rtt.max(MIN_RTT).as_secs_f64() * LINK_RATE as f64) as u64
}

/// Where a window goes at the end of an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Grow,
    Keep,
    Shrink,
}

/// Judges an epoch: `read` bytes read in `elapsed` with a window of `window` bytes
/// on a path of round trip `rtt`.
pub(crate) fn verdict(read: u64, elapsed: Duration, window: u64, rtt: Duration) -> Verdict {
    if window == 0 || read == 0 {
        return Verdict::Keep;
    }
    // How many round trips reading one whole window took at this epoch's pace.
    let rtts_per_window =
        elapsed.as_secs_f64() * window as f64 / read as f64 / rtt.max(MIN_RTT).as_secs_f64();
    if rtts_per_window < GROW_WITHIN_RTTS {
        Verdict::Grow
    } else if rtts_per_window > SHRINK_AFTER_RTTS {
        Verdict::Shrink
    } else {
        Verdict::Keep
    }
}

/// The state behind the lock: changed once per epoch.
#[derive(Debug)]
struct State {
    /// The receive window quinn has now.
    window: u64,
    /// Bytes the window shrank by that the application has not read since: the peer
    /// may still hold that much credit.
    debt: u64,
    /// Held for `window + debt` (less when the budget denied the starting window).
    reservation: Reservation,
    /// The least it shrinks to: the window it started with (or adopted).
    floor: u64,
    /// When the epoch started.
    epoch_start: Instant,
}

/// One connection's receive window, tuned by what its streams read.
#[derive(Debug)]
pub(crate) struct ReceiveWindow {
    connection: quinn::Connection,
    /// The most it grows to.
    max: u64,
    /// Bytes read in this epoch.
    read: AtomicU64,
    /// The bytes that end an epoch: half the window.
    epoch_bytes: AtomicU64,
    state: Mutex<State>,
}

impl ReceiveWindow {
    /// Tunes `connection`, whose receive window is `window` bytes, `reservation` held
    /// for it, between `window` and `max`.
    pub(crate) fn new(
        connection: quinn::Connection,
        window: u64,
        max: u64,
        reservation: Reservation,
    ) -> Self {
        ReceiveWindow {
            connection,
            max: max.max(window),
            read: AtomicU64::new(0),
            epoch_bytes: AtomicU64::new((window / 2).max(1)),
            state: Mutex::new(State {
                window,
                debt: 0,
                reservation,
                floor: window,
                epoch_start: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current receive window.
    pub(crate) fn window(&self) -> u64 {
        self.lock().window
    }

    /// The bytes reserved for the window now.
    pub(crate) fn reserved(&self) -> usize {
        self.lock().reservation.bytes()
    }

    /// Counts `bytes` the application read from one of the connection's streams;
    /// at the end of an epoch, grows, keeps or shrinks the window.
    pub(crate) fn on_read(&self, bytes: usize) {
        let bytes = bytes as u64;
        if bytes == 0 {
            return;
        }
        let read = self.read.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if read < self.epoch_bytes.load(Ordering::Relaxed) {
            return;
        }
        let mut state = self.lock();
        // Another reader may have ended this epoch while we waited for the lock.
        let read = self.read.swap(0, Ordering::Relaxed);
        if read == 0 {
            return;
        }
        let now = Instant::now();
        let elapsed = now.duration_since(state.epoch_start);
        state.epoch_start = now;
        let paid = read.min(state.debt);
        if paid > 0 {
            state.debt -= paid;
            state.reservation.shrink(paid as usize);
        }
        let rtt = self.connection.rtt();
        match verdict(read, elapsed, state.window, rtt) {
            Verdict::Grow if state.window < self.max => self.grow(&mut state, rtt),
            Verdict::Shrink if state.window > state.floor => {
                let to = (state.window / 2).max(state.floor);
                tracing::trace!(
                    from = state.window,
                    to,
                    "QUIC receive window shrinks: a slow reader"
                );
                state.debt += state.window - to;
                state.window = to;
                self.connection.set_receive_window(varint(to));
            }
            _ => {}
        }
        self.epoch_bytes
            .store((state.window / 2).max(1), Ordering::Relaxed);
    }

    /// Doubles the window (up to the maximum, and to what the round trip needs) if
    /// the budget grants it.
    fn grow(&self, state: &mut State, rtt: Duration) {
        let to = state
            .window
            .saturating_mul(2)
            .min(self.max)
            .min(useful_window(rtt));
        if to <= state.window {
            return;
        }
        let more = (to - state.window) as usize;
        match state.reservation.grow(more, GROWTH_PRIORITY) {
            Ok(()) => {
                tracing::trace!(from = state.window, to, ?rtt, "QUIC receive window grows");
                state.window = to;
                self.connection.set_receive_window(varint(to));
            }
            Err(denied) => {
                tracing::debug!(%denied, window = state.window, "QUIC receive window growth denied; it stays");
            }
        }
    }

    /// Charges the window to the budget of `granted` from now on (a connection that
    /// got its budget after the handshake). `granted` is what that budget gave for a
    /// starting window: if it is more than the connection holds (window and debt),
    /// the window grows to it and shrinks no lower from now on; if less, the rest of
    /// what the peer was already granted is reserved as far as the budget allows
    /// (quinn never takes credit back).
    pub(crate) fn adopt(&self, mut granted: Reservation) {
        let mut state = self.lock();
        let held = state.window + state.debt;
        let granted_bytes = granted.bytes() as u64;
        if granted_bytes < held {
            let missing = (held - granted_bytes) as usize;
            if let Err(denied) = granted.grow(missing, crate::window::WINDOW_PRIORITY) {
                tracing::debug!(%denied, held, "budget denies the QUIC window already granted; the rest stays unreserved");
            }
        } else if granted_bytes > held {
            state.window = granted_bytes - state.debt;
            self.connection.set_receive_window(varint(state.window));
            self.epoch_bytes
                .store((state.window / 2).max(1), Ordering::Relaxed);
        }
        state.floor = state.floor.max(state.window.min(granted_bytes));
        state.reservation = granted;
    }
}

/// A window as quinn's integer type (windows are far below its 2^62 limit).
fn varint(bytes: u64) -> quinn::VarInt {
    quinn::VarInt::from_u64(bytes).unwrap_or(quinn::VarInt::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_window_read_within_a_round_trip_grows() {
        // 1 MiB read in 30 ms at 60 ms RTT: the whole window in half a round trip.
        assert_eq!(verdict(1 << 20, 30 * MS, 1 << 20, 60 * MS), Verdict::Grow);
        // Half a window in one round trip: a window takes two, the limit.
        assert_eq!(verdict(1 << 19, 61 * MS, 1 << 20, 60 * MS), Verdict::Keep);
    }

    #[test]
    fn a_slow_reader_keeps_or_shrinks_its_window() {
        // Half a window per 4 RTT: not window-limited, not slow enough to shrink.
        assert_eq!(verdict(1 << 19, 240 * MS, 1 << 20, 60 * MS), Verdict::Keep);
        // Half a window in 10 s at 60 ms: far slower than the window allows.
        assert_eq!(
            verdict(1 << 19, Duration::from_secs(10), 1 << 20, 60 * MS),
            Verdict::Shrink
        );
    }

    #[test]
    fn a_loopback_burst_counts_against_at_least_a_millisecond() {
        // 1 MiB read in 3 ms with quinn estimating 50 us: not a long fat link.
        assert_eq!(
            verdict(1 << 20, 3 * MS, 1 << 20, Duration::from_micros(50)),
            Verdict::Keep
        );
    }

    #[test]
    fn the_window_a_path_needs_follows_its_round_trip() {
        assert_eq!(useful_window(Duration::from_micros(50)), LINK_RATE / 1000);
        let long = useful_window(60 * MS);
        assert!((60 << 20..=62 << 20).contains(&long), "{long}");
    }

    #[test]
    fn nothing_read_keeps_the_window() {
        assert_eq!(verdict(0, 10 * MS, 1 << 20, 60 * MS), Verdict::Keep);
    }
}
