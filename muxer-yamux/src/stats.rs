//! Counters of what the muxer did to protect itself, shared by all connections a
//! [`Yamux`](crate::Yamux) upgraded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What the connections of one [`Yamux`](crate::Yamux) (and its clones) did so far:
/// streams reset because the memory budget was full, window growths granted and
/// denied, connections failed by the keep-alive. Cheap to clone (an `Arc`).
#[derive(Debug, Clone, Default)]
pub struct YamuxStats {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    shed: AtomicU64,
    grown: AtomicU64,
    growth_denied: AtomicU64,
    keep_alive_failures: AtomicU64,
}

impl YamuxStats {
    /// Streams reset because the budget could not hold what they received (each
    /// was the stream of its connection holding the most unread bytes).
    pub fn streams_shed(&self) -> u64 {
        self.inner.shed.load(Ordering::Relaxed)
    }

    /// Receive-window growths granted to streams whose readers kept up.
    pub fn windows_grown(&self) -> u64 {
        self.inner.grown.load(Ordering::Relaxed)
    }

    /// Window growths the budget denied (the stream kept its window).
    pub fn growth_denied(&self) -> u64 {
        self.inner.growth_denied.load(Ordering::Relaxed)
    }

    /// Connections failed because the keep-alive got no answer.
    pub fn keep_alive_failures(&self) -> u64 {
        self.inner.keep_alive_failures.load(Ordering::Relaxed)
    }

    pub(crate) fn count_shed(&self) {
        self.inner.shed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_grown(&self) {
        self.inner.grown.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_growth_denied(&self) {
        self.inner.growth_denied.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_keep_alive_failure(&self) {
        self.inner
            .keep_alive_failures
            .fetch_add(1, Ordering::Relaxed);
    }
}
