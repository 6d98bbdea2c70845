//! Time sources: the store asks a [`Clock`] for "now" so tests can move time by hand.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
///
/// The store computes every address expiry from [`Clock::now`]. The persistent backend
/// stores expiries as UNIX time, so a TTL keeps running while the process is stopped.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock ([`SystemTime::now`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use weft_peerstore::{Clock, ManualClock};
///
/// let clock = ManualClock::new(std::time::UNIX_EPOCH + Duration::from_secs(1_000));
/// let before = clock.now();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now().duration_since(before).unwrap(), Duration::from_secs(60));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// Milliseconds since the UNIX epoch.
    now_ms: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock stopped at `start` (times before the UNIX epoch count as the epoch).
    pub fn new(start: SystemTime) -> Self {
        Self {
            now_ms: Arc::new(AtomicU64::new(to_unix_ms(start))),
        }
    }

    /// A clock stopped at the current system time.
    pub fn starting_now() -> Self {
        Self::new(SystemTime::now())
    }

    /// Moves the clock forward by `by` (millisecond resolution, saturating).
    pub fn advance(&self, by: Duration) {
        let by_ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let mut current = self.now_ms.load(Ordering::SeqCst);
        loop {
            let next = current.saturating_add(by_ms);
            match self
                .now_ms
                .compare_exchange(current, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// Sets the clock to `to` (it may move backwards).
    pub fn set(&self, to: SystemTime) {
        self.now_ms.store(to_unix_ms(to), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.now_ms.load(Ordering::SeqCst))
    }
}

/// Milliseconds since the UNIX epoch; times before it give 0.
pub(crate) fn to_unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// "Now" from `clock` in milliseconds since the UNIX epoch.
pub(crate) fn now_ms(clock: &dyn Clock) -> u64 {
    to_unix_ms(clock.now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_advances_and_is_shared_by_clones() {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(10));
        let other = clock.clone();
        clock.advance(Duration::from_millis(1500));
        assert_eq!(now_ms(&other), 11_500);
        other.set(UNIX_EPOCH);
        assert_eq!(now_ms(&clock), 0);
    }

    #[test]
    fn times_before_the_epoch_are_zero() {
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(to_unix_ms(before), 0);
    }
}
