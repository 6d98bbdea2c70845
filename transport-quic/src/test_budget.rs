//! The unit tests' memory budget: a plain byte limit, whatever the priority.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use weft_upgrader::{Budget, BudgetDenied, MemoryBudget, Priority};

/// Grants reservations while the total stays within `limit` (any priority).
pub(crate) struct Limited {
    limit: usize,
    used: AtomicUsize,
}

impl Limited {
    /// Bytes reserved now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }
}

impl MemoryBudget for Limited {
    fn try_reserve(&self, bytes: usize, _priority: Priority) -> Result<(), BudgetDenied> {
        let used = self.used.load(Ordering::SeqCst);
        if used + bytes > self.limit {
            return Err(BudgetDenied {
                requested: bytes,
                reason: "over the test limit".into(),
            });
        }
        self.used.fetch_add(bytes, Ordering::SeqCst);
        Ok(())
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::SeqCst);
    }
}

/// A budget of `limit` bytes and the counter behind it.
pub(crate) fn limited(limit: usize) -> (Arc<Limited>, Budget) {
    let source = Arc::new(Limited {
        limit,
        used: AtomicUsize::new(0),
    });
    (source.clone(), Budget::new(source))
}
