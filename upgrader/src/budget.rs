//! Memory budgets: how a muxer or security implementation asks before it buffers
//! what a peer sends.
//!
//! A host backs a [`Budget`] with its resource manager (the connection's scope,
//! which charges the peer's and the system's scopes above it); an implementation
//! only sees this small trait and the RAII [`Reservation`] it hands out. A denied
//! reservation is not a failure of the connection: a muxer keeps the window it has
//! and runs slower, or sheds the stream that holds the most.
//!
//! ```
//! use weft_upgrader::{Budget, Priority};
//!
//! let budget = Budget::unlimited();
//! let mut held = budget.empty();
//! held.grow(64 * 1024, Priority::LOW).expect("an unlimited budget never denies");
//! assert_eq!(held.bytes(), 64 * 1024);
//! held.shrink(16 * 1024);
//! drop(held); // gives the remaining 48 KiB back
//! ```

use std::fmt;
use std::sync::Arc;

/// How much of a limit a reservation may use, as go-libp2p's resource manager
/// has it: a reservation of priority `p` succeeds only while the scope's usage
/// after it stays within `(p + 1) / 256` of the limit.
///
/// Lower priorities leave room for higher ones: bytes a remote pushes into the
/// windows the spec grants without asking (yamux's initial 256 KiB per stream)
/// are reserved at [`Priority::LOW`], window growth that the application earned
/// by reading at [`Priority::HIGH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub u8);

impl Priority {
    /// Up to about 40% of the limit.
    pub const LOW: Priority = Priority(101);
    /// Up to about 60% of the limit.
    pub const MEDIUM: Priority = Priority(152);
    /// Up to about 80% of the limit.
    pub const HIGH: Priority = Priority(203);
    /// Up to the whole limit.
    pub const ALWAYS: Priority = Priority(255);

    /// The share of `limit` a reservation of this priority may fill.
    pub fn share_of(self, limit: u64) -> u64 {
        let share = u128::from(limit) * (u128::from(self.0) + 1) / 256;
        u64::try_from(share).unwrap_or(u64::MAX)
    }
}

/// A denied memory reservation: which scope refused, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot reserve {requested} bytes of memory: {reason}")]
pub struct BudgetDenied {
    /// The bytes asked for.
    pub requested: usize,
    /// The budget's own error (the resource manager's, naming the scope).
    #[source]
    pub reason: Box<dyn std::error::Error + Send + Sync>,
}

/// The source of memory reservations behind a [`Budget`].
///
/// Implemented by the host over its resource manager. Both methods are
/// synchronous and must not block: they run on the data path.
pub trait MemoryBudget: Send + Sync + 'static {
    /// Takes `bytes` more, all or nothing.
    ///
    /// # Errors
    ///
    /// [`BudgetDenied`] when a scope on the way would exceed its share of the limit
    /// for `priority`.
    fn try_reserve(&self, bytes: usize, priority: Priority) -> Result<(), BudgetDenied>;

    /// Gives back `bytes` taken before.
    fn release(&self, bytes: usize);
}

/// A handle to a memory budget, or to none (unlimited). Cheap to clone.
#[derive(Clone, Default)]
pub struct Budget {
    source: Option<Arc<dyn MemoryBudget>>,
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("limited", &self.source.is_some())
            .finish()
    }
}

impl Budget {
    /// A budget that grants everything and counts nothing.
    pub fn unlimited() -> Self {
        Budget { source: None }
    }

    /// A budget backed by `source`.
    pub fn new(source: Arc<dyn MemoryBudget>) -> Self {
        Budget {
            source: Some(source),
        }
    }

    /// Whether this budget grants everything.
    pub fn is_unlimited(&self) -> bool {
        self.source.is_none()
    }

    /// Reserves `bytes` now.
    ///
    /// # Errors
    ///
    /// [`BudgetDenied`] from the budget's source.
    pub fn reserve(&self, bytes: usize, priority: Priority) -> Result<Reservation, BudgetDenied> {
        let mut reservation = self.empty();
        reservation.grow(bytes, priority)?;
        Ok(reservation)
    }

    /// A reservation of nothing yet, to [`grow`](Reservation::grow) later.
    pub fn empty(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }
}

