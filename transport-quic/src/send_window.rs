//! A connection send window that grows as the path demonstrably carries data.
//!
//! quinn's send window (`Connection::set_send_window`) bounds the bytes the application
//! wrote on a connection that the peer has not acknowledged yet: in flight, lost and
//! waiting to go again, or queued behind the congestion window. quinn accepts a write
//! only within the peer's flow-control credit, so this is memory a peer that grants
//! credit and acknowledges slowly (a long path, or a busy or hostile peer) makes the
//! connection hold. So the send window is tuned and reserved as the receive window is
//! (see `tuning`), with a different signal: what the path carried.
//!
//! **What a path needs.** To keep a path busy, a sender has its congestion window
//! (quinn's `cwnd`) in flight and the next round trip's worth queued behind it while
//! the acknowledgements come back: about **twice the congestion window**. The
//! congestion window is itself demonstrated: quinn's congestion controllers grow it
//! only when acknowledgements arrive for data sent while the connection was not
//! application-limited (a connection held back by its send window counts as
//! application-limited), so it grows no further than the path carried, and a loss
//! cuts it.
//!
//! **The rules**, judged once per epoch (half a window written by the application,
//! across the connection's streams):
//!
//! - **Grow** (double) when both hold: the application wrote a whole window's worth
//!   within about two round trips (so the window, not the writer or the peer's credit,
//!   limits the transfer) and twice the congestion window exceeds the window (the path
//!   carried more than half the window per round trip). Never past
//!   `Config::max_send_window`, nor past what [`LINK_RATE`](crate::LINK_RATE) needs at
//!   the path's **minimum** round trip (counted as at least 1 ms): queueing delay (a
//!   peer slow to acknowledge, a loaded machine, a deep buffer) stretches the smoothed
//!   round trip but does not widen the path, so a peer cannot make the window grow by
//!   acknowledging late, and a loopback connection keeps its 1 MiB start whatever its
//!   load (a step of less than a quarter of the window is not taken). Each growth is reserved from the connection's budget first, at
//!   [`GROWTH_PRIORITY`]; a denied growth keeps the window as it is.
//! - **Shrink** (halve, down to the window the connection started with) when the
//!   writer is slow (a window per sixteen round trips or slower) or the path carries
//!   far less than the window (twice the congestion window below a quarter of it, after
//!   losses). quinn still holds what was written above the new window until it is
//!   acknowledged; a write accepted after the shrink proves that it was (quinn accepts
//!   a write only below the window), so the memory goes back to the budget at the end
//!   of the next epoch.
//! - An epoch ends only with writes: a connection whose application stopped writing
//!   keeps its window reserved (nothing more is buffered than what is unacknowledged)
//!   until it writes again; everything goes back when its last handle drops.

use crate::tuning::{useful_window, GROWTH_PRIORITY, MIN_RTT};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use weft_upgrader::Reservation;

/// An epoch whose window was written within this many round trips may grow it.
const GROW_WITHIN_RTTS: f64 = 2.0;
/// An epoch written this many times more slowly than a window per round trip shrinks it.
const SHRINK_AFTER_RTTS: f64 = 16.0;

/// What one epoch showed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch {
    /// Bytes the application wrote in it.
    pub(crate) written: u64,
    /// How long it took.
    pub(crate) elapsed: Duration,
    /// The send window during it.
    pub(crate) window: u64,
    /// quinn's congestion window at its end.
    pub(crate) cwnd: u64,
    /// quinn's smoothed round trip.
    pub(crate) rtt: Duration,
    /// The least round trip seen on the path.
    pub(crate) min_rtt: Duration,
}

/// The send window after `epoch`, between `floor` and `max` (the current window when
/// nothing changes).
pub(crate) fn next_window(epoch: &Epoch, floor: u64, max: u64) -> u64 {
    let window = epoch.window;
    if window == 0 || epoch.written == 0 {
        return window;
    }
    let needed = epoch.cwnd.saturating_mul(2);
    // How many round trips writing one whole window took at this epoch's pace.
    let rtts_per_window = epoch.elapsed.as_secs_f64() * window as f64
        / epoch.written as f64
        / epoch.rtt.max(MIN_RTT).as_secs_f64();
    if rtts_per_window < GROW_WITHIN_RTTS && needed > window {
        let to = window
            .saturating_mul(2)
            .min(max)
            .min(useful_window(epoch.min_rtt));
        // A step of less than a quarter (the cap just above the window) is not worth
        // a reservation.
        return if to >= window + window / 4 {
            to
        } else {
            window
        };
    }
    if rtts_per_window > SHRINK_AFTER_RTTS || needed < window / 4 {
        return (window / 2).max(floor).min(window);
    }
    window
}

/// The state behind the lock: changed once per epoch.
#[derive(Debug)]
struct State {
    /// The send window quinn has now.
    window: u64,
    /// Bytes the window shrank by that quinn may still hold (written, not yet known to
    /// be acknowledged).
    debt: u64,
    /// Held for `window + debt` (less when the budget denied the starting window).
    reservation: Reservation,
    /// The least it shrinks to: the window it started with (or adopted).
    floor: u64,
    /// When the epoch started.
    epoch_start: Instant,
}

impl State {
    /// Ends an epoch in which `written` bytes were written, with the path's figures in
    /// `path`; returns the window to give quinn if it changes. Every growth is reserved
    /// first (a denial keeps the window), a shrink's memory is kept until the next
    /// epoch's writes prove quinn buffers less.
    fn end_epoch(&mut self, written: u64, now: Instant, path: PathSample, max: u64) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.epoch_start);
        self.epoch_start = now;
        // These writes were accepted after any earlier shrink: quinn holds less than
        // the window it shrank to.
        if self.debt > 0 {
            self.reservation
                .shrink(usize::try_from(self.debt).unwrap_or(usize::MAX));
            self.debt = 0;
        }
        let epoch = Epoch {
            written,
            elapsed,
            window: self.window,
            cwnd: path.cwnd,
            rtt: path.rtt,
            min_rtt: path.min_rtt,
        };
        let to = next_window(&epoch, self.floor, max);
        if to > self.window {
            let more = usize::try_from(to - self.window).unwrap_or(usize::MAX);
            if let Err(denied) = self.reservation.grow(more, GROWTH_PRIORITY) {
                tracing::debug!(%denied, window = self.window, "QUIC send window growth denied; it stays");
                return None;
            }
            tracing::trace!(from = self.window, to, ?path, "QUIC send window grows");
        } else if to < self.window {
            tracing::trace!(from = self.window, to, ?path, "QUIC send window shrinks");
            self.debt += self.window - to;
        } else {
            return None;
        }
        self.window = to;
        Some(to)
    }
}

/// quinn's figures of a path at the end of an epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathSample {
    pub(crate) cwnd: u64,
    pub(crate) rtt: Duration,
    pub(crate) min_rtt: Duration,
}

/// One connection's send window, tuned by what its path carries.
#[derive(Debug)]
pub(crate) struct SendWindow {
    connection: quinn::Connection,
    /// The most it grows to.
    max: u64,
    /// Bytes written in this epoch.
    written: AtomicU64,
    /// The bytes that end an epoch: half the window.
    epoch_bytes: AtomicU64,
    state: Mutex<State>,
}