/// Memory taken from a [`Budget`]; dropping it gives every byte back.
#[must_use = "dropping a reservation gives its memory back at once"]
#[derive(Debug)]
pub struct Reservation {
    budget: Budget,
    bytes: usize,
}

impl Reservation {
    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes `bytes` more from the budget, all or nothing.
    ///
    /// # Errors
    ///
    /// [`BudgetDenied`] from the budget's source; the reservation is unchanged.
    pub fn grow(&mut self, bytes: usize, priority: Priority) -> Result<(), BudgetDenied> {
        if bytes == 0 {
            return Ok(());
        }
        let total = self.bytes.checked_add(bytes).ok_or_else(|| BudgetDenied {
            requested: bytes,
            reason: "the reservation would overflow".into(),
        })?;
        if let Some(source) = &self.budget.source {
            source.try_reserve(bytes, priority)?;
        }
        self.bytes = total;
        Ok(())
    }

    /// Gives back up to `bytes` (at most what is held); returns how much.
    pub fn shrink(&mut self, bytes: usize) -> usize {
        let give = bytes.min(self.bytes);
        if give > 0 {
            if let Some(source) = &self.budget.source {
                source.release(give);
            }
            self.bytes -= give;
        }
        give
    }

    /// Grows or shrinks the reservation to hold exactly `bytes`.
    ///
    /// # Errors
    ///
    /// [`BudgetDenied`] when growing is denied; the reservation is unchanged.
    pub fn resize(&mut self, bytes: usize, priority: Priority) -> Result<(), BudgetDenied> {
        match bytes.checked_sub(self.bytes) {
            Some(more) => self.grow(more, priority),
            None => {
                self.shrink(self.bytes - bytes);
                Ok(())
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shrink(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A budget with a plain byte limit, for the tests.
    struct Limited {
        limit: usize,
        used: AtomicUsize,
    }

    impl MemoryBudget for Limited {
        fn try_reserve(&self, bytes: usize, priority: Priority) -> Result<(), BudgetDenied> {
            let used = self.used.load(Ordering::SeqCst);
            let share = priority.share_of(self.limit as u64) as usize;
            if used + bytes > share {
                return Err(BudgetDenied {
                    requested: bytes,
                    reason: format!("{used} of {share} used").into(),
                });
            }
            self.used.fetch_add(bytes, Ordering::SeqCst);
            Ok(())
        }

        fn release(&self, bytes: usize) {
            self.used.fetch_sub(bytes, Ordering::SeqCst);
        }
    }

    #[test]
    fn reservations_return_what_they_hold_and_denials_change_nothing() {
        let source = Arc::new(Limited {
            limit: 1000,
            used: AtomicUsize::new(0),
        });
        let budget = Budget::new(source.clone());
        let mut a = budget.reserve(300, Priority::LOW).unwrap();
        // LOW may fill (101 + 1) / 256 of 1000 = 398 bytes.
        assert!(a.grow(100, Priority::LOW).is_err());
        assert_eq!(a.bytes(), 300);
        a.grow(500, Priority::ALWAYS).unwrap();
        assert_eq!(source.used.load(Ordering::SeqCst), 800);
        assert_eq!(a.shrink(5000), 800);
        a.resize(200, Priority::ALWAYS).unwrap();
        a.resize(50, Priority::ALWAYS).unwrap();
        assert_eq!(source.used.load(Ordering::SeqCst), 50);
        let b = budget.reserve(10, Priority::ALWAYS).unwrap();
        drop(a);
        drop(b);
        assert_eq!(source.used.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn priorities_share_the_limit() {
        assert_eq!(Priority::ALWAYS.share_of(256), 256);
        assert_eq!(Priority(0).share_of(256), 1);
        assert_eq!(Priority::ALWAYS.share_of(u64::MAX), u64::MAX);
        assert!(Priority::LOW < Priority::HIGH);
    }

    #[test]
    fn unlimited_never_denies() {
        let budget = Budget::unlimited();
        assert!(budget.is_unlimited());
        let mut r = budget.reserve(usize::MAX, Priority(0)).unwrap();
        assert!(r.grow(1, Priority(0)).is_err(), "overflow is refused");
    }
}