impl SendWindow {
    /// Tunes `connection`, whose send window is `window` bytes, `reservation` held for
    /// it, between `window` and `max`.
    pub(crate) fn new(
        connection: quinn::Connection,
        window: u64,
        max: u64,
        reservation: Reservation,
    ) -> Self {
        SendWindow {
            connection,
            max: max.max(window),
            written: AtomicU64::new(0),
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

    /// The current send window.
    pub(crate) fn window(&self) -> u64 {
        self.lock().window
    }

    /// The bytes reserved for the send window now.
    pub(crate) fn reserved(&self) -> usize {
        self.lock().reservation.bytes()
    }

    /// Counts `bytes` the application wrote to one of the connection's streams; at the
    /// end of an epoch, grows, keeps or shrinks the window.
    pub(crate) fn on_write(&self, bytes: usize) {
        let bytes = bytes as u64;
        if bytes == 0 {
            return;
        }
        let written = self.written.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if written < self.epoch_bytes.load(Ordering::Relaxed) {
            return;
        }
        let mut state = self.lock();
        // Another writer may have ended this epoch while we waited for the lock.
        let written = self.written.swap(0, Ordering::Relaxed);
        if written == 0 {
            return;
        }
        let stats = self.connection.stats();
        let path = PathSample {
            cwnd: stats.path.cwnd,
            rtt: stats.path.rtt,
            min_rtt: stats.path.min_rtt,
        };
        if let Some(window) = state.end_epoch(written, Instant::now(), path, self.max) {
            self.connection.set_send_window(window);
        }
        self.epoch_bytes
            .store((state.window / 2).max(1), Ordering::Relaxed);
    }

    /// Charges the window to the budget of `granted` from now on (a connection that
    /// got its budget after the handshake): `granted` holds `granted_window` bytes, the
    /// starting window that budget gives. The window becomes at least that and shrinks
    /// no lower from now on; what quinn may already hold beyond it is reserved as far
    /// as the budget allows.
    pub(crate) fn adopt(&self, mut granted: Reservation, granted_window: u64) {
        let mut state = self.lock();
        let held = state.window + state.debt;
        let granted_bytes = granted.bytes() as u64;
        if granted_bytes < held {
            let missing = usize::try_from(held - granted_bytes).unwrap_or(usize::MAX);
            if let Err(denied) = granted.grow(missing, crate::window::WINDOW_PRIORITY) {
                tracing::debug!(%denied, held, "budget denies the QUIC send window already in use; the rest stays unreserved");
            }
        }
        if granted_window > state.window {
            state.window = granted_window;
            self.connection.set_send_window(granted_window);
            self.epoch_bytes
                .store((granted_window / 2).max(1), Ordering::Relaxed);
        }
        state.floor = granted_window.min(state.window);
        state.reservation = granted;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_budget::{limited, Limited};
    use std::sync::Arc;
    use weft_upgrader::Priority;

    const MS: Duration = Duration::from_millis(1);
    const MIB: u64 = 1 << 20;
    const MAX: u64 = 32 * MIB;

    /// An epoch of `written` bytes in `elapsed` with a window of `window`, on a 60 ms
    /// path whose congestion window is `cwnd`.
    fn long_path(written: u64, elapsed: Duration, window: u64, cwnd: u64) -> Epoch {
        Epoch {
            written,
            elapsed,
            window,
            cwnd,
            rtt: 60 * MS,
            min_rtt: 60 * MS,
        }
    }

    #[test]
    fn a_path_that_carries_the_window_doubles_it() {
        // Half of a 1 MiB window written in 30 ms, congestion window 900 KiB: the path
        // carried most of the window per round trip and the writer kept it full.
        let epoch = long_path(MIB / 2, 30 * MS, MIB, 900 << 10);
        assert_eq!(next_window(&epoch, MIB, MAX), 2 * MIB);
    }

    #[test]
    fn a_burst_into_an_empty_window_is_no_demonstration() {
        // The first half window is taken at once, but the path has carried nothing
        // yet: the congestion window is its initial one.
        let epoch = long_path(MIB / 2, Duration::from_micros(100), MIB, 14_720);
        assert_eq!(next_window(&epoch, MIB, MAX), MIB, "kept at its floor");
    }

    #[test]
    fn a_congestion_window_below_half_the_window_does_not_grow_it() {
        // Written as fast as the path carries (400 KiB per round trip): the
        // congestion window, not the send window, limits the transfer.
        let epoch = long_path(MIB / 2, 75 * MS, MIB, 400 << 10);
        assert_eq!(next_window(&epoch, MIB, MAX), MIB);
    }

    #[test]
    fn a_writer_or_a_peer_that_is_slower_than_the_window_does_not_grow_it() {
        // The congestion window is large (an earlier burst), but half a window took
        // five round trips: the writer, or the peer's credit, is the limit.
        let epoch = long_path(MIB / 2, 300 * MS, MIB, 4 * MIB);
        assert_eq!(next_window(&epoch, MIB, MAX), MIB);
    }

    #[test]
    fn growth_stops_at_the_maximum_and_at_what_the_minimum_round_trip_needs() {
        let epoch = long_path(8 * MIB, 30 * MS, 16 * MIB, 16 * MIB);
        assert_eq!(next_window(&epoch, MIB, 24 * MIB), 24 * MIB);
        // A peer acknowledging late stretches the smoothed round trip to 60 ms on a
        // path of 200 us: the minimum round trip (counted as 1 ms) caps the window
        // at 1 GiB/s x 1 ms.
        let late = Epoch {
            min_rtt: Duration::from_micros(200),
            ..long_path(MIB / 2, 30 * MS, MIB, MIB)
        };
        assert_eq!(next_window(&late, MIB, MAX), MIB, "loopback keeps 1 MiB");
    }

    #[test]
    fn a_slow_writer_or_a_narrowed_path_halves_the_window_down_to_its_floor() {
        // Half of an 8 MiB window in 10 s at 60 ms: far slower than the window allows.
        let slow = long_path(4 * MIB, Duration::from_secs(10), 8 * MIB, 8 * MIB);
        assert_eq!(next_window(&slow, MIB, MAX), 4 * MIB);
        // After losses, the congestion window is 512 KiB of an 8 MiB window.
        let narrowed = long_path(4 * MIB, 60 * MS, 8 * MIB, 512 << 10);
        assert_eq!(next_window(&narrowed, MIB, MAX), 4 * MIB);
        // Never below the start.
        let at_floor = long_path(MIB / 2, Duration::from_secs(10), MIB, 14_720);
        assert_eq!(next_window(&at_floor, MIB, MAX), MIB);
    }

    #[test]
    fn a_path_that_carries_between_a_quarter_and_the_whole_window_keeps_it() {
        let epoch = long_path(2 * MIB, 120 * MS, 4 * MIB, 1536 << 10);
        assert_eq!(next_window(&epoch, MIB, MAX), 4 * MIB);
    }

    /// A state with a 1 MiB window reserved from a budget of `limit` bytes.
    fn state(limit: usize) -> (Arc<Limited>, State) {
        let (source, budget) = limited(limit);
        let reservation = budget
            .reserve(MIB as usize, Priority::LOW)
            .expect("the start fits");
        let state = State {
            window: MIB,
            debt: 0,
            reservation,
            floor: MIB,
            epoch_start: Instant::now(),
        };
        (source, state)
    }

    const FULL_PATH: PathSample = PathSample {
        cwnd: 4 * MIB,
        rtt: Duration::from_millis(60),
        min_rtt: Duration::from_millis(60),
    };

    #[test]
    fn every_growth_is_reserved_first_and_a_denied_one_keeps_the_window() {
        let (source, mut state) = state(3 * MIB as usize);
        let now = state.epoch_start + 10 * MS;
        assert_eq!(state.end_epoch(MIB / 2, now, FULL_PATH, MAX), Some(2 * MIB));
        assert_eq!(source.used(), 2 * MIB as usize);
        // 4 MiB would need 2 MiB more: the budget has 1 MiB left.
        let later = now + 10 * MS;
        assert_eq!(state.end_epoch(MIB, later, FULL_PATH, MAX), None);
        assert_eq!(state.window, 2 * MIB);
        assert_eq!(source.used(), 2 * MIB as usize);
    }

    #[test]
    fn a_shrink_gives_its_memory_back_after_the_next_epochs_writes() {
        let (source, mut state) = state(64 * MIB as usize);
        let mut now = state.epoch_start;
        for to in [2 * MIB, 4 * MIB] {
            now += 10 * MS;
            let written = state.window / 2;
            assert_eq!(state.end_epoch(written, now, FULL_PATH, MAX), Some(to));
        }
        assert_eq!(source.used(), 4 * MIB as usize);
        // A slow epoch: 2 MiB in 10 s.
        now += Duration::from_secs(10);
        assert_eq!(state.end_epoch(2 * MIB, now, FULL_PATH, MAX), Some(2 * MIB));
        assert_eq!(
            source.used(),
            4 * MIB as usize,
            "quinn may still hold what was written above 2 MiB"
        );
        now += Duration::from_secs(10);
        assert_eq!(state.end_epoch(MIB, now, FULL_PATH, MAX), Some(MIB));
        assert_eq!(
            source.used(),
            2 * MIB as usize,
            "the first shrink's 2 MiB went back; the second's 1 MiB waits"
        );
        drop(state);
        assert_eq!(source.used(), 0, "all back on drop");
    }
}
